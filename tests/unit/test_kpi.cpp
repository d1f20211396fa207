// KPIs from a synthetic ledger with hand-checkable numbers; shard merge equals one ledger; the CSV
// and HTML report (escaped, with its SVG charts); `studio kpi report|merge` on the command line.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <thread>

#include "core/error.h"
#include "pipeline/journal.h"
#include "pipeline/kpi.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
using Catch::Detail::Approx;
using studio::test::read_file;
using studio::test::temp_dir;
using studio::test::write_file;
namespace fs = std::filesystem;

namespace {

constexpr double T0 = 1.7e9;  // the run's start (seconds since the epoch)

StageEvent ev(const std::string& id, const std::string& kind, const std::string& channel,
              const std::string& variant, const std::string& stage, double from, double to,
              double compute, double gpu) {
  StageEvent e;
  e.run_id = "r1";
  e.work_id = id;
  e.item = "item-" + id;
  e.kind = kind;
  e.channel = channel;
  e.variant = variant;
  e.seed = 1;
  e.stage = stage;
  e.t_start = T0 + from;
  e.t_end = T0 + to;
  e.compute_s = compute;
  e.gpu_s = gpu;
  return e;
}

// Four assets and one failure (times relative to T0):
//   a1 caption web/A    text 0-10 (gpu 8, first pass) + write 10-12 (cpu 2)      turnaround 12
//   a2 caption insta/B  text 0-20 (gpu 16, 2 rounds) + write 20-24 (cpu 4)       turnaround 24
//   a3 visual  web/A    image 10-40 (gpu 30) + encode 40-44 (cpu 4) + write 44-46 (cpu 2)  46
//   a4 visual  insta/B  image 20-60 (gpu 36) + write 60-80 (cpu 20)             turnaround 80
//   f1 caption web/A    text 24-30 (gpu 6) failed on its 2nd attempt
std::vector<std::vector<StageEvent>> items() {
  auto a1t = ev("a1", "caption", "web", "A", "text", 0, 10, 10, 8);
  a1t.first_pass = true;
  a1t.tokens = 40;
  a1t.ttft_s = 0.5;
  a1t.tpot_s = 0.2;
  a1t.rounds = 1;
  auto a2t = ev("a2", "caption", "insta", "B", "text", 0, 20, 20, 16);
  a2t.first_pass = false;
  a2t.rounds = 2;
  auto a3i = ev("a3", "visual", "web", "A", "image", 10, 40, 30, 30);
  a3i.nfe = 50;
  auto f1 = ev("f1", "caption", "web", "A", "text", 24, 30, 6, 6);
  f1.status = "failed";
  f1.error = "caption rules not met: <too long>";
  f1.first_pass = false;
  f1.attempt = 2;
  return {
      {a1t, ev("a1", "caption", "web", "A", "write", 10, 12, 2, 0)},
      {a2t, ev("a2", "caption", "insta", "B", "write", 20, 24, 4, 0)},
      {a3i, ev("a3", "visual", "web", "A", "encode", 40, 44, 4, 0),
       ev("a3", "visual", "web", "A", "write", 44, 46, 2, 0)},
      {ev("a4", "visual", "insta", "B", "image", 20, 60, 40, 36),
       ev("a4", "visual", "insta", "B", "write", 60, 80, 20, 0)},
      {f1},
  };
}

void write_run_json(const fs::path& run) {
  write_file(run / "run.json", R"({"run_id": "r1", "job_name": "spring", "job_file": "job.json",
    "kpi": {"gpu_price_per_hour": 3.6, "cpu_price_per_hour": 0.36,
            "manual_minutes": {"caption": 30, "visual": 60},
            "review_minutes": {"caption": 5, "visual": 10}}, "shards": 1})");
  write_file(run / "review.jsonl",
             "{\"work_id\":\"a1\",\"verdict\":\"accept\",\"reviewer\":\"kim\"}\n"
             "{\"work_id\":\"a3\",\"verdict\":\"reject\",\"note\":\"logo blurred\"}\n"
             "{\"work_id\":\"a4\",\"verdict\":\"reject\"}\n"
             "{\"work_id\":\"a4\",\"verdict\":\"accept\",\"note\":\"second look\"}\n");
}

// One run folder; `shard_of[i]` names the ledger file of item i.
fs::path make_run(const std::string& name, const std::vector<std::string>& shard_of) {
  const fs::path run = temp_dir(name);
  write_run_json(run);
  const auto all = items();
  std::map<std::string, std::unique_ptr<LedgerWriter>> writers;
  for (const auto& s : shard_of)
    if (!writers.count(s)) {
      writers[s] = std::make_unique<LedgerWriter>(run, s, "r1");
      RunEvent start;
      start.event = "start";
      start.t = T0;
      start.items_total = 5;
      writers[s]->write(start);
    }
  for (std::size_t i = 0; i < all.size(); ++i)
    for (const auto& e : all[i]) writers[shard_of[i]]->write(e);
  for (auto& [s, w] : writers) {
    RunEvent stop;
    stop.event = "stop";
    stop.t = T0 + 80;
    w->write(stop);
    w->close();
  }
  return run;
}

void check_totals(const KpiSummary& s) {
  CHECK(s.work_items == 5);
  CHECK(s.assets == 4);
  CHECK(s.failed == 1);
  CHECK(s.incomplete == 0);
  CHECK(s.makespan_s == Approx(80));
  CHECK(s.throughput_per_hour == Approx(180));  // 4 assets in 80 s
  CHECK(s.turnaround.p50 == Approx(35));        // (24 + 46) / 2
  CHECK(s.turnaround.p90 == Approx(69.8));      // 46 + 0.7 * (80 - 46)
  CHECK(s.turnaround.mean == Approx(40.5));
  CHECK(s.turnaround_by_kind.at("caption").p50 == Approx(18));
  CHECK(s.turnaround_by_kind.at("visual").p90 == Approx(76.6));
  // GPU: 96 s at $3.6/h = $0.096; CPU-only stages: 32 s at $0.36/h = $0.0032.
  CHECK(s.gpu_s == Approx(96));
  CHECK(s.cost_total == Approx(0.0992));
  CHECK(s.cost_per_asset == Approx(0.0248));
  CHECK(s.yield.first_pass_n == 3);  // a1 yes, a2 no, f1 no
  CHECK(s.yield.copy_fpy() == Approx(1.0 / 3));
  CHECK(s.yield.reviewed == 3);  // a1, a3, a4
  CHECK(s.yield.accepted == 2);  // a1; a4 (its last verdict: accept)
  // Human first-pass yield: only a1 was accepted with no reject before (a4 was rejected first).
  CHECK(s.yield.accepted_first_pass == 1);
  CHECK(s.yield.review_fpy() == Approx(1.0 / 3));
  CHECK(s.review.human_fpy() == Approx(1.0 / 3));
  CHECK(s.manual_hours == Approx(3));  // 2 × 30 min + 2 × 60 min
  CHECK(s.review_hours == Approx(0.5));
  CHECK(s.hours_replaced == Approx(2.5));
  CHECK(s.retried == 1);
  CHECK(s.retried_ok == 0);
}

const GroupKpi& group(const std::vector<GroupKpi>& gs, const std::string& name) {
  for (const auto& g : gs)
    if (g.name == name) return g;
  FAIL("no group " << name);
  throw;
}

}  // namespace

TEST_CASE("kpi: percentiles interpolate between ranks", "[unit][kpi]") {
  const auto q = quantiles({40, 10, 30, 20});
  CHECK(q.p50 == Approx(25));
  CHECK(q.p90 == Approx(37));
  CHECK(q.min == 10);
  CHECK(q.max == 40);
  CHECK(quantiles({5}).p90 == 5);
  CHECK(std::isnan(quantiles({}).p50));
}

TEST_CASE("kpi: hand-checkable KPIs of a synthetic run", "[unit][kpi]") {
  const fs::path run = make_run("kpi_single", {"0-of-1", "0-of-1", "0-of-1", "0-of-1", "0-of-1"});
  const KpiSummary s = compute_kpis(run);
  check_totals(s);
  CHECK(s.config.job_name == "spring");

  const auto& web = group(s.by_channel, "web");  // a1 (first pass, accepted), a3 (rejected), f1
  CHECK(web.items == 3);
  CHECK(web.assets == 2);
  CHECK(web.failed == 1);
  CHECK(web.yield.copy_fpy() == Approx(0.5));
  CHECK(web.yield.review_fpy() == Approx(0.5));
  const auto& insta = group(s.by_channel, "insta");
  CHECK(insta.yield.copy_fpy() == Approx(0));
  CHECK(insta.yield.review_fpy() == Approx(0));  // a4: rejected, then accepted

  const auto& a = group(s.by_variant, "A");
  const auto& b = group(s.by_variant, "B");
  CHECK(a.assets == 2);
  CHECK(b.assets == 2);
  CHECK(a.mean_turnaround_s == Approx(29));  // (12 + 46) / 2
  CHECK(b.mean_turnaround_s == Approx(52));  // (24 + 80) / 2
  CHECK(a.mean_cost == Approx((8 * 0.001 + 2 * 0.0001 + 30 * 0.001 + 6 * 0.0001) / 2));

  // Per stage: text = a1 + a2 + f1.
  bool found = false;
  for (const auto& st : s.stages)
    if (st.stage == "text") {
      found = true;
      CHECK(st.events == 3);
      CHECK(st.failed == 1);
      CHECK(st.compute_s == Approx(36));
    }
  CHECK(found);
  CHECK(s.stages.front().stage == "text");  // pipeline order
  CHECK(s.stages.back().stage == "write");

  // Failures with stage and reason; per-item numbers.
  for (const auto& it : s.items) {
    if (it.work_id == "f1") {
      CHECK(it.status == "failed");
      CHECK(it.failed_stage == "text");
      CHECK_THAT(it.error, Catch::Contains("rules not met"));
      CHECK(it.attempts == 2);
    }
    if (it.work_id == "a1") {
      CHECK(it.turnaround_s == Approx(12));
      CHECK(it.latency_s == Approx(12));
      CHECK(it.tokens == 40);
      CHECK(it.ttft_s == Approx(0.5));
      CHECK(it.review == "accept");
    }
    if (it.work_id == "a3") CHECK(it.latency_s == Approx(36));  // 10 → 46
  }
  const auto j = s.to_json();
  CHECK(j["assets"] == 4);
  CHECK(j["failures"].size() == 1);
  CHECK(j["failures"][0]["stage"] == "text");
}

TEST_CASE("kpi: merging 3 shard ledgers gives the totals of one ledger", "[unit][kpi]") {
  const fs::path single =
      make_run("kpi_merge_single", {"0-of-1", "0-of-1", "0-of-1", "0-of-1", "0-of-1"});
  const fs::path sharded =
      make_run("kpi_merge_shards", {"0-of-3", "1-of-3", "2-of-3", "0-of-3", "1-of-3"});
  CHECK(read_ledger(sharded).files == 3);
  const KpiSummary direct = compute_kpis(sharded);  // several shard files in one folder
  check_totals(direct);

  // Another folder holding a copy of one shard (the same shard collected twice): deduplicated.
  const fs::path copy = temp_dir("kpi_merge_copy");
  fs::create_directories(copy / "ledger");
  fs::copy_file(sharded / "ledger" / "1-of-3.jsonl", copy / "ledger" / "1-of-3.jsonl");
  {
    Journal j(sharded, "0-of-3");
    JournalRecord r;
    r.work_id = "a1";
    r.status = "done";
    r.output = "a1.txt";
    j.append(r);
  }
  const fs::path out = temp_dir("kpi_merge_out");
  const MergeResult m = merge_runs({sharded, copy}, out);
  CHECK(m.ledger_files == 4);
  CHECK(m.stage_events == 10);
  CHECK(m.duplicates_dropped == 3);  // a2's two stages and f1's one
  CHECK(m.journal_records == 1);
  CHECK(fs::exists(out / "ledger" / "merged.jsonl"));
  CHECK(fs::exists(out / "run.json"));
  CHECK(fs::exists(out / "review.jsonl"));

  const KpiSummary one = compute_kpis(single);
  const KpiSummary merged = compute_kpis(out);
  check_totals(one);
  check_totals(merged);
  CHECK(merged.cost_total == Approx(one.cost_total));
  CHECK(merged.compute_s == Approx(one.compute_s));
  CHECK(merged.by_variant.size() == one.by_variant.size());

  CHECK_THROWS_AS(merge_runs({sharded}, sharded), UsageError);
}

TEST_CASE("kpi: restarts, recovered items and time lost", "[unit][kpi]") {
  Ledger l;
  RunEvent start;
  start.shard = "0-of-1";
  start.event = "start";
  start.t = T0;
  l.runs.push_back(start);
  auto a = ev("a", "caption", "web", "A", "text", 0, 10, 10, 10);
  auto aw = ev("a", "caption", "web", "A", "write", 10, 11, 1, 0);
  auto b = ev("b", "caption", "web", "A", "text", 11, 20, 9, 9);  // killed before its write
  for (auto* e : {&a, &aw, &b}) e->shard = "0-of-1";
  l.stages = {a, aw, b};
  RunEvent resumed = start;
  resumed.event = "resumed";
  resumed.t = T0 + 100;  // 80 s down after b's text ended at +20
  resumed.restart_count = 1;
  l.runs.push_back(resumed);
  auto b2 = ev("b", "caption", "web", "A", "text", 100, 108, 8, 8);  // re-done
  auto bw = ev("b", "caption", "web", "A", "write", 108, 110, 2, 0);
  auto skipped = ev("a", "caption", "web", "A", "write", 100, 100, 0, 0);
  skipped.status = "skipped";  // never replaces the real write
  for (auto* e : {&b2, &bw, &skipped}) e->shard = "0-of-1";
  l.stages.insert(l.stages.end(), {b2, bw, skipped});

  const KpiSummary s = compute_kpis(l, KpiConfig{}, {});
  CHECK(s.assets == 2);
  CHECK(s.resumes == 1);
  CHECK(s.max_restart_count == 1);
  CHECK(s.preemptions == 1);  // the resumed start carries SLURM_RESTART_COUNT=1
  CHECK(s.to_json()["restarts"]["preemptions"] == 1);
  CHECK(s.recovered == 1);  // b
  CHECK(s.downtime_s == Approx(80));
  CHECK(s.redone_s == Approx(9));
  CHECK(s.time_lost_s == Approx(89));
  CHECK(s.makespan_s == Approx(110));
  for (const auto& it : s.items)
    if (it.work_id == "a") CHECK(it.turnaround_s == Approx(11));
}

TEST_CASE("kpi: report files, escaped HTML with SVG charts", "[unit][kpi]") {
  const fs::path run = make_run("kpi_report", {"0-of-1", "0-of-1", "0-of-1", "0-of-1", "0-of-1"});
  // An item id that would be markup.
  LedgerWriter w(run, "0-of-1", "r1");
  auto e = ev("x9", "caption", "<script>alert(1)</script>", "A", "text", 30, 31, 1, 1);
  e.item = "<script>alert('x')</script>";
  e.status = "failed";
  e.error = "bad & <b>worse</b>";
  w.write(e);
  w.close();
  const KpiSummary s = compute_kpis(run);
  CHECK(s.failed == 2);
  const fs::path out = run / "report";
  write_kpi_report(s, out);
  const std::string html = read_file(out / "report.html");
  const std::string csv = read_file(out / "kpi.csv");
  REQUIRE_FALSE(html.empty());
  CHECK(html.find("<script") == std::string::npos);
  CHECK_THAT(html, Catch::Contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
  CHECK_THAT(html, Catch::Contains("bad &amp; &lt;b&gt;worse&lt;/b&gt;"));
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  CHECK(html.find("https://") == std::string::npos);
  std::size_t svgs = 0;
  for (std::size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1))
    ++svgs;
  CHECK(svgs >= 7);  // histogram, cumulative, stages, cost, FPY, 3 × A/B
  for (const char* title :
       {"Turnaround distribution", "Time per stage", "Cumulative assets", "manual baseline",
        "First-pass yield by preset", "A/B variants", "Failures"})
    CHECK_THAT(html, Catch::Contains(title));

  CHECK(csv.rfind("work_id,item,kind,channel,variant,seed,status,turnaround_s,compute_s,gpu_s,cost,"
                  "nfe,tokens,ttft_s,tpot_s,rounds,first_pass,review",
                  0) == 0);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 6);
  CHECK_THAT(csv, Catch::Contains("a1,item-a1,caption,web,A,1,done,12.000"));
  CHECK_THAT(render_kpi_headline(s),
             Catch::Contains("assets") && Catch::Contains("180.0 assets/hour"));
}

TEST_CASE("kpi: a ledger with a corrupt middle line is an error, no ledger is an error",
          "[unit][kpi]") {
  const fs::path run = temp_dir("kpi_corrupt");
  write_file(run / "ledger" / "0-of-1.jsonl",
             "{\"type\":\"run\",\"event\":\"start\",\"t\":1}\nnope\n"
             "{\"type\":\"run\",\"event\":\"stop\",\"t\":2}\n");
  CHECK_THROWS_AS(compute_kpis(run), FormatError);
  CHECK_THROWS_AS(compute_kpis(temp_dir("kpi_empty")), IoError);
}

TEST_CASE("kpi: ledger appends from threads stay whole lines", "[unit][kpi]") {
  const fs::path run = temp_dir("kpi_threads");
  {
    LedgerWriter w(run, "0-of-1", "r1");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&w, t] {
        for (int i = 0; i < 50; ++i) {
          auto e = ev("t" + std::to_string(t) + "-" + std::to_string(i), "visual", "web", "A",
                      "write", 0, 1, 1, 0);
          e.error = std::string(5000, 'x');
          w.write(e);
        }
      });
    for (auto& th : threads) th.join();
  }
  CHECK(read_ledger(run).stages.size() == 200);
}

TEST_CASE("studio kpi report and merge on the command line", "[unit][kpi][cli]") {
  using studio::test::run_studio;
  using studio::test::shell_quote;
  const fs::path run = make_run("kpi_cli", {"0-of-2", "1-of-2", "0-of-2", "1-of-2", "0-of-2"});
  const fs::path merged = temp_dir("kpi_cli_merged");
  const auto m = run_studio("kpi merge " + shell_quote(run.string()) + " --out " +
                            shell_quote(merged.string()));
  INFO(m.output);
  CHECK(m.exit_code == 0);
  const fs::path json = merged / "summary.json";
  const auto r = run_studio("kpi report " + shell_quote(merged.string()) + " --json " +
                            shell_quote(json.string()));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("assets             4 of 5"));
  CHECK(fs::exists(merged / "kpi.csv"));
  CHECK(fs::exists(merged / "report.html"));
  CHECK(studio::test::read_json(json)["assets"] == 4);
  const auto missing = run_studio("kpi report " + shell_quote((merged / "nope").string()));
  CHECK(missing.exit_code == 1);
}

// --- human review (review.jsonl version 2) and revision work items ---------------------------

TEST_CASE("kpi: review.jsonl version 2 lines, a version-1 line among them", "[unit][kpi]") {
  const fs::path run = temp_dir("kpi_review_v2");
  write_file(run / "review.jsonl",
             "{\"work_id\":\"a1\",\"verdict\":\"accept\",\"reviewer\":\"kim\"}\n"
             "{\"v\":2,\"work_id\":\"a2\",\"revision\":0,\"output\":\"a2.png\","
             "\"verdict\":\"revise\",\"reason\":\"too dark\",\"note\":\"warmer light\","
             "\"reviewer\":\"lee\",\"seconds\":42.5,\"time\":\"2026-11-23T08:00:00.000Z\"}\n"
             "{\"v\":2,\"work_id\":\"a2\",\"revision\":1,\"verdict\":\"accept\",\"seconds\":7}\n"
             "{\"v\":2,\"work_id\":\"a3\",\"verdict\":\"rej");  // torn last line
  std::vector<std::string> warnings;
  const auto r = read_reviews(run, &warnings);
  REQUIRE(r.size() == 3);
  CHECK(r[0].v == 1);
  CHECK(r[0].verdict == "accept");
  CHECK(r[0].revision == 0);
  CHECK(r[0].seconds == 0);
  CHECK(r[1].v == 2);
  CHECK(r[1].verdict == "revise");
  CHECK(r[1].reason == "too dark");
  CHECK(r[1].note == "warmer light");
  CHECK(r[1].reviewer == "lee");
  CHECK(r[1].seconds == Approx(42.5));
  CHECK(r[1].time == "2026-11-23T08:00:00.000Z");
  CHECK(r[1].output == "a2.png");
  CHECK(r[2].revision == 1);
  CHECK(r[2].line == 3);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("review.jsonl:4") && Catch::Contains("torn"));

  // Bad lines before the last: errors naming file and line.
  for (const std::string bad :
       {"{\"v\":2,\"work_id\":\"a1\",\"verdict\":\"maybe\"}",
        "{\"v\":2,\"work_id\":\"a1\",\"verdict\":\"accept\",\"seconds\":-3}",
        "{\"v\":2,\"work_id\":\"a1\",\"verdict\":\"accept\",\"revision\":-1}",
        "{\"v\":3,\"work_id\":\"a1\",\"verdict\":\"accept\"}",
        "{\"v\":2,\"verdict\":\"accept\"}"}) {
    write_file(run / "review.jsonl", "{\"work_id\":\"a1\",\"verdict\":\"accept\"}\n" + bad +
                                         "\n{\"work_id\":\"a1\",\"verdict\":\"accept\"}\n");
    INFO(bad);
    try {
      read_reviews(run);
      FAIL("no error");
    } catch (const FormatError& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("review.jsonl:2"));
    }
  }
}

TEST_CASE("kpi: a stage event of a revision carries revision and base_work_id", "[unit][kpi]") {
  auto e = ev("r1", "visual", "web", "A", "write", 0, 1, 1, 0);
  CHECK_FALSE(e.to_json().contains("revision"));  // written only for revisions
  CHECK_FALSE(e.to_json().contains("base_work_id"));
  e.revision = 2;
  e.base_work_id = "o1";
  const auto j = e.to_json();
  CHECK(j["revision"] == 2);
  CHECK(j["base_work_id"] == "o1");
  const auto back = StageEvent::from_json(j);
  CHECK(back.revision == 2);
  CHECK(back.base_work_id == "o1");
  auto no_base = j;
  no_base.erase("base_work_id");
  CHECK_THROWS_AS(StageEvent::from_json(no_base), FormatError);
  auto negative = j;
  negative["revision"] = -1;
  CHECK_THROWS_AS(StageEvent::from_json(negative), FormatError);
}

namespace {

// Four originals and two revision work items, made in a later round:
//   o1 caption web/A  text 0-10 (gpu 10)          accepted first time (30 s)
//   o2 visual  web/A  image 0-20 (gpu 20)         revise (60 s), its revision r1 accepted (20 s)
//   o3 caption web/B  text 5-15 (gpu 10)          rejected (45 s): no revision yet, pending
//   o4 visual  web/B  image 5-40 (gpu 35)         rejected (10 s); its revision r2 failed: pending
//   r1 = o2 revision 1, image 1000-1030 (gpu 30), done
//   r2 = o4 revision 1, image 1000-1005 (gpu 5), failed
// Each original also writes 1 s (CPU). Prices: GPU $3.6/h = $0.001/s, CPU $0.36/h = $0.0001/s.
Ledger revision_ledger() {
  Ledger l;
  RunEvent start;
  start.shard = "0-of-1";
  start.event = "start";
  start.t = T0;
  l.runs.push_back(start);
  auto original = [&](const std::string& id, const std::string& kind, const std::string& variant,
                      const std::string& stage, double from, double to) {
    auto a = ev(id, kind, "web", variant, stage, from, to, to - from, to - from);
    auto w = ev(id, kind, "web", variant, "write", to, to + 1, 1, 0);
    a.shard = w.shard = "0-of-1";
    l.stages.push_back(a);
    l.stages.push_back(w);
  };
  original("o1", "caption", "A", "text", 0, 10);
  original("o2", "visual", "A", "image", 0, 20);
  original("o3", "caption", "B", "text", 5, 15);
  original("o4", "visual", "B", "image", 5, 40);
  RunEvent again = start;  // the revision round starts later
  again.t = T0 + 990;
  l.runs.push_back(again);
  auto r1 = ev("r1", "visual", "web", "A", "image", 1000, 1030, 30, 30);
  auto r1w = ev("r1", "visual", "web", "A", "write", 1030, 1031, 1, 0);
  auto r2 = ev("r2", "visual", "web", "B", "image", 1000, 1005, 5, 5);
  r2.status = "failed";
  r2.error = "out of memory";
  for (auto* e : {&r1, &r1w, &r2}) {
    e->shard = "0-of-1";
    e->revision = 1;
  }
  r1.base_work_id = r1w.base_work_id = "o2";
  r2.base_work_id = "o4";
  l.stages.insert(l.stages.end(), {r1, r1w, r2});
  return l;
}

KpiConfig revision_config() {
  KpiConfig c;
  c.run_id = "rev";
  c.gpu_price_per_hour = 3.6;
  c.cpu_price_per_hour = 0.36;
  c.review_minutes = {{"caption", 3}, {"visual", 6}};
  return c;
}

std::vector<ReviewVerdict> revision_reviews() {
  auto verdict = [](const std::string& id, int64_t revision, const std::string& v, double seconds,
                    std::size_t line) {
    ReviewVerdict r;
    r.v = 2;
    r.work_id = id;
    r.revision = revision;
    r.verdict = v;
    r.seconds = seconds;
    r.line = line;
    return r;
  };
  auto o2_revise = verdict("o2", 0, "revise", 60, 2);
  o2_revise.note = "warmer light, keep the logo";
  auto o3_reject = verdict("", 0, "reject", 45, 3);
  o3_reject.output = "o3.txt";  // a version-1 style line naming the output
  o3_reject.v = 1;
  o3_reject.reason = "<script>alert(1)</script> off-brand";
  auto r1_accept = verdict("", 0, "accept", 20, 5);
  r1_accept.output = "o2-r1.png";  // the revision's output: its base asset, revision 1
  return {verdict("o1", 0, "accept", 30, 1), o2_revise, o3_reject,
          verdict("o4", 0, "reject", 10, 4), r1_accept};
}

const ItemKpi& item(const KpiSummary& s, const std::string& id) {
  for (const auto& it : s.items)
    if (it.work_id == id) return it;
  FAIL("no item " << id);
  throw;
}

}  // namespace

TEST_CASE("kpi: human FPY, revisions per accepted asset, review minutes, revision costs",
          "[unit][kpi]") {
  const std::map<std::string, std::string> outputs = {{"o3.txt", "o3"}, {"o2-r1.png", "r1"}};
  const KpiSummary s =
      compute_kpis(revision_ledger(), revision_config(), revision_reviews(), outputs);

  // Originals only in assets, throughput and turnaround; revisions apart.
  CHECK(s.work_items == 4);
  CHECK(s.assets == 4);
  CHECK(s.failed == 0);  // r2 failed, but it is a revision
  CHECK(s.revisions_made == 2);
  CHECK(s.revisions_done == 1);
  CHECK(s.revisions_failed == 1);
  CHECK(s.makespan_s == Approx(41));  // o4's write ends at +41; the revision round does not count
  CHECK(s.throughput_per_hour == Approx(4 * 3600.0 / 41));
  CHECK(s.turnaround.max == Approx(41));
  // Cost: originals 75 GPU s + 4 CPU s, revisions 35 GPU s + 1 CPU s.
  CHECK(s.revision_cost == Approx(0.035 + 0.0001));
  CHECK(s.cost_total == Approx(0.075 + 0.0004 + 0.035 + 0.0001));
  CHECK(s.cost_per_asset == Approx((0.075 + 0.0004 + 0.035 + 0.0001) / 4));
  for (const auto& st : s.stages)
    if (st.stage == "image") {
      CHECK(st.events == 4);  // o2, o4, r1, r2
      CHECK(st.gpu_s == Approx(20 + 35 + 30 + 5));
    }
  const auto& visual = group(s.by_kind, "visual");
  CHECK(visual.items == 2);
  CHECK(visual.assets == 2);
  CHECK(visual.cost_total == Approx(0.0201 + 0.0351 + 0.0301 + 0.005));

  // Human review.
  CHECK(s.review.lines == 5);
  CHECK(s.review.reviewed == 4);
  CHECK(s.review.accepted == 2);             // o1, o2 (on revision 1)
  CHECK(s.review.accepted_first_pass == 1);  // o1
  CHECK(s.review.human_fpy() == Approx(0.25));
  CHECK(s.yield.review_fpy() == Approx(0.25));
  CHECK(s.review.rejected == 2);
  CHECK(s.review.to_revise == 0);
  CHECK(s.review.pending_revision == 2);                  // o3: none made; o4: its revision failed
  CHECK(s.review.revisions_per_accepted == Approx(0.5));  // (0 + 1) / 2
  CHECK(s.review.seconds == Approx(165));
  CHECK(s.review.minutes == Approx(2.75));
  CHECK(s.review.mean_seconds == Approx(33));
  CHECK(s.review.minutes_by_kind.at("caption") == Approx(1.25));  // 30 + 45 s
  CHECK(s.review.minutes_by_kind.at("visual") == Approx(1.5));    // 60 + 10 + 20 s
  CHECK(s.review_hours == Approx((3 + 6 + 3 + 6) / 60.0));        // the configured baseline
  REQUIRE(s.review.issues.size() == 3);  // o2 revise, o3 reject, o4 reject (file order)
  CHECK(s.review.issues[0].verdict == "revise");
  CHECK(s.review.issues[0].note == "warmer light, keep the logo");
  CHECK(s.review.issues[1].work_id == "o3");  // resolved from its output
  CHECK(group(s.by_kind, "caption").yield.human_fpy() == Approx(0.5));
  CHECK(group(s.by_kind, "visual").yield.human_fpy() == Approx(0));
  CHECK(group(s.by_variant, "A").yield.human_fpy() == Approx(0.5));

  const auto& o2 = item(s, "o2");
  CHECK(o2.review == "accept");
  CHECK(o2.review_revision == 1);
  CHECK(o2.first_review == "revise");
  CHECK_FALSE(o2.review_first_pass);
  CHECK(o2.revisions == 1);
  CHECK(o2.review_seconds == Approx(80));
  CHECK(item(s, "o1").review_first_pass);
  CHECK(item(s, "o4").revisions == 1);
  CHECK(item(s, "o3").revisions == 0);
  const auto& r1 = item(s, "r1");
  CHECK(r1.revision == 1);
  CHECK(r1.base_work_id == "o2");
  CHECK(r1.review == "accept");  // the verdict on revision 1

  const auto j = s.to_json();
  CHECK(j["human_review"]["human_fpy"] == Approx(0.25));
  CHECK(j["human_review"]["pending_revision"] == 2);
  CHECK(j["human_review"]["review_minutes"] == Approx(2.75));
  CHECK(j["revisions"]["made"] == 2);
  CHECK(j["yield"]["accepted_first_pass"] == 1);

  // kpi.csv: revisions are rows with their revision and base.
  const std::string csv = render_kpi_csv(s);
  CHECK_THAT(csv, Catch::Contains(",error,revision,base_work_id,"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 6);
  std::size_t r1_row = csv.find("\nr1,");
  REQUIRE(r1_row != std::string::npos);
  const std::string row = csv.substr(r1_row + 1, csv.find('\n', r1_row + 1) - r1_row - 1);
  CHECK_THAT(row, Catch::Contains(",1,o2,"));

  // The report: a "Human review" section, everything escaped; the headline's line.
  const std::string html = render_kpi_html(s);
  CHECK_THAT(html, Catch::Contains("<h2>Human review</h2>"));
  CHECK_THAT(html, Catch::Contains("Rejected and revised"));
  CHECK_THAT(html, Catch::Contains("&lt;script&gt;alert(1)&lt;/script&gt; off-brand"));
  CHECK_THAT(html, Catch::Contains("warmer light, keep the logo"));
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("A/B results") == std::string::npos);  // no reactions: no section
  const std::string head = render_kpi_headline(s);
  CHECK_THAT(head, Catch::Contains("human review       FPY 25% (1/4 reviewed)"));
  CHECK_THAT(head, Catch::Contains("2 pending revision"));
  CHECK_THAT(head, Catch::Contains("0.50 revisions per accepted asset"));
  CHECK_THAT(head, Catch::Contains("2.8 review min measured"));
  CHECK_THAT(head, Catch::Contains("revisions          2 made (1 finished, 1 failed)"));
}

TEST_CASE("kpi: no review.jsonl, no human review section", "[unit][kpi]") {
  const KpiSummary s = compute_kpis(revision_ledger(), revision_config(), {});
  CHECK(s.review.lines == 0);
  CHECK(std::isnan(s.review.human_fpy()));
  CHECK(std::isnan(s.review.revisions_per_accepted));
  CHECK(render_kpi_html(s).find("Human review") == std::string::npos);
  CHECK(render_kpi_headline(s).find("human review") == std::string::npos);
}

TEST_CASE("kpi: a final revise on a revision not made yet is pending, a later one is not",
          "[unit][kpi]") {
  std::vector<ReviewVerdict> rs(2);
  rs[0].work_id = "o2";
  rs[0].verdict = "reject";
  rs[0].line = 1;
  rs[1].work_id = "o2";
  rs[1].revision = 1;  // r1 exists and finished: a revise on it needs revision 2
  rs[1].verdict = "revise";
  rs[1].line = 2;
  KpiSummary s = compute_kpis(revision_ledger(), revision_config(), rs);
  CHECK(s.review.to_revise == 1);
  CHECK(s.review.pending_revision == 1);
  rs.pop_back();  // the final verdict: reject on revision 0, and revision 1 was made since
  s = compute_kpis(revision_ledger(), revision_config(), rs);
  CHECK(s.review.rejected == 1);
  CHECK(s.review.pending_revision == 0);
}
