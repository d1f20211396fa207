// Campaign reactions: the Wilson, Newcombe and z-test numbers against published and hand-worked
// values; the reactions CSV (quoting, BOM, CRLF, every error with its line, output -> work id
// through a journal); `studio kpi ingest`; the A/B section of the report and the headline.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "core/error.h"
#include "pipeline/journal.h"
#include "pipeline/kpi.h"
#include "pipeline/reactions.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
using Catch::Detail::Approx;
using studio::test::read_file;
using studio::test::temp_dir;
using studio::test::write_file;
namespace fs = std::filesystem;

TEST_CASE("reactions: Wilson score intervals", "[unit][kpi]") {
  // Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, the
  // score method: 81/263 -> 0.2553 to 0.3662, 15/148 -> 0.0624 to 0.1605.
  const Interval a = wilson_interval(81, 263);
  CHECK(a.estimate == Approx(81.0 / 263));
  CHECK(a.low == Approx(0.2553).margin(5e-5));
  CHECK(a.high == Approx(0.3662).margin(5e-5));
  const Interval b = wilson_interval(15, 148);
  CHECK(b.low == Approx(0.0624).margin(5e-5));
  CHECK(b.high == Approx(0.1605).margin(5e-5));
  // k = 0 by hand: the lower bound is 0 and the upper z²/(n + z²) = 3.84146 / 23.84146 = 0.16112.
  const Interval zero = wilson_interval(0, 20);
  CHECK(zero.low == Approx(0).margin(1e-12));
  CHECK(zero.high == Approx(0.16112).margin(1e-5));
  // k = n mirrors it: lower n / (n + z²) = 20 / 23.84146 = 0.83888, upper 1.
  const Interval all = wilson_interval(20, 20);
  CHECK(all.low == Approx(0.83888).margin(1e-5));
  CHECK(all.high == Approx(1).margin(1e-12));
  CHECK(std::isnan(wilson_interval(0, 0).estimate));
}

TEST_CASE("reactions: Newcombe hybrid score interval and the two-proportion z-test",
          "[unit][kpi]") {
  // Newcombe (1998), "Interval estimation for the difference between independent proportions",
  // Table II, method 10: (a) 56/70 vs 48/80 -> 0.0524 to 0.3339; (b) 9/10 vs 3/10 -> 0.1705 to
  // 0.8090; (c) 5/56 vs 0/29 -> -0.0381 to 0.1926.
  const Interval d1 = newcombe_interval(56, 70, 48, 80);
  CHECK(d1.estimate == Approx(0.2));
  CHECK(d1.low == Approx(0.0524).margin(5e-5));
  CHECK(d1.high == Approx(0.3339).margin(5e-5));
  CHECK(d1.excludes_zero());
  const Interval d2 = newcombe_interval(9, 10, 3, 10);
  CHECK(d2.low == Approx(0.1705).margin(5e-5));
  CHECK(d2.high == Approx(0.8090).margin(5e-5));
  const Interval d3 = newcombe_interval(5, 56, 0, 29);
  CHECK(d3.low == Approx(-0.0381).margin(5e-5));
  CHECK(d3.high == Approx(0.1926).margin(5e-5));
  CHECK_FALSE(d3.excludes_zero());
  // Swapping the samples mirrors the interval.
  const Interval m = newcombe_interval(48, 80, 56, 70);
  CHECK(m.low == Approx(-d1.high));
  CHECK(m.high == Approx(-d1.low));

  // 56/70 vs 48/80 by hand: pooled p = 104/150 = 0.693333, p(1 - p) = 0.212622,
  // 1/70 + 1/80 = 0.0267857, se = sqrt(0.212622 × 0.0267857) = 0.0754668,
  // z = 0.2 / 0.0754668 = 2.65017; two-sided p = 2 (1 − Φ(2.65017)) = 0.00805 (Φ(2.65) = 0.99598).
  CHECK(two_proportion_p_value(56, 70, 48, 80) == Approx(0.00805).margin(5e-5));
  CHECK(two_proportion_p_value(48, 80, 56, 70) == Approx(0.00805).margin(5e-5));
  CHECK(two_proportion_p_value(10, 100, 10, 100) == Approx(1));
  CHECK(two_proportion_p_value(0, 10, 0, 20) == Approx(1));  // no successes anywhere
  CHECK(std::isnan(two_proportion_p_value(1, 0, 1, 2)));
}

namespace {

// A run folder with a ledger and a journal: w1 (variant A, output a.png), w2 (variant B, output
// b.png) and w3, a revision of w1 (output a-r1.png).
fs::path make_reaction_run(const std::string& name) {
  const fs::path run = temp_dir(name);
  LedgerWriter ledger(run, "0-of-1", "r");
  Journal journal(run, "0-of-1");
  auto add = [&](const std::string& id, const std::string& variant, const std::string& output,
                 double t, int64_t revision, const std::string& base) {
    StageEvent e;
    e.work_id = id;
    e.item = "mug";
    e.kind = "visual";
    e.channel = "web";
    e.variant = variant;
    e.stage = "write";
    e.t_start = 1.7e9 + t;
    e.t_end = 1.7e9 + t + 1;
    e.compute_s = 1;
    e.revision = revision;
    e.base_work_id = base;
    ledger.write(e);
    JournalRecord r;
    r.work_id = id;
    r.item = "mug";
    r.kind = "visual";
    r.channel = "web";
    r.variant = variant;
    r.output = output;
    r.stage = "write";
    r.revision = revision;
    r.base_work_id = base;
    journal.append(r);
  };
  add("w1", "A", "mug/web/a.png", 0, 0, "");
  add("w2", "B", "mug/web/b.png", 1, 0, "");
  add("w3", "A", "mug/web/a-r1.png", 100, 1, "w1");
  ledger.close();
  return run;
}

std::string problems_of(const std::string& csv, const ReactionAssets& assets) {
  try {
    parse_reactions_csv(csv, "reactions.csv", assets);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("reactions: CSV with quotes, a BOM and CRLF, outputs mapped through the journal",
          "[unit][kpi]") {
  const fs::path run = make_reaction_run("reactions_csv");
  const ReactionAssets assets = reaction_assets(run);
  CHECK(assets.output_to_base.at("mug/web/a-r1.png") == "w1");  // a revision's output: its base
  CHECK(assets.base_of.at("w3") == "w1");
  CHECK(assets.variant_of.at("w2") == "B");

  const std::string csv =
      "\xEF\xBB\xBF"
      "date,output,Variant,impressions,clicks,conversions\r\n"
      "\"2026-11-20\",\"mug/web/a.png\",A,1000,50,5\r\n"
      "\r\n"
      "\"Nov 21, 2026\",mug/web/a-r1.png,,200,10,1\r\n"
      "2026-11-21,\"mug/web/b.png\", B ,\"1000\",80,12\r\n";
  const auto rows = parse_reactions_csv(csv, "reactions.csv", assets);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].work_id == "w1");
  CHECK(rows[0].variant == "A");
  CHECK(rows[0].date == "2026-11-20");
  CHECK(rows[0].line == 2);
  CHECK(rows[1].work_id == "w1");  // through the revision's output
  CHECK(rows[1].variant == "A");   // the asset's variant, filled in
  CHECK(rows[1].date == "Nov 21, 2026");
  CHECK(rows[1].line == 4);
  CHECK(rows[2].work_id == "w2");
  CHECK(rows[2].impressions == 1000);
  CHECK(rows[2].clicks == 80);
  CHECK(rows[2].conversions == 12);

  // A quoted field over two lines: the next record's line number follows.
  const auto multi = parse_reactions_csv(
      "work_id,impressions,clicks,conversions,date\n"
      "w1,10,1,0,\"two\nlines\"\n"
      "w2,10,2,1,x\n",
      "reactions.csv", assets);
  REQUIRE(multi.size() == 2);
  CHECK(multi[0].date == "two\nlines");
  CHECK(multi[1].line == 4);
}

TEST_CASE("reactions: every problem of a CSV at once, with its line", "[unit][kpi]") {
  const fs::path run = make_reaction_run("reactions_errors");
  const ReactionAssets assets = reaction_assets(run);
  const std::string msg = problems_of(
      "work_id,variant,impressions,clicks,conversions\n"
      "w1,A,100,x,0\n"     // 2: not an integer
      "w1,A,100,-1,0\n"    // 3: negative
      "w1,A,100,120,0\n"   // 4: clicks > impressions
      "w1,A,100,10,11\n"   // 5: conversions > clicks
      "nope,A,100,10,1\n"  // 6: unknown work id
      "w2,A,100,10,1\n"    // 7: the wrong variant
      "w1,A,100,10\n"      // 8: a field missing
      ",A,100,10,1\n"      // 9: no asset
      "w2,B,100,10,1\n"    // fine
      "w1,A,1.5,1,0\n",    // 11: not an integer
      assets);
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("9 problem(s)"));
  CHECK_THAT(msg, Catch::Contains(
                      "reactions.csv:2: column \"clicks\": found \"x\", expected an integer >= 0"));
  CHECK_THAT(msg,
             Catch::Contains(
                 "reactions.csv:3: column \"clicks\": found \"-1\", expected an integer >= 0"));
  CHECK_THAT(msg, Catch::Contains("reactions.csv:4: column \"clicks\": found \"120\", expected at "
                                  "most the impressions (100)"));
  CHECK_THAT(msg, Catch::Contains("reactions.csv:5: column \"conversions\": found \"11\""));
  CHECK_THAT(msg, Catch::Contains("reactions.csv:6: column \"work_id\": found \"nope\""));
  CHECK_THAT(msg,
             Catch::Contains("reactions.csv:7: column \"variant\": found \"A\", expected \"B\""));
  CHECK_THAT(msg, Catch::Contains("reactions.csv:8: 4 field(s), the header has 5"));
  CHECK_THAT(msg, Catch::Contains("reactions.csv:9: column \"work_id\": found \"\""));
  CHECK_THAT(msg,
             Catch::Contains(
                 "reactions.csv:11: column \"impressions\": found \"1.5\", expected an integer"));
  CHECK(msg.find("reactions.csv:10") == std::string::npos);

  // The header: required columns, an asset column, no duplicates.
  const std::string head =
      problems_of("output,impressions,clicks,clicks\nmug/web/a.png,1,1,1\n", assets);
  CHECK_THAT(head, Catch::Contains("reactions.csv:1: column \"clicks\" appears twice"));
  CHECK_THAT(head, Catch::Contains("reactions.csv:1: the header has no column \"conversions\""));
  CHECK_THAT(problems_of("date,impressions,clicks,conversions\nx,1,1,1\n", assets),
             Catch::Contains("needs an asset column"));
  CHECK_THAT(problems_of("output,impressions,clicks,conversions\nmug/web/zz.png,1,1,1\n", assets),
             Catch::Contains("reactions.csv:2: column \"output\": found \"mug/web/zz.png\""));
  CHECK_THAT(problems_of("", assets), Catch::Contains("reactions.csv:1: the file is empty"));
  CHECK_THAT(problems_of("work_id,impressions,clicks,conversions\n", assets),
             Catch::Contains("no rows after the header"));
  CHECK_THAT(problems_of("work_id,impressions,clicks,conversions\nw1,\"10,1,0\n", assets),
             Catch::Contains("reactions.csv:2: a quoted field is never closed"));
}

TEST_CASE("reactions: ingest appends or replaces, the report gains the A/B comparison",
          "[unit][kpi]") {
  const fs::path run = make_reaction_run("reactions_ingest");
  const fs::path csv1 = run / "week1.csv";
  write_file(csv1,
             "work_id,impressions,clicks,conversions\n"
             "w1,600,30,3\n"
             "w2,1000,80,12\n");
  const fs::path csv2 = run / "week2.csv";
  write_file(csv2, "output,impressions,clicks,conversions\nmug/web/a-r1.png,400,20,2\n");
  IngestResult r = ingest_reactions(run, csv1, false);
  CHECK(r.rows == 2);
  CHECK(r.total_rows == 2);
  CHECK(r.assets == 2);
  r = ingest_reactions(run, csv2, false);  // appends
  CHECK(r.total_rows == 3);
  CHECK(r.clicks == 20);
  const auto stored = read_reactions(run);
  REQUIRE(stored.size() == 3);
  CHECK(stored[2].work_id == "w1");
  CHECK(stored[2].source == "week2.csv");

  // A bad CSV changes nothing.
  write_file(run / "bad.csv", "work_id,impressions,clicks,conversions\nw1,1,2,0\n");
  CHECK_THROWS_AS(ingest_reactions(run, run / "bad.csv", false), FormatError);
  CHECK(read_reactions(run).size() == 3);

  // A: 1000 impressions, 50 clicks, 5 conversions (w1 over both weeks); B: 1000, 80, 12.
  const KpiSummary s = compute_kpis(run);
  REQUIRE(s.ab.variants.size() == 2);
  CHECK(s.ab.baseline == "A");  // the first work item's variant
  const AbVariant& a = s.ab.variants[0];
  const AbVariant& b = s.ab.variants[1];
  CHECK(a.baseline);
  CHECK(a.impressions == 1000);
  CHECK(a.clicks == 50);
  CHECK(a.conversions == 5);
  CHECK(a.assets == 1);
  CHECK(a.rows == 2);
  CHECK(a.ctr.estimate == Approx(0.05));
  CHECK(std::isnan(a.ctr_diff.estimate));
  CHECK(b.ctr.estimate == Approx(0.08));
  CHECK(b.cvr.estimate == Approx(0.15));
  // The differences are the tested Newcombe interval and z-test on the variants' totals.
  CHECK(b.ctr_diff.estimate == Approx(0.03));
  CHECK(b.ctr_diff.low == Approx(newcombe_interval(80, 1000, 50, 1000).low));
  CHECK(b.ctr_p == Approx(two_proportion_p_value(80, 1000, 50, 1000)));
  CHECK(b.ctr_diff.excludes_zero());        // about 0.0084 to 0.0520
  CHECK_FALSE(b.cvr_diff.excludes_zero());  // 12/80 vs 5/50: about -0.079 to 0.160
  const auto verdicts = s.ab.verdicts();
  REQUIRE(verdicts.size() == 1);
  CHECK_THAT(verdicts[0], Catch::StartsWith("B vs A: CTR +3.00 pp"));
  CHECK_THAT(verdicts[0], Catch::Contains("), significant at 5 %; CVR +5.00 pp"));
  CHECK_THAT(verdicts[0], Catch::EndsWith("not significant at 5 %"));
  CHECK(s.to_json()["ab"]["variants"][1]["ctr_significant"] == true);

  const std::string html = render_kpi_html(s);
  CHECK_THAT(html, Catch::Contains("<h2>A/B results (campaign reactions)</h2>"));
  CHECK_THAT(html, Catch::Contains("class=\"whisker\""));
  CHECK_THAT(html, Catch::Contains("5.00% ["));
  CHECK_THAT(html, Catch::Contains("B vs A: CTR +3.00 pp"));
  const std::string head = render_kpi_headline(s);
  CHECK_THAT(head, Catch::Contains("A/B reactions      A (baseline): CTR 5.00% ["));
  CHECK_THAT(head, Catch::Contains("B vs A: CTR +3.00 pp"));

  // --replace starts over; kpi merge carries reactions.jsonl along.
  r = ingest_reactions(run, csv2, true);
  CHECK(r.total_rows == 1);
  CHECK(read_reactions(run).size() == 1);
  const fs::path merged = temp_dir("reactions_merged");
  merge_runs({run}, merged);
  CHECK(read_file(merged / "reactions.jsonl") == read_file(run / "reactions.jsonl"));
  CHECK(compute_kpis(merged).ab.variants.size() == 1);
}

TEST_CASE("reactions: a corrupt reactions.jsonl line is an error naming it", "[unit][kpi]") {
  const fs::path run = make_reaction_run("reactions_corrupt");
  write_file(run / "reactions.jsonl",
             "{\"work_id\":\"w1\",\"variant\":\"A\",\"impressions\":1,\"clicks\":1,"
             "\"conversions\":0}\n"
             "{\"work_id\":\"w1\",\"variant\":\"A\",\"impressions\":1,\"clicks\":2,"
             "\"conversions\":0}\n"
             "{\"work_id\":\"w2\",\"variant\":\"B\",\"impressions\":5,\"clicks\":1,"
             "\"conversions\":0}\n");
  try {
    compute_kpis(run);
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("reactions.jsonl:2"));
  }
}

TEST_CASE("studio kpi ingest on the command line", "[unit][kpi][cli]") {
  using studio::test::run_studio;
  using studio::test::shell_quote;
  const fs::path run = make_reaction_run("reactions_cli");
  const fs::path csv = run / "reactions.csv";
  write_file(csv,
             "work_id,variant,impressions,clicks,conversions\nw1,A,1000,50,5\nw2,B,1000,80,12\n");
  const auto ok =
      run_studio("kpi ingest " + shell_quote(run.string()) + " " + shell_quote(csv.string()));
  INFO(ok.output);
  CHECK(ok.exit_code == 0);
  CHECK_THAT(ok.output, Catch::Contains("ingested 2 row(s) for 2 asset(s)"));
  CHECK_THAT(ok.output, Catch::Contains("B vs A: CTR +3.00 pp"));
  CHECK_THAT(read_file(run / "report.html"), Catch::Contains("A/B results (campaign reactions)"));
  CHECK(fs::exists(run / "kpi.csv"));

  write_file(csv, "work_id,variant,impressions,clicks,conversions\nw1,A,10,50,5\n");
  const auto bad = run_studio("kpi ingest " + shell_quote(run.string()) + " " +
                              shell_quote(csv.string()) + " --replace");
  INFO(bad.output);
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output, Catch::Contains("reactions.csv:2: column \"clicks\""));
  CHECK(read_reactions(run).size() == 2);  // unchanged
}
