#include "pipeline/kpi.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "pipeline/journal.h"

namespace studio {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const std::vector<std::string> kStageOrder = {"decode", "text", "image", "edit", "encode", "write"};
const char* kFinalStage = "write";

std::string str(const json& j, const char* key, bool required = false) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw FormatError(fmt::format("missing \"{}\"", key));
    return {};
  }
  if (!it->is_string()) throw FormatError(fmt::format("\"{}\" is not a string", key));
  return it->get<std::string>();
}

double num(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_number()) throw FormatError(fmt::format("\"{}\" is not a number", key));
  const double v = it->get<double>();
  if (!std::isfinite(v)) throw FormatError(fmt::format("\"{}\" is not finite", key));
  return v;
}

int64_t integer(const json& j, const char* key, int64_t fallback = 0) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw FormatError(fmt::format("\"{}\" is not a number", key));
  return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(it->get<double>());
}

std::vector<fs::path> jsonl_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(dir, ec))
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".jsonl") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::size_t stage_rank(const std::string& stage) {
  const auto it = std::find(kStageOrder.begin(), kStageOrder.end(), stage);
  return static_cast<std::size_t>(it - kStageOrder.begin());
}

double event_cost(const StageEvent& e, const KpiConfig& c) {
  // GPU seconds at the GPU price; stages that used no GPU pay their compute at the CPU price.
  const double cpu_s = e.gpu_s > 0 ? 0.0 : e.compute_s;
  return (e.gpu_s * c.gpu_price_per_hour + cpu_s * c.cpu_price_per_hour) / 3600.0;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

json nan_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

// --- events ----------------------------------------------------------------------------------

json StageEvent::to_json() const {
  json j{{"type", "stage"},
         {"run_id", run_id},
         {"shard", shard},
         {"work_id", work_id},
         {"item", item},
         {"kind", kind},
         {"channel", channel},
         {"variant", variant},
         {"seed", seed},
         {"stage", stage},
         {"status", status},
         {"error", error},
         {"attempt", attempt},
         {"queue_wait_s", queue_wait_s},
         {"compute_s", compute_s},
         {"gpu_s", gpu_s},
         {"peak_mem_bytes", peak_mem_bytes},
         {"nfe", nfe},
         {"steps", steps},
         {"tokens", tokens},
         {"ttft_s", ttft_s},
         {"tpot_s", tpot_s},
         {"tokens_per_s", tokens_per_s},
         {"images", images},
         {"rounds", rounds},
         {"first_pass", first_pass ? json(*first_pass) : json(nullptr)},
         {"t_start", t_start},
         {"t_end", t_end}};
  if (revision > 0) {
    j["revision"] = revision;
    j["base_work_id"] = base_work_id;
  }
  return j;
}

StageEvent StageEvent::from_json(const json& j) {
  StageEvent e;
  e.run_id = str(j, "run_id");
  e.shard = str(j, "shard");
  e.work_id = str(j, "work_id", true);
  if (e.work_id.empty()) throw FormatError("empty \"work_id\"");
  e.item = str(j, "item");
  e.kind = str(j, "kind");
  e.channel = str(j, "channel");
  e.variant = str(j, "variant");
  e.seed = integer(j, "seed");
  e.stage = str(j, "stage", true);
  e.status = str(j, "status", true);
  if (e.status != "ok" && e.status != "failed" && e.status != "skipped")
    throw FormatError("\"status\" must be ok, failed or skipped, found \"" + e.status + "\"");
  e.error = str(j, "error");
  e.attempt = integer(j, "attempt", 1);
  e.queue_wait_s = num(j, "queue_wait_s");
  e.compute_s = num(j, "compute_s");
  e.gpu_s = num(j, "gpu_s");
  e.peak_mem_bytes = integer(j, "peak_mem_bytes");
  e.nfe = integer(j, "nfe");
  e.steps = integer(j, "steps");
  e.tokens = integer(j, "tokens");
  e.ttft_s = num(j, "ttft_s");
  e.tpot_s = num(j, "tpot_s");
  e.tokens_per_s = num(j, "tokens_per_s");
  e.images = integer(j, "images");
  e.rounds = integer(j, "rounds");
  const auto fp = j.find("first_pass");
  if (fp != j.end() && !fp->is_null()) {
    if (!fp->is_boolean()) throw FormatError("\"first_pass\" is not true, false or null");
    e.first_pass = fp->get<bool>();
  }
  e.t_start = num(j, "t_start");
  e.t_end = num(j, "t_end");
  if (e.t_end < e.t_start) throw FormatError("\"t_end\" is before \"t_start\"");
  e.revision = integer(j, "revision");
  if (e.revision < 0) throw FormatError("negative \"revision\"");
  e.base_work_id = str(j, "base_work_id");
  if (e.revision > 0 && e.base_work_id.empty())
    throw FormatError("a revision (\"revision\" > 0) needs its \"base_work_id\"");
  return e;
}

json RunEvent::to_json() const {
  return json{{"type", "run"},
              {"run_id", run_id},
              {"shard", shard},
              {"event", event},
              {"t", t},
              {"restart_count", restart_count},
              {"items_total", items_total}};
}

RunEvent RunEvent::from_json(const json& j) {
  RunEvent e;
  e.run_id = str(j, "run_id");
  e.shard = str(j, "shard");
  e.event = str(j, "event", true);
  if (e.event != "start" && e.event != "stop" && e.event != "interrupted" && e.event != "resumed")
    throw FormatError("\"event\" must be start, stop, interrupted or resumed, found \"" + e.event +
                      "\"");
  e.t = num(j, "t");
  e.restart_count = integer(j, "restart_count");
  e.items_total = integer(j, "items_total");
  return e;
}

// --- writing and reading the ledger ----------------------------------------------------------

LedgerWriter::LedgerWriter(fs::path run_dir, std::string shard, std::string run_id)
    : file_(run_dir / "ledger" / (shard + ".jsonl")),
      shard_(std::move(shard)),
      run_id_(std::move(run_id)) {
  if (shard_.empty() || shard_.find('/') != std::string::npos || shard_ == "." || shard_ == "..")
    throw UsageError("invalid ledger shard name \"" + shard_ + "\"", run_dir.string(),
                     "use a name like 0-of-1");
  out_ = std::make_unique<AppendFile>(file_);
  (void)read_jsonl(file_, /*repair=*/true, &warnings_);  // cut a torn last line off
}

LedgerWriter::~LedgerWriter() = default;  // AppendFile's destructor fsyncs

void LedgerWriter::write(StageEvent e) {
  if (e.run_id.empty()) e.run_id = run_id_;
  if (e.shard.empty()) e.shard = shard_;
  out_->append_line(e.to_json().dump(-1, ' ', false, json::error_handler_t::replace), false);
}

void LedgerWriter::write(RunEvent e) {
  if (e.run_id.empty()) e.run_id = run_id_;
  if (e.shard.empty()) e.shard = shard_;
  if (e.t == 0) e.t = unix_time_now();
  // Run events are rare and mark recovery points: make them durable at once.
  out_->append_line(e.to_json().dump(-1, ' ', false, json::error_handler_t::replace), true);
}

void LedgerWriter::flush() { out_->sync(); }
void LedgerWriter::close() { out_->close(); }

Ledger read_ledger(const fs::path& run_dir) {
  Ledger l;
  for (const auto& f : jsonl_files(run_dir / "ledger")) {
    ++l.files;
    for (const auto& line : read_jsonl(f, /*repair=*/false, &l.warnings)) {
      try {
        if (!line.value.is_object()) throw FormatError("not a JSON object");
        const std::string type = str(line.value, "type", true);
        if (type == "stage")
          l.stages.push_back(StageEvent::from_json(line.value));
        else if (type == "run")
          l.runs.push_back(RunEvent::from_json(line.value));
        else
          l.warnings.push_back(fmt::format("{}:{}: skipped a line of unknown type \"{}\"",
                                           f.string(), line.line, type));
      } catch (const FormatError& e) {
        throw_bad_jsonl_line(f, line.line, e.what_failed());
      }
    }
  }
  return l;
}

KpiConfig read_run_config(const fs::path& run_dir) {
  KpiConfig c;
  const fs::path file = run_dir / "run.json";
  std::error_code ec;
  if (!fs::exists(file, ec)) return c;
  std::ifstream in(file);
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw ConfigError("not a JSON object", file.string(),
                      "the runner writes run.json; rerun or fix it");
  try {
    c.run_id = str(j, "run_id");
    c.job_name = str(j, "job_name");
    c.job_file = str(j, "job_file");
    c.shards = integer(j, "shards", 1);
    if (j.contains("kpi") && j["kpi"].is_object()) {
      const json& k = j["kpi"];
      c.gpu_price_per_hour = num(k, "gpu_price_per_hour");
      c.cpu_price_per_hour = num(k, "cpu_price_per_hour");
      c.manual_price_per_hour = num(k, "manual_price_per_hour");
      for (const char* key : {"manual_minutes", "review_minutes"}) {
        if (!k.contains(key) || k[key].is_null()) continue;
        if (!k[key].is_object()) throw FormatError(fmt::format("\"kpi.{}\" is not an object", key));
        auto& m = std::string(key) == "manual_minutes" ? c.manual_minutes : c.review_minutes;
        for (const auto& [kind, v] : k[key].items()) {
          if (!v.is_number())
            throw FormatError(fmt::format("\"kpi.{}.{}\" is not a number", key, kind));
          m[kind] = v.get<double>();
        }
      }
    }
  } catch (const FormatError& e) {
    throw ConfigError(e.what_failed(), file.string(),
                      "the runner writes run.json from the job's kpi section");
  }
  return c;
}

std::vector<ReviewVerdict> read_reviews(const fs::path& run_dir,
                                        std::vector<std::string>* warnings) {
  const fs::path file = run_dir / "review.jsonl";
  std::vector<ReviewVerdict> out;
  for (const auto& line : read_jsonl(file, /*repair=*/false, warnings)) {
    try {
      if (!line.value.is_object()) throw FormatError("not a JSON object");
      const json& j = line.value;
      ReviewVerdict r;
      r.line = line.line;
      r.v = integer(j, "v", 1);
      if (r.v != 1 && r.v != 2)
        throw FormatError(fmt::format("\"v\" must be 1 or 2, found {}", r.v));
      r.work_id = str(j, "work_id");
      r.output = str(j, "output");
      if (r.work_id.empty() && r.output.empty())
        throw FormatError("needs \"work_id\" or \"output\"");
      if (j.contains("revision") && !j["revision"].is_null() && !j["revision"].is_number_integer())
        throw FormatError("\"revision\" is not an integer");
      r.revision = integer(j, "revision");
      if (r.revision < 0) throw FormatError("negative \"revision\"");
      r.verdict = str(j, "verdict", true);
      if (r.verdict != "accept" && r.verdict != "reject" && r.verdict != "revise")
        throw FormatError("\"verdict\" must be accept, reject or revise, found \"" + r.verdict +
                          "\"");
      r.reason = str(j, "reason");
      r.note = str(j, "note");
      r.reviewer = str(j, "reviewer");
      r.seconds = num(j, "seconds");
      if (r.seconds < 0) throw FormatError("negative \"seconds\"");
      r.time = str(j, "time");
      out.push_back(std::move(r));
    } catch (const FormatError& e) {
      throw FormatError(
          fmt::format("line {} is not a valid review: {}", line.line, e.what_failed()),
          fmt::format("{}:{}", file.string(), line.line),
          "each line: {\"v\": 2, \"work_id\" or \"output\", \"revision\", \"verdict\": "
          "\"accept\"|\"reject\"|\"revise\", \"reason\", \"note\", \"reviewer\", \"seconds\", "
          "\"time\"}");
    }
  }
  return out;
}

// --- computing -------------------------------------------------------------------------------

Quantiles quantiles(std::vector<double> v) {
  Quantiles q;
  q.n = v.size();
  if (v.empty()) {
    q.mean = q.p50 = q.p90 = q.min = q.max = kNaN;
    return q;
  }
  std::sort(v.begin(), v.end());
  auto at = [&](double p) {
    const double pos = p * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
  };
  q.mean = mean_of(v);
  q.p50 = at(0.5);
  q.p90 = at(0.9);
  q.min = v.front();
  q.max = v.back();
  return q;
}

double Yield::copy_fpy() const {
  return first_pass_n ? static_cast<double>(first_pass_ok) / static_cast<double>(first_pass_n)
                      : kNaN;
}
double Yield::human_fpy() const {
  return reviewed ? static_cast<double>(accepted_first_pass) / static_cast<double>(reviewed) : kNaN;
}
double ReviewSummary::human_fpy() const {
  return reviewed ? static_cast<double>(accepted_first_pass) / static_cast<double>(reviewed) : kNaN;
}

std::vector<StageEvent> dedupe_stage_events(const std::vector<StageEvent>& events,
                                            std::vector<StageEvent>* superseded) {
  std::map<std::pair<std::string, std::string>, std::size_t> best;
  std::vector<std::size_t> order;  // first appearance of each key, to keep a stable output order
  auto beats = [](const StageEvent& a, const StageEvent& b) {  // does a replace b?
    const bool as = a.status == "skipped", bs = b.status == "skipped";
    if (as != bs) return bs;
    return a.t_end >= b.t_end;
  };
  std::vector<bool> lost(events.size(), false);
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto key = std::make_pair(events[i].work_id, events[i].stage);
    const auto it = best.find(key);
    if (it == best.end()) {
      best.emplace(key, i);
      order.push_back(i);
    } else if (beats(events[i], events[it->second])) {
      lost[it->second] = true;
      it->second = i;
    } else {
      lost[i] = true;
    }
  }
  std::vector<StageEvent> out;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (!lost[i])
      out.push_back(events[i]);
    else if (superseded)
      superseded->push_back(events[i]);
  }
  return out;
}

KpiSummary compute_kpis(const Ledger& ledger, const KpiConfig& config,
                        const std::vector<ReviewVerdict>& reviews,
                        const std::map<std::string, std::string>& output_to_work_id,
                        const std::vector<Reaction>& reactions) {
  KpiSummary s;
  s.config = config;
  s.warnings = ledger.warnings;
  if (s.config.run_id.empty())
    for (const auto& r : ledger.runs)
      if (!r.run_id.empty()) {
        s.config.run_id = r.run_id;
        break;
      }

  std::vector<StageEvent> superseded;
  const std::vector<StageEvent> events = dedupe_stage_events(ledger.stages, &superseded);

  // The run's start: its first start event or stage start, over all shards; a shard's own start.
  double run_start = std::numeric_limits<double>::infinity(), run_end = 0;
  std::map<std::string, double> shard_start, shard_first_resume;
  for (const auto& r : ledger.runs) {
    if (r.event == "start") {
      run_start = std::min(run_start, r.t);
      auto it = shard_start.find(r.shard);
      shard_start[r.shard] = it == shard_start.end() ? r.t : std::min(it->second, r.t);
    } else if (r.event == "resumed") {
      ++s.resumes;
      auto it = shard_first_resume.find(r.shard);
      shard_first_resume[r.shard] =
          it == shard_first_resume.end() ? r.t : std::min(it->second, r.t);
    } else if (r.event == "interrupted") {
      ++s.interruptions;
    }
    s.max_restart_count = std::max(s.max_restart_count, r.restart_count);
    if ((r.event == "start" || r.event == "resumed") && r.restart_count > 0) ++s.preemptions;
  }
  for (const auto& e : events) {
    // Revision rounds come later (after a review): they do not stretch the run's makespan.
    if (e.revision > 0 || e.status == "skipped") continue;
    run_start = std::min(run_start, e.t_start);
    run_end = std::max(run_end, e.t_end);
  }
  if (!std::isfinite(run_start)) run_start = 0;
  s.run_start = run_start;
  s.run_end = std::max(run_end, run_start);
  s.makespan_s = s.run_end - s.run_start;

  // Downtime: for each resume, the gap since the shard's last line before it.
  for (const auto& r : ledger.runs) {
    if (r.event != "resumed") continue;
    double before = -1;
    for (const auto& e : ledger.stages)
      if (e.shard == r.shard && e.t_end < r.t) before = std::max(before, e.t_end);
    for (const auto& o : ledger.runs)
      if (&o != &r && o.shard == r.shard && o.t < r.t) before = std::max(before, o.t);
    if (before >= 0) s.downtime_s += r.t - before;
  }
  for (const auto& e : superseded) {
    if (e.status == "skipped") continue;
    s.redone_s += e.compute_s;
    s.cost_redone += event_cost(e, config);
  }
  s.time_lost_s = s.downtime_s + s.redone_s;

  // Per work item.
  std::map<std::string, std::vector<const StageEvent*>> by_item;
  for (const auto& e : events) by_item[e.work_id].push_back(&e);
  std::map<std::string, StageTotals> stages;
  for (auto& [id, evs] : by_item) {
    std::stable_sort(evs.begin(), evs.end(),
                     [](const StageEvent* a, const StageEvent* b) { return a->t_end < b->t_end; });
    ItemKpi it;
    const StageEvent& first = *evs.front();
    it.work_id = id;
    it.item = first.item;
    it.kind = first.kind;
    it.channel = first.channel;
    it.variant = first.variant;
    it.seed = first.seed;
    it.shard = first.shard;
    it.revision = first.revision;
    it.base_work_id = first.base_work_id;
    it.t_first_start = std::numeric_limits<double>::infinity();
    const StageEvent* last = nullptr;
    double ttft = 0, tpot = 0;
    for (const StageEvent* e : evs) {
      if (e->status == "skipped") continue;
      StageTotals& st = stages[e->stage];
      st.stage = e->stage;
      ++st.events;
      if (e->status == "failed") ++st.failed;
      st.queue_wait_s += e->queue_wait_s;
      st.compute_s += e->compute_s;
      st.gpu_s += e->gpu_s;
      last = e;
      it.t_first_start = std::min(it.t_first_start, e->t_start);
      it.attempts = std::max(it.attempts, e->attempt);
      it.queue_wait_s += e->queue_wait_s;
      it.compute_s += e->compute_s;
      it.gpu_s += e->gpu_s;
      it.cost += event_cost(*e, config);
      it.nfe += e->nfe;
      it.tokens += e->tokens;
      it.rounds = std::max(it.rounds, e->rounds);
      it.peak_mem_bytes = std::max(it.peak_mem_bytes, e->peak_mem_bytes);
      if (e->first_pass) it.first_pass = e->first_pass;
      if (e->ttft_s > 0 && (ttft == 0 || e->stage == "text")) ttft = e->ttft_s;
      if (e->tpot_s > 0 && (tpot == 0 || e->stage == "text")) tpot = e->tpot_s;
    }
    it.ttft_s = ttft;
    it.tpot_s = tpot;
    if (!last) {  // only skipped stages: not a work item of this run
      continue;
    }
    it.t_end = last->t_end;
    if (last->status == "failed") {
      it.status = "failed";
      it.failed_stage = last->stage;
      it.error = last->error;
    } else if (last->stage == kFinalStage) {
      it.status = "done";
    } else {
      it.status = "incomplete";
    }
    const auto ss = shard_start.find(it.shard);
    const double start = ss != shard_start.end() ? ss->second : run_start;
    it.turnaround_s = it.t_end - start;
    it.latency_s = it.t_end - it.t_first_start;
    const auto fr = shard_first_resume.find(it.shard);
    it.recovered = it.status == "done" && fr != shard_first_resume.end() && it.t_end > fr->second;
    s.items.push_back(std::move(it));
  }
  std::stable_sort(s.items.begin(), s.items.end(), [](const ItemKpi& a, const ItemKpi& b) {
    return a.t_first_start < b.t_first_start;
  });

  // Revisions: how many each original has, and the latest one that finished.
  std::map<std::string, std::size_t> index;  // work id -> position in s.items
  for (std::size_t i = 0; i < s.items.size(); ++i) index[s.items[i].work_id] = i;
  std::map<std::string, int64_t> latest_revision;
  std::map<std::pair<std::string, int64_t>, std::size_t> revision_index;  // (base, n) -> item
  for (std::size_t i = 0; i < s.items.size(); ++i) {
    const ItemKpi& it = s.items[i];
    if (it.revision == 0) continue;
    revision_index[{it.base_work_id, it.revision}] = i;
    const auto b = index.find(it.base_work_id);
    if (b != index.end()) ++s.items[b->second].revisions;
    if (it.status == "done")
      latest_revision[it.base_work_id] = std::max(latest_revision[it.base_work_id], it.revision);
  }

  // Human review: each line resolved to its base asset and the revision it reviewed.
  std::vector<ReviewVerdict> resolved;
  for (const auto& r : reviews) {
    ++s.review.lines;
    s.review.seconds += r.seconds;
    std::string id = r.work_id;
    const std::string where = r.line ? fmt::format("review.jsonl:{}", r.line) : "review.jsonl";
    if (id.empty()) {
      const auto o = output_to_work_id.find(r.output);
      if (o == output_to_work_id.end()) {
        s.warnings.push_back(fmt::format(
            "{}: review of \"{}\": no journal record names that output", where, r.output));
        continue;
      }
      id = o->second;
    }
    auto f = index.find(id);
    if (f != index.end() && s.items[f->second].revision > 0) {
      // A revision's own work id or output: the verdict is on that revision of its base asset.
      ReviewVerdict x = r;
      if (x.revision == 0) x.revision = s.items[f->second].revision;
      id = s.items[f->second].base_work_id;
      f = index.find(id);
      if (f != index.end()) {
        x.work_id = id;
        resolved.push_back(std::move(x));
        continue;
      }
    }
    if (f == index.end()) {
      s.warnings.push_back(
          fmt::format("{}: review of work item \"{}\", which is not in the ledger", where, id));
      continue;
    }
    if (s.items[f->second].status != "done") {
      s.warnings.push_back(
          fmt::format("{}: review of work item \"{}\", which did not finish (ignored)", where, id));
      continue;
    }
    ReviewVerdict x = r;
    x.work_id = id;
    resolved.push_back(std::move(x));
  }
  std::map<std::string, std::vector<const ReviewVerdict*>> lines_of;  // base -> lines, in order
  for (const auto& x : resolved) lines_of[x.work_id].push_back(&x);
  double revisions_accepted_on = 0;
  for (const auto& [id, lines] : lines_of) {
    ItemKpi& it = s.items[index.at(id)];
    const ReviewVerdict& last = *lines.back();
    it.review = last.verdict;
    it.review_revision = last.revision;
    it.first_review = lines.front()->verdict;
    it.review_lines = lines.size();
    it.review_reason = last.reason;
    it.review_note = last.note;
    bool clean = true;  // no reject or revise at any point
    for (const ReviewVerdict* l : lines) {
      it.review_seconds += l->seconds;
      if (l->verdict != "accept") {
        clean = false;
        s.review.issues.push_back(*l);
      }
      const auto rv = revision_index.find({id, l->revision});
      if (l->revision > 0 && rv != revision_index.end()) s.items[rv->second].review = l->verdict;
    }
    it.review_first_pass = last.verdict == "accept" && last.revision == 0 && clean;
    s.review.minutes_by_kind[it.kind] += it.review_seconds / 60.0;
    ++s.review.reviewed;
    if (last.verdict == "accept") {
      ++s.review.accepted;
      revisions_accepted_on += static_cast<double>(last.revision);
      if (it.review_first_pass) ++s.review.accepted_first_pass;
    } else {
      if (last.verdict == "reject") ++s.review.rejected;
      if (last.verdict == "revise") ++s.review.to_revise;
      const auto lr = latest_revision.find(id);
      if (last.revision >= (lr == latest_revision.end() ? 0 : lr->second))
        ++s.review.pending_revision;
    }
  }
  std::stable_sort(s.review.issues.begin(), s.review.issues.end(),
                   [](const ReviewVerdict& a, const ReviewVerdict& b) { return a.line < b.line; });
  s.review.minutes = s.review.seconds / 60.0;
  s.review.mean_seconds =
      s.review.lines ? s.review.seconds / static_cast<double>(s.review.lines) : kNaN;
  s.review.revisions_per_accepted =
      s.review.accepted ? revisions_accepted_on / static_cast<double>(s.review.accepted) : kNaN;

  // Stage totals in pipeline order.
  for (const auto& name : kStageOrder)
    if (stages.count(name)) s.stages.push_back(stages[name]);
  for (const auto& [name, st] : stages)
    if (stage_rank(name) == kStageOrder.size()) s.stages.push_back(st);

  // Totals and groups.
  std::vector<double> turnaround, latency;
  std::map<std::string, std::vector<double>> turnaround_by_kind;
  std::map<std::string, GroupKpi> channels, variants, kinds;
  std::map<std::string, std::vector<double>> g_turn, g_cost;  // key: "c:"/"v:"/"k:" + name
  for (const auto& it : s.items) {
    s.compute_s += it.compute_s;
    s.gpu_s += it.gpu_s;
    s.cost_total += it.cost;
    if (it.revision > 0) {
      // A revision: counted apart; its cost goes to its groups' totals (cost per asset includes
      // the cost of revising), not to their item, asset or yield counts.
      ++s.revisions_made;
      if (it.status == "done") ++s.revisions_done;
      if (it.status == "failed") ++s.revisions_failed;
      s.revision_cost += it.cost;
      s.revision_compute_s += it.compute_s;
      for (auto* m : {&channels, &variants, &kinds}) {
        const std::string& name =
            m == &channels ? it.channel : (m == &variants ? it.variant : it.kind);
        GroupKpi& g = (*m)[name];
        g.name = name;
        g.compute_s += it.compute_s;
        g.cost_total += it.cost;
      }
      continue;
    }
    ++s.work_items;
    if (it.attempts > 1) {
      ++s.retried;
      if (it.status == "done") ++s.retried_ok;
    }
    const bool done = it.status == "done";
    if (done) {
      ++s.assets;
      turnaround.push_back(it.turnaround_s);
      latency.push_back(it.latency_s);
      turnaround_by_kind[it.kind].push_back(it.turnaround_s);
      const auto mm = config.manual_minutes.find(it.kind);
      const auto rm = config.review_minutes.find(it.kind);
      if (mm != config.manual_minutes.end()) s.manual_hours += mm->second / 60.0;
      if (rm != config.review_minutes.end()) s.review_hours += rm->second / 60.0;
      if (it.recovered) ++s.recovered;
    } else if (it.status == "failed") {
      ++s.failed;
    } else {
      ++s.incomplete;
    }
    auto add = [&](std::map<std::string, GroupKpi>& m, const std::string& prefix,
                   const std::string& name, Yield& total_yield, bool count_total) {
      GroupKpi& g = m[name];
      g.name = name;
      ++g.items;
      g.compute_s += it.compute_s;
      g.cost_total += it.cost;
      if (done) {
        ++g.assets;
        g_turn[prefix + name].push_back(it.turnaround_s);
        g_cost[prefix + name].push_back(it.cost);
      }
      if (it.status == "failed") ++g.failed;
      for (Yield* y : {&g.yield, count_total ? &total_yield : nullptr}) {
        if (!y) continue;
        if (it.first_pass) {
          ++y->first_pass_n;
          if (*it.first_pass) ++y->first_pass_ok;
        }
        if (done && !it.review.empty()) {
          ++y->reviewed;
          if (it.review == "accept") ++y->accepted;
          if (it.review_first_pass) ++y->accepted_first_pass;
        }
      }
    };
    add(channels, "c:", it.channel, s.yield, true);
    add(variants, "v:", it.variant, s.yield, false);
    add(kinds, "k:", it.kind, s.yield, false);
  }
  s.turnaround = quantiles(turnaround);
  s.latency = quantiles(latency);
  for (auto& [k, v] : turnaround_by_kind) s.turnaround_by_kind[k] = quantiles(v);
  s.throughput_per_hour =
      s.makespan_s > 0 ? static_cast<double>(s.assets) * 3600.0 / s.makespan_s : 0;
  s.cost_per_asset = s.assets ? s.cost_total / static_cast<double>(s.assets) : kNaN;
  s.hours_replaced = s.manual_hours - s.review_hours;
  auto finish = [&](std::map<std::string, GroupKpi>& m, const std::string& prefix,
                    std::vector<GroupKpi>& out) {
    for (auto& [name, g] : m) {
      g.mean_turnaround_s = mean_of(g_turn[prefix + name]);
      g.mean_cost = mean_of(g_cost[prefix + name]);
      if (prefix == "k:") {
        const auto mm = config.manual_minutes.find(name);
        g.manual_minutes = mm != config.manual_minutes.end() ? mm->second : kNaN;
      }
      out.push_back(g);
    }
  };
  finish(channels, "c:", s.by_channel);
  finish(variants, "v:", s.by_variant);
  finish(kinds, "k:", s.by_kind);

  // A/B on campaign reactions: the baseline is the variant of the run's first work item.
  std::string first_variant;
  for (const auto& it : s.items)
    if (it.revision == 0) {
      first_variant = it.variant;
      break;
    }
  s.ab = compare_variants(reactions, first_variant);
  return s;
}

KpiSummary compute_kpis(const fs::path& run_dir) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec))
    throw IoError("no such run folder", run_dir.string(), "pass the output folder of `studio run`");
  Ledger ledger = read_ledger(run_dir);
  if (ledger.files == 0)
    throw IoError(
        "the run folder has no ledger (ledger/*.jsonl)", run_dir.string(),
        "pass the output folder of `studio run`, or `studio kpi merge` shard folders first");
  const KpiConfig config = read_run_config(run_dir);
  std::vector<std::string> warnings;
  const auto reviews = read_reviews(run_dir, &warnings);
  std::map<std::string, std::string> outputs;
  bool need_outputs = false;
  for (const auto& r : reviews) need_outputs = need_outputs || r.work_id.empty();
  if (need_outputs)
    for (const auto& r : read_all_journals(run_dir, &warnings))
      if (!r.output.empty()) outputs[r.output] = r.work_id;
  const auto reactions = read_reactions(run_dir, &warnings);
  KpiSummary s = compute_kpis(ledger, config, reviews, outputs, reactions);
  s.warnings.insert(s.warnings.end(), warnings.begin(), warnings.end());
  return s;
}

json KpiSummary::to_json() const {
  auto q = [](const Quantiles& x) {
    return json{{"n", x.n},
                {"mean", nan_null(x.mean)},
                {"p50", nan_null(x.p50)},
                {"p90", nan_null(x.p90)},
                {"min", nan_null(x.min)},
                {"max", nan_null(x.max)}};
  };
  auto y = [](const Yield& x) {
    return json{{"first_pass_n", x.first_pass_n},
                {"first_pass_ok", x.first_pass_ok},
                {"copy_fpy", nan_null(x.copy_fpy())},
                {"reviewed", x.reviewed},
                {"accepted", x.accepted},
                {"accepted_first_pass", x.accepted_first_pass},
                {"human_fpy", nan_null(x.human_fpy())},
                {"review_fpy", nan_null(x.review_fpy())}};
  };
  auto groups = [&](const std::vector<GroupKpi>& gs) {
    json a = json::array();
    for (const auto& g : gs)
      a.push_back({{"name", g.name},
                   {"items", g.items},
                   {"assets", g.assets},
                   {"failed", g.failed},
                   {"yield", y(g.yield)},
                   {"mean_turnaround_s", nan_null(g.mean_turnaround_s)},
                   {"mean_cost", nan_null(g.mean_cost)},
                   {"cost_total", g.cost_total},
                   {"compute_s", g.compute_s},
                   {"manual_minutes", nan_null(g.manual_minutes)}});
    return a;
  };
  json stages_j = json::array();
  for (const auto& st : stages)
    stages_j.push_back({{"stage", st.stage},
                        {"events", st.events},
                        {"failed", st.failed},
                        {"queue_wait_s", st.queue_wait_s},
                        {"compute_s", st.compute_s},
                        {"gpu_s", st.gpu_s}});
  json failures = json::array();
  for (const auto& it : items)
    if (it.status == "failed")
      failures.push_back({{"work_id", it.work_id},
                          {"item", it.item},
                          {"kind", it.kind},
                          {"channel", it.channel},
                          {"variant", it.variant},
                          {"stage", it.failed_stage},
                          {"error", it.error},
                          {"attempts", it.attempts}});
  json by_kind_t = json::object();
  for (const auto& [k, v] : turnaround_by_kind) by_kind_t[k] = q(v);
  json issues = json::array();
  for (const auto& r : review.issues)
    issues.push_back({{"work_id", r.work_id},
                      {"revision", r.revision},
                      {"verdict", r.verdict},
                      {"reason", r.reason},
                      {"note", r.note},
                      {"reviewer", r.reviewer},
                      {"seconds", r.seconds},
                      {"time", r.time}});
  json human = {{"verdict_lines", review.lines},
                {"reviewed", review.reviewed},
                {"accepted", review.accepted},
                {"accepted_first_pass", review.accepted_first_pass},
                {"human_fpy", nan_null(review.human_fpy())},
                {"rejected", review.rejected},
                {"to_revise", review.to_revise},
                {"pending_revision", review.pending_revision},
                {"revisions_per_accepted", nan_null(review.revisions_per_accepted)},
                {"review_seconds", review.seconds},
                {"review_minutes", review.minutes},
                {"review_minutes_by_kind", review.minutes_by_kind},
                {"mean_seconds_per_verdict", nan_null(review.mean_seconds)},
                {"configured_review_hours", review_hours},
                {"issues", issues}};
  return json{{"run_id", config.run_id},
              {"job_name", config.job_name},
              {"work_items", work_items},
              {"assets", assets},
              {"failed", failed},
              {"incomplete", incomplete},
              {"retried", retried},
              {"retried_ok", retried_ok},
              {"run_start", run_start},
              {"run_end", run_end},
              {"makespan_s", makespan_s},
              {"throughput_per_hour", throughput_per_hour},
              {"turnaround_s", q(turnaround)},
              {"turnaround_s_by_kind", by_kind_t},
              {"latency_s", q(latency)},
              {"stages", stages_j},
              {"compute_s", compute_s},
              {"gpu_s", gpu_s},
              {"cost_total", cost_total},
              {"cost_per_asset", nan_null(cost_per_asset)},
              {"prices",
               {{"gpu_price_per_hour", config.gpu_price_per_hour},
                {"cpu_price_per_hour", config.cpu_price_per_hour},
                {"manual_price_per_hour", config.manual_price_per_hour}}},
              {"manual_hours", manual_hours},
              {"review_hours", review_hours},
              {"hours_replaced", hours_replaced},
              {"yield", y(yield)},
              {"human_review", human},
              {"revisions",
               {{"made", revisions_made},
                {"done", revisions_done},
                {"failed", revisions_failed},
                {"cost", revision_cost},
                {"compute_s", revision_compute_s}}},
              {"ab", ab.to_json()},
              {"by_channel", groups(by_channel)},
              {"by_variant", groups(by_variant)},
              {"by_kind", groups(by_kind)},
              {"failures", failures},
              {"restarts",
               {{"preemptions", preemptions},
                {"interruptions", interruptions},
                {"resumes", resumes},
                {"max_restart_count", max_restart_count},
                {"recovered_items", recovered},
                {"downtime_s", downtime_s},
                {"redone_s", redone_s},
                {"time_lost_s", time_lost_s},
                {"cost_redone", cost_redone}}},
              {"warnings", warnings}};
}

// --- merging ---------------------------------------------------------------------------------

MergeResult merge_runs(const std::vector<fs::path>& run_dirs, const fs::path& out_dir) {
  if (run_dirs.empty()) throw UsageError("no run folders to merge");
  std::error_code ec;
  const fs::path out_canon = fs::weakly_canonical(out_dir, ec);
  for (const auto& d : run_dirs) {
    if (!fs::is_directory(d, ec))
      throw IoError("no such run folder", d.string(), "pass run (or shard) output folders");
    if (fs::weakly_canonical(d, ec) == out_canon)
      throw UsageError("--out is one of the folders being merged", out_dir.string(),
                       "write the merged run to a new folder");
  }
  for (const auto& f : jsonl_files(out_dir / "ledger"))
    if (f.filename() != "merged.jsonl")
      throw UsageError(
          "the --out folder already holds a ledger shard (" + f.filename().string() + ")",
          out_dir.string(), "merge into a new or empty folder");

  MergeResult res;
  std::vector<StageEvent> stages;
  std::vector<RunEvent> runs;
  std::vector<JournalRecord> journal;
  std::optional<fs::path> run_json, review, reactions;
  for (const auto& d : run_dirs) {
    const Ledger l = read_ledger(d);
    res.warnings.insert(res.warnings.end(), l.warnings.begin(), l.warnings.end());
    const auto jfiles = jsonl_files(d / "journal");
    if (l.files == 0 && jfiles.empty())
      throw IoError("the folder has neither ledger/*.jsonl nor journal/*.jsonl", d.string(),
                    "pass the output folders of `studio run` shards");
    res.ledger_files += l.files;
    res.journal_files += jfiles.size();
    stages.insert(stages.end(), l.stages.begin(), l.stages.end());
    runs.insert(runs.end(), l.runs.begin(), l.runs.end());
    const auto j = read_all_journals(d, &res.warnings);
    journal.insert(journal.end(), j.begin(), j.end());
    if (!run_json && fs::exists(d / "run.json", ec)) run_json = d / "run.json";
    if (!review && fs::exists(d / "review.jsonl", ec)) review = d / "review.jsonl";
    if (!reactions && fs::exists(d / "reactions.jsonl", ec)) reactions = d / "reactions.jsonl";
  }

  const auto kept = dedupe_stage_events(stages);
  res.duplicates_dropped = stages.size() - kept.size();
  // Run events: drop exact repeats (the same shard folder passed twice).
  std::vector<RunEvent> run_kept;
  std::set<std::string> seen;
  for (const auto& r : runs)
    if (seen.insert(r.to_json().dump()).second) run_kept.push_back(r);

  std::vector<std::pair<double, std::string>> lines;
  for (const auto& r : run_kept) lines.emplace_back(r.t, r.to_json().dump());
  for (const auto& e : kept) lines.emplace_back(e.t_end, e.to_json().dump());
  std::stable_sort(lines.begin(), lines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string ledger_text;
  for (const auto& [t, line] : lines) ledger_text += line + "\n";
  res.ledger = out_dir / "ledger" / "merged.jsonl";
  fs::create_directories(res.ledger.parent_path());
  write_file_atomic(res.ledger, ledger_text);
  res.stage_events = kept.size();
  res.run_events = run_kept.size();

  // Journal: the last record per work item (by time; ties: the later line).
  std::map<std::string, std::size_t> last;
  for (std::size_t i = 0; i < journal.size(); ++i) {
    const auto it = last.find(journal[i].work_id);
    if (it == last.end() || journal[i].time >= journal[it->second].time)
      last[journal[i].work_id] = i;
  }
  std::vector<const JournalRecord*> jkept;
  for (const auto& [id, i] : last) jkept.push_back(&journal[i]);
  std::stable_sort(jkept.begin(), jkept.end(), [](const JournalRecord* a, const JournalRecord* b) {
    return a->time < b->time;
  });
  std::string journal_text;
  for (const auto* r : jkept) journal_text += r->to_json().dump() + "\n";
  res.journal = out_dir / "journal" / "merged.jsonl";
  fs::create_directories(res.journal.parent_path());
  write_file_atomic(res.journal, journal_text);
  res.journal_records = jkept.size();

  if (run_json) {
    std::ifstream in(*run_json);
    json j = json::parse(in, nullptr, false);
    if (j.is_object()) {
      json from = json::array();
      for (const auto& d : run_dirs) from.push_back(d.string());
      j["merged_from"] = from;
      write_file_atomic(out_dir / "run.json", j.dump(2) + "\n");
    }
  }
  if (review)
    fs::copy_file(*review, out_dir / "review.jsonl", fs::copy_options::overwrite_existing);
  if (reactions)
    fs::copy_file(*reactions, out_dir / "reactions.jsonl", fs::copy_options::overwrite_existing);
  return res;
}

// --- rendering -------------------------------------------------------------------------------

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

std::string fmt_num(double v, int decimals = 1) {
  if (!std::isfinite(v)) return "n/a";
  return fmt::format("{:.{}f}", v, decimals);
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s)) return "n/a";
  if (std::fabs(s) >= 3600) return fmt::format("{:.2f} h", s / 3600);
  if (std::fabs(s) >= 60) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.1f} s", s);
}

std::string fmt_money(double v) {
  if (!std::isfinite(v)) return "n/a";
  return std::fabs(v) < 1 ? fmt::format("${:.4f}", v) : fmt::format("${:.2f}", v);
}

std::string fmt_pct(double v) { return std::isfinite(v) ? fmt::format("{:.0f}%", v * 100) : "n/a"; }

// A rate with two decimals (CTR, CVR: often a few percent).
std::string fmt_rate(double v) {
  return std::isfinite(v) ? fmt::format("{:.2f}%", v * 100) : "n/a";
}

// A difference of two rates in percentage points with its interval.
std::string fmt_diff(const Interval& d) {
  if (!std::isfinite(d.estimate)) return "n/a";
  return fmt::format("{:+.2f} pp [{:+.2f}, {:+.2f}]", d.estimate * 100, d.low * 100, d.high * 100);
}

std::string csv_field(const std::string& s) {
  std::string v = s;
  // A cell starting with = + - @ is a formula in spreadsheets: keep it text.
  if (!v.empty() && std::string("=+-@\t\r").find(v[0]) != std::string::npos) v = "'" + v;
  if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_num(double v, int decimals = 3) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : std::string();
}

// --- inline SVG charts ---

const char* kColors[] = {"#3b6fb6", "#e0803a", "#4d9a5b", "#b8475a", "#7b5ea7"};

struct Series {
  std::string name;
  std::vector<double> values;  // one per label; NaN = no bar
};

// Horizontal grouped bars: one group per label, one bar per series, one scale.
std::string svg_hbars(const std::vector<std::string>& labels, const std::vector<Series>& series,
                      const std::function<std::string(double)>& format, int w = 640, int left = 170,
                      bool hide_zero = false) {
  if (labels.empty()) return "<p class=\"none\">no data</p>";
  const int right = 90, bar = 14, gap = 10;
  const int legend = series.size() > 1 ? 22 : 0;
  const int group_h = static_cast<int>(series.size()) * bar + gap;
  const int h = legend + static_cast<int>(labels.size()) * group_h + 6;
  double max = 0;
  for (const auto& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) max = std::max(max, v);
  if (max <= 0) max = 1;
  std::string o = fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\">",
      w, h, w, h);
  if (legend)
    for (std::size_t k = 0; k < series.size(); ++k) {
      const int x =
          left + static_cast<int>(k) * std::min(150, (w - left) / static_cast<int>(series.size()));
      o += fmt::format(
          "<rect x=\"{}\" y=\"4\" width=\"12\" height=\"12\" fill=\"{}\"/>"
          "<text x=\"{}\" y=\"14\">{}</text>",
          x, kColors[k % 5], x + 16, html_escape(series[k].name));
    }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int y0 = legend + static_cast<int>(i) * group_h;
    std::string label = labels[i];
    const std::size_t room = static_cast<std::size_t>(std::max(4, (left - 10) / 6));
    if (label.size() > room) {  // shorten, never inside a UTF-8 sequence
      std::size_t cut = room - 1;
      while (cut > 0 && (static_cast<unsigned char>(label[cut]) & 0xC0) == 0x80) --cut;
      label = label.substr(0, cut) + "…";
    }
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", left - 6,
                     y0 + static_cast<int>(series.size()) * bar / 2 + 4, html_escape(label));
    for (std::size_t k = 0; k < series.size(); ++k) {
      const double v = i < series[k].values.size() ? series[k].values[i] : kNaN;
      const int y = y0 + static_cast<int>(k) * bar;
      if (hide_zero && v == 0) continue;  // keeps sparse charts readable
      if (!std::isfinite(v)) {
        o += fmt::format("<text x=\"{}\" y=\"{}\" class=\"muted\">n/a</text>", left + 4,
                         y + bar - 3);
        continue;
      }
      const double bw = std::max(0.0, v / max * (w - left - right));
      o += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\">"
          "<title>{}: {}</title></rect>"
          "<text x=\"{:.1f}\" y=\"{}\">{}</text>",
          left, y + 1, bw, bar - 2, kColors[k % 5], html_escape(series[k].name),
          html_escape(format(v)), left + bw + 4, y + bar - 3, html_escape(format(v)));
    }
  }
  return o + "</svg>";
}

// Vertical histogram of values.
std::string svg_histogram(const std::vector<double>& values) {
  if (values.empty()) return "<p class=\"none\">no finished assets</p>";
  const double lo = *std::min_element(values.begin(), values.end());
  const double hi = *std::max_element(values.begin(), values.end());
  const std::size_t bins = std::min<std::size_t>(
      12, std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(std::sqrt(values.size())))));
  const double width = hi > lo ? (hi - lo) / static_cast<double>(bins) : 1.0;
  std::vector<std::size_t> counts(bins, 0);
  for (double v : values) {
    std::size_t b = hi > lo ? static_cast<std::size_t>((v - lo) / width) : 0;
    counts[std::min(b, bins - 1)]++;
  }
  const std::size_t cmax = *std::max_element(counts.begin(), counts.end());
  const int w = 640, h = 220, left = 40, bottom = 36, top = 20;
  const double bw = static_cast<double>(w - left - 10) / static_cast<double>(bins);
  std::string o = fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\">",
      w, h, w, h);
  o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>", left,
                   h - bottom, w - 10, h - bottom);
  o +=
      fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", left - 4, top + 8, cmax);
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>", left - 4, h - bottom);
  for (std::size_t b = 0; b < bins; ++b) {
    const double bh =
        static_cast<double>(counts[b]) / static_cast<double>(cmax) * (h - bottom - top);
    const double x = left + static_cast<double>(b) * bw;
    const double from = lo + width * static_cast<double>(b);
    o += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
        "<title>{} – {}: {} assets</title></rect>",
        x + 1, h - bottom - bh, bw - 2, bh, kColors[0], html_escape(fmt_duration(from)),
        html_escape(fmt_duration(from + width)), counts[b]);
    if (counts[b])
      o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>",
                       x + bw / 2, h - bottom - bh - 3, counts[b]);
    if (bins <= 8 || b % 2 == 0)
      o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>", x,
                       h - bottom + 14, html_escape(fmt_duration(from)));
  }
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", w - 10, h - bottom + 14,
                   html_escape(fmt_duration(hi)));
  o += fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"muted\">turnaround "
      "(from the run's start)</text>",
      (w + left) / 2, h - 4);
  return o + "</svg>";
}

// Step line of cumulative finished assets over time since the run's start.
std::string svg_cumulative(std::vector<double> t, double makespan) {
  if (t.empty()) return "<p class=\"none\">no finished assets</p>";
  std::sort(t.begin(), t.end());
  const int w = 640, h = 220, left = 40, bottom = 36, top = 10, right = 14;
  const double tmax = std::max({makespan, t.back(), 1e-9});
  const double n = static_cast<double>(t.size());
  auto X = [&](double v) { return left + v / tmax * (w - left - right); };
  auto Y = [&](double c) { return h - bottom - c / n * (h - bottom - top); };
  std::string pts = fmt::format("{:.1f},{:.1f}", X(0), Y(0));
  for (std::size_t i = 0; i < t.size(); ++i) {
    pts += fmt::format(" {:.1f},{:.1f}", X(t[i]), Y(static_cast<double>(i)));
    pts += fmt::format(" {:.1f},{:.1f}", X(t[i]), Y(static_cast<double>(i + 1)));
  }
  pts += fmt::format(" {:.1f},{:.1f}", X(tmax), Y(n));
  std::string o = fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\">",
      w, h, w, h);
  o += fmt::format(
      "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>"
      "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>",
      left, h - bottom, w - right, h - bottom, left, top, left, h - bottom);
  o += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>", pts,
                   kColors[0]);
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", left - 4, top + 8,
                   t.size());
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>", left - 4, h - bottom);
  o += fmt::format("<text x=\"{}\" y=\"{}\">0</text>", left, h - bottom + 14);
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", w - right,
                   h - bottom + 14, html_escape(fmt_duration(tmax)));
  o += fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"muted\">time since the "
      "run's start</text>",
      (w + left) / 2, h - 4);
  return o + "</svg>";
}

std::string td(const std::string& s, bool num = false) {
  return std::string(num ? "<td class=\"n\">" : "<td>") + html_escape(s) + "</td>";
}

// Vertical bars with 95% error whiskers, one per label (values and bounds in [0, 1]).
std::string svg_ci_bars(const std::vector<std::string>& labels, const std::vector<Interval>& v,
                        const std::string& title) {
  if (labels.empty()) return "<p class=\"none\">no data</p>";
  const int left = 56, bottom = 34, top = 38, right = 14, slot = 110;
  const int w = std::max(400, left + right + static_cast<int>(labels.size()) * slot), h = 230;
  double max = 0;
  for (const auto& i : v)
    if (std::isfinite(i.high)) max = std::max(max, i.high);
  if (max <= 0) max = 0.01;
  max *= 1.1;
  auto Y = [&](double x) { return h - bottom - x / max * (h - bottom - top); };
  std::string o = fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\">",
      w, h, w, h);
  o += fmt::format("<text x=\"4\" y=\"14\">{}</text>", html_escape(title));
  o += fmt::format(
      "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>"
      "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>",
      left, h - bottom, w - right, h - bottom, left, top, left, h - bottom);
  o += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", left - 4,
                   Y(max) + 8, html_escape(fmt_rate(max)));
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0%</text>", left - 4, h - bottom);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const double cx = left + (static_cast<double>(i) + 0.5) * slot;
    o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>", cx,
                     h - bottom + 14, html_escape(labels[i]));
    const Interval& x = i < v.size() ? v[i] : Interval{kNaN, kNaN, kNaN};
    if (!std::isfinite(x.estimate)) {
      o += fmt::format(
          "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" class=\"muted\">n/a</text>", cx,
          h - bottom - 4);
      continue;
    }
    const double bw = slot * 0.5;
    o += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
        "<title>{}: {} (95% CI {} to {})</title></rect>",
        cx - bw / 2, Y(x.estimate), bw, h - bottom - Y(x.estimate), kColors[i % 5],
        html_escape(labels[i]), html_escape(fmt_rate(x.estimate)), html_escape(fmt_rate(x.low)),
        html_escape(fmt_rate(x.high)));
    // The whisker: a vertical line from the low to the high bound with caps.
    o += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#222\" "
        "stroke-width=\"1.5\" class=\"whisker\"/>"
        "<line x1=\"{3:.1f}\" y1=\"{1:.1f}\" x2=\"{4:.1f}\" y2=\"{1:.1f}\" stroke=\"#222\"/>"
        "<line x1=\"{3:.1f}\" y1=\"{2:.1f}\" x2=\"{4:.1f}\" y2=\"{2:.1f}\" stroke=\"#222\"/>",
        cx, Y(x.low), Y(x.high), cx - 8, cx + 8);
    o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", cx,
                     Y(x.high) - 5, html_escape(fmt_rate(x.estimate)));
  }
  return o + "</svg>";
}

// "Human review": yields, verdict counts, revisions, review time and the reject/revise lines.
std::string render_review_section(const KpiSummary& s) {
  if (s.review.lines == 0) return {};
  const ReviewSummary& r = s.review;
  std::string o = "<h2>Human review</h2>\n<table class=\"head\">\n";
  auto row = [&](const std::string& k, const std::string& v) {
    o += "<tr><td>" + html_escape(k) + "</td><td>" + html_escape(v) + "</td></tr>\n";
  };
  row("Human first-pass yield",
      fmt::format("{} ({} of {} reviewed assets accepted on revision 0 with no reject or revise)",
                  fmt_pct(r.human_fpy()), r.accepted_first_pass, r.reviewed));
  row("Final verdicts", fmt::format("{} accepted, {} rejected, {} to revise; {} pending revision "
                                    "(no revision made since the verdict)",
                                    r.accepted, r.rejected, r.to_revise, r.pending_revision));
  row("Revisions per accepted asset",
      fmt::format("{} (over {} accepted assets)", fmt_num(r.revisions_per_accepted, 2),
                  r.accepted));
  row("Revision work items",
      fmt::format(
          "{} made, {} finished, {} failed; {} compute, {} (included in the cost per asset)",
          s.revisions_made, s.revisions_done, s.revisions_failed,
          fmt_duration(s.revision_compute_s), fmt_money(s.revision_cost)));
  std::string kinds;
  for (const auto& [kind, m] : r.minutes_by_kind)
    kinds += fmt::format("{}{} {:.1f} min", kinds.empty() ? "" : ", ",
                         kind.empty() ? "(none)" : kind, m);
  row("Review time (measured)",
      fmt::format("{:.1f} min over {} verdicts, {} s per verdict{}", r.minutes, r.lines,
                  fmt_num(r.mean_seconds, 0), kinds.empty() ? "" : "; " + kinds));
  row("Review time (manual baseline)",
      fmt::format("{:.2f} h from run.json's review_minutes per asset ({:.2f} h measured)",
                  s.review_hours, r.minutes / 60));
  o += "</table>\n";
  {
    std::vector<std::string> labels;
    Series fpy{"human first-pass yield", {}};
    for (const auto& g : s.by_kind) {
      if (!g.yield.reviewed) continue;
      labels.push_back(g.name.empty() ? "(none)" : g.name);
      fpy.values.push_back(g.yield.human_fpy() * 100);
    }
    if (!labels.empty())
      o += "<h3>Human first-pass yield by kind</h3>" +
           svg_hbars(
               labels, {fpy}, [](double v) { return fmt::format("{:.0f}%", v); }, 640, 170);
  }
  o += "<h3>Rejected and revised</h3>\n";
  if (r.issues.empty()) {
    o += "<p class=\"none\">none</p>\n";
    return o;
  }
  std::map<std::string, const ItemKpi*> by_id;
  for (const auto& it : s.items) by_id[it.work_id] = &it;
  o += "<table><tr><th>work item</th><th>item</th><th>kind</th><th>channel</th><th>variant</th>"
       "<th>revision</th><th>verdict</th><th>reason</th><th>note</th><th>reviewer</th>"
       "<th>time on asset</th></tr>\n";
  for (const auto& v : r.issues) {
    const auto f = by_id.find(v.work_id);
    const ItemKpi* it = f == by_id.end() ? nullptr : f->second;
    o += "<tr>" + td(v.work_id) + td(it ? it->item : "") + td(it ? it->kind : "") +
         td(it ? it->channel : "") + td(it ? it->variant : "") +
         td(std::to_string(v.revision), true) + td(v.verdict) + td(v.reason) + td(v.note) +
         td(v.reviewer) + td(fmt_duration(v.seconds), true) + "</tr>\n";
  }
  return o + "</table>\n";
}

// "A/B results (campaign reactions)": CTR and CVR per variant with intervals, the differences
// from the baseline, bars with whiskers and the verdict lines.
std::string render_ab_section(const KpiSummary& s) {
  if (s.ab.empty()) return {};
  std::string o = "<h2>A/B results (campaign reactions)</h2>\n";
  o += fmt::format(
      "<p class=\"muted\">{} reaction rows; baseline variant {}. Intervals: 95% Wilson score "
      "(rates) and Newcombe hybrid score (differences); p: two-sided pooled two-proportion "
      "z-test.</p>\n",
      s.ab.rows, html_escape(s.ab.baseline.empty() ? "(no variant)" : s.ab.baseline));
  o += "<table><tr><th>variant</th><th>assets</th><th>impressions</th><th>clicks</th>"
       "<th>conversions</th><th>CTR [95% CI]</th><th>CVR [95% CI]</th>"
       "<th>CTR vs baseline [95% CI]</th><th>p</th><th>CVR vs baseline [95% CI]</th>"
       "<th>p</th></tr>\n";
  std::vector<std::string> labels;
  std::vector<Interval> ctr, cvr;
  for (const auto& v : s.ab.variants) {
    const std::string name =
        (v.name.empty() ? std::string("(no variant)") : v.name) + (v.baseline ? " (baseline)" : "");
    auto rate = [](const Interval& i) {
      return fmt::format("{} [{}, {}]", fmt_rate(i.estimate), fmt_rate(i.low), fmt_rate(i.high));
    };
    auto p = [](double x) {
      return std::isfinite(x) ? fmt::format("{:.3g}", x) : std::string("-");
    };
    o += "<tr>" + td(name) + td(std::to_string(v.assets), true) +
         td(std::to_string(v.impressions), true) + td(std::to_string(v.clicks), true) +
         td(std::to_string(v.conversions), true) + td(rate(v.ctr), true) + td(rate(v.cvr), true) +
         td(v.baseline ? "-" : fmt_diff(v.ctr_diff), true) + td(p(v.ctr_p), true) +
         td(v.baseline ? "-" : fmt_diff(v.cvr_diff), true) + td(p(v.cvr_p), true) + "</tr>\n";
    labels.push_back(v.name.empty() ? "(no variant)" : v.name);
    ctr.push_back(v.ctr);
    cvr.push_back(v.cvr);
  }
  o += "</table>\n<div class=\"grid\"><div>" +
       svg_ci_bars(labels, ctr, "click-through rate (clicks / impressions), 95% CI") +
       "</div><div>" + svg_ci_bars(labels, cvr, "conversion rate (conversions / clicks), 95% CI") +
       "</div></div>\n";
  const auto verdicts = s.ab.verdicts();
  if (verdicts.empty()) {
    o += "<p class=\"muted\">Only one variant has reactions: nothing to compare.</p>\n";
  } else {
    o += "<ul class=\"verdict\">\n";
    for (const auto& v : verdicts) o += "<li>" + html_escape(v) + "</li>\n";
    o += "</ul>\n";
  }
  return o;
}

}  // namespace

std::string render_kpi_csv(const KpiSummary& s) {
  std::string o =
      "work_id,item,kind,channel,variant,seed,status,turnaround_s,compute_s,gpu_s,cost,nfe,tokens,"
      "ttft_s,tpot_s,rounds,first_pass,review,latency_s,attempts,failed_stage,error,revision,"
      "base_work_id,revisions,review_revision,review_seconds\n";
  for (const auto& it : s.items) {
    const bool done = it.status == "done";
    o += fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        csv_field(it.work_id), csv_field(it.item), csv_field(it.kind), csv_field(it.channel),
        csv_field(it.variant), it.seed, it.status, done ? csv_num(it.turnaround_s) : "",
        csv_num(it.compute_s), csv_num(it.gpu_s), csv_num(it.cost, 6), it.nfe, it.tokens,
        csv_num(it.ttft_s, 4), csv_num(it.tpot_s, 5), it.rounds,
        it.first_pass ? (*it.first_pass ? "true" : "false") : "", it.review,
        done ? csv_num(it.latency_s) : "", it.attempts, csv_field(it.failed_stage),
        csv_field(it.error), it.revision, csv_field(it.base_work_id),
        it.revision == 0 ? std::to_string(it.revisions) : std::string(),
        it.revision == 0 && !it.review.empty() ? std::to_string(it.review_revision) : std::string(),
        it.review_lines ? csv_num(it.review_seconds, 1) : std::string());
  }
  return o;
}

std::string render_kpi_headline(const KpiSummary& s) {
  std::string manual;
  if (s.config.manual_price_per_hour > 0 && s.assets)
    manual = fmt::format(
        " (manual: {} per asset)",
        fmt_money(s.manual_hours * s.config.manual_price_per_hour / static_cast<double>(s.assets)));
  else if (s.assets)
    manual = fmt::format(" (manual: {:.1f} min per asset)",
                         s.manual_hours * 60 / static_cast<double>(s.assets));
  std::string o;
  o += fmt::format("run {}{}\n", s.config.run_id.empty() ? "(no id)" : s.config.run_id,
                   s.config.job_name.empty() ? "" : " - " + s.config.job_name);
  o +=
      fmt::format("assets             {} of {} work items ({} failed, {} incomplete, {} retried)\n",
                  s.assets, s.work_items, s.failed, s.incomplete, s.retried);
  o += fmt::format("makespan           {}\n", fmt_duration(s.makespan_s));
  o += fmt::format("throughput         {:.1f} assets/hour\n", s.throughput_per_hour);
  o += fmt::format("turnaround         p50 {}, p90 {}\n", fmt_duration(s.turnaround.p50),
                   fmt_duration(s.turnaround.p90));
  o += fmt::format("first-pass yield   copywriter {} ({}/{}), review {} ({}/{})\n",
                   fmt_pct(s.yield.copy_fpy()), s.yield.first_pass_ok, s.yield.first_pass_n,
                   fmt_pct(s.yield.review_fpy()), s.yield.accepted_first_pass, s.yield.reviewed);
  o += fmt::format("cost               {} per asset{}, {} total\n", fmt_money(s.cost_per_asset),
                   manual, fmt_money(s.cost_total));
  o += fmt::format("hours replaced     {:.2f} h ({:.2f} h manual - {:.2f} h review)\n",
                   s.hours_replaced, s.manual_hours, s.review_hours);
  if (s.review.lines)
    o += fmt::format(
        "human review       FPY {} ({}/{} reviewed); {} accepted, {} rejected, {} to revise, {} "
        "pending revision\n"
        "                   {} revisions per accepted asset; {:.1f} review min measured "
        "({:.2f} h configured)\n",
        fmt_pct(s.review.human_fpy()), s.review.accepted_first_pass, s.review.reviewed,
        s.review.accepted, s.review.rejected, s.review.to_revise, s.review.pending_revision,
        fmt_num(s.review.revisions_per_accepted, 2), s.review.minutes, s.review_hours);
  if (s.revisions_made)
    o += fmt::format("revisions          {} made ({} finished, {} failed), {} (in the cost)\n",
                     s.revisions_made, s.revisions_done, s.revisions_failed,
                     fmt_money(s.revision_cost));
  if (!s.ab.empty()) {
    std::string line;
    for (const auto& v : s.ab.variants)
      line += fmt::format("{}{}{}: CTR {} [{}, {}], CVR {} [{}, {}]", line.empty() ? "" : "; ",
                          v.name.empty() ? "(no variant)" : v.name, v.baseline ? " (baseline)" : "",
                          fmt_rate(v.ctr.estimate), fmt_rate(v.ctr.low), fmt_rate(v.ctr.high),
                          fmt_rate(v.cvr.estimate), fmt_rate(v.cvr.low), fmt_rate(v.cvr.high));
    o += "A/B reactions      " + line + "\n";
    for (const auto& v : s.ab.verdicts()) o += "                   " + v + "\n";
  }
  if (s.resumes || s.interruptions || s.preemptions)
    o += fmt::format(
        "restarts           {} preempted/requeued, {} resumed, {} interrupted, {} items recovered, "
        "{} lost\n",
        s.preemptions, s.resumes, s.interruptions, s.recovered, fmt_duration(s.time_lost_s));
  return o;
}

std::string render_kpi_html(const KpiSummary& s) {
  std::string o;
  const std::string title =
      "studio KPI report" + (s.config.job_name.empty() ? std::string() : " - " + s.config.job_name);
  o += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
       "<title>" +
       html_escape(title) +
       "</title>\n<style>\n"
       "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
       "margin:24px auto;max-width:1000px;color:#222;padding:0 16px}\n"
       "h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px "
       "solid #ddd;padding-bottom:4px}\n"
       "table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid "
       "#ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f6f8}\n"
       "td.n{text-align:right;font-variant-numeric:tabular-nums}.muted,.none{color:#777}\n"
       "table.head td:first-child{font-weight:600}h3{font-size:14px;margin:8px 0 0}\n"
       ".chart{max-width:100%;height:auto;font-size:11px;display:block;margin:8px 0}"
       ".chart text{fill:#333}.chart .muted{fill:#777}.chart .axis{stroke:#999}\n"
       ".grid{display:flex;flex-wrap:wrap;gap:12px}.grid>div{flex:1 1 300px}\n"
       "</style></head><body>\n";
  o += "<h1>" + html_escape(title) + "</h1>\n<p class=\"muted\">run " +
       html_escape(s.config.run_id.empty() ? "(no id)" : s.config.run_id) +
       (s.config.job_file.empty() ? "" : " &middot; job " + html_escape(s.config.job_file)) +
       " &middot; generated " + html_escape(iso8601_utc_now()) + "</p>\n";

  // Headline.
  std::string manual_cost = "n/a";
  if (s.assets) {
    manual_cost = s.config.manual_price_per_hour > 0
                      ? fmt_money(s.manual_hours * s.config.manual_price_per_hour /
                                  static_cast<double>(s.assets))
                      : fmt::format("{:.1f} min of work (no manual price set)",
                                    s.manual_hours * 60 / static_cast<double>(s.assets));
  }
  o += "<h2>Headline</h2>\n<table class=\"head\">\n";
  auto row = [&](const std::string& k, const std::string& v) {
    o += "<tr><td>" + html_escape(k) + "</td><td>" + html_escape(v) + "</td></tr>\n";
  };
  row("Assets finished", fmt::format("{} of {} work items", s.assets, s.work_items));
  row("Makespan", fmt_duration(s.makespan_s));
  row("Throughput", fmt::format("{:.1f} assets/hour", s.throughput_per_hour));
  row("Turnaround p50 / p90",
      fmt_duration(s.turnaround.p50) + " / " + fmt_duration(s.turnaround.p90));
  row("First-pass yield (copywriter checks)",
      fmt::format("{} ({} of {})", fmt_pct(s.yield.copy_fpy()), s.yield.first_pass_ok,
                  s.yield.first_pass_n));
  row("First-pass yield (human review)",
      fmt::format("{} ({} of {} reviewed accepted first time)", fmt_pct(s.yield.review_fpy()),
                  s.yield.accepted_first_pass, s.yield.reviewed));
  row("Cost per asset", fmt_money(s.cost_per_asset) + " (manual baseline: " + manual_cost + ")");
  row("Total cost",
      fmt_money(s.cost_total) + fmt::format(" ({:.2f} GPU h at {}/h, CPU at {}/h)", s.gpu_s / 3600,
                                            fmt_money(s.config.gpu_price_per_hour),
                                            fmt_money(s.config.cpu_price_per_hour)));
  row("Manual hours replaced", fmt::format("{:.2f} h ({:.2f} h manual work - {:.2f} h review)",
                                           s.hours_replaced, s.manual_hours, s.review_hours));
  row("Failures", fmt::format("{} failed, {} incomplete; {} retried ({} then finished)", s.failed,
                              s.incomplete, s.retried, s.retried_ok));
  row("Restarts", fmt::format("{} preempted or requeued by the cluster, {} resumed, {} "
                              "interrupted; {} items recovered; {} lost ({} down, {} redone)",
                              s.preemptions, s.resumes, s.interruptions, s.recovered,
                              fmt_duration(s.time_lost_s), fmt_duration(s.downtime_s),
                              fmt_duration(s.redone_s)));
  o += "</table>\n";

  // Charts.
  std::vector<double> turn, ends;
  for (const auto& it : s.items)
    if (it.status == "done") {
      turn.push_back(it.turnaround_s);
      ends.push_back(it.t_end - s.run_start);
    }
  o += "<div class=\"grid\"><div><h2>Turnaround distribution</h2>\n" + svg_histogram(turn) +
       "</div>\n<div><h2>Cumulative assets over time</h2>\n" + svg_cumulative(ends, s.makespan_s) +
       "</div></div>\n";

  {
    std::vector<std::string> labels;
    Series compute{"compute", {}}, queue{"queue wait", {}}, gpu{"GPU", {}};
    for (const auto& st : s.stages) {
      labels.push_back(st.stage);
      compute.values.push_back(st.compute_s);
      queue.values.push_back(st.queue_wait_s);
      gpu.values.push_back(st.gpu_s);
    }
    o += "<h2>Time per stage (seconds, summed over work items)</h2>\n" +
         svg_hbars(
             labels, {compute, queue, gpu}, [](double v) { return fmt_duration(v); }, 640, 170,
             /*hide_zero=*/true);
  }
  {
    std::vector<std::string> labels;
    const bool priced = s.config.manual_price_per_hour > 0;
    Series studio{priced ? "studio cost per asset" : "studio compute minutes per asset", {}};
    Series manual{priced ? "manual cost per asset" : "manual minutes per asset", {}};
    for (const auto& g : s.by_kind) {
      if (!g.assets) continue;
      labels.push_back(g.name);
      if (priced) {
        studio.values.push_back(g.cost_total / static_cast<double>(g.assets));
        manual.values.push_back(std::isfinite(g.manual_minutes)
                                    ? g.manual_minutes / 60 * s.config.manual_price_per_hour
                                    : kNaN);
      } else {
        studio.values.push_back(g.compute_s / 60 / static_cast<double>(g.assets));
        manual.values.push_back(g.manual_minutes);
      }
    }
    o += std::string("<h2>") +
         (priced ? "Cost per asset vs manual baseline" : "Work per asset vs manual baseline") +
         "</h2>\n";
    if (priced)
      o += svg_hbars(labels, {studio, manual}, [](double v) { return fmt_money(v); });
    else
      o += "<p class=\"muted\">No manual price per hour in run.json (kpi.manual_price_per_hour): "
           "compute minutes against manual minutes. Studio cost per asset: " +
           html_escape(fmt_money(s.cost_per_asset)) + ".</p>\n" +
           svg_hbars(labels, {studio, manual}, [](double v) { return fmt_num(v, 2) + " min"; });
  }
  {
    std::vector<std::string> labels;
    Series copy{"copywriter first pass", {}}, review{"review accepted", {}};
    for (const auto& g : s.by_channel) {
      labels.push_back(g.name.empty() ? "(none)" : g.name);
      copy.values.push_back(g.yield.copy_fpy() * 100);
      review.values.push_back(g.yield.review_fpy() * 100);
    }
    o += "<h2>First-pass yield by preset (channel)</h2>\n" +
         svg_hbars(labels, {copy, review}, [](double v) { return fmt::format("{:.0f}%", v); });
  }
  {
    o += "<h2>A/B variants</h2>\n<table><tr><th>variant</th><th>work items</th><th>assets</th>"
         "<th>failed</th><th>FPY copywriter</th><th>FPY review</th><th>mean turnaround</th>"
         "<th>mean cost</th></tr>\n";
    std::vector<std::string> labels;
    Series fpy{"FPY copywriter", {}}, rfpy{"FPY review", {}};
    Series turnaround{"mean turnaround", {}}, cost{"mean cost", {}};
    for (const auto& g : s.by_variant) {
      o += "<tr>" + td(g.name) + td(std::to_string(g.items), true) +
           td(std::to_string(g.assets), true) + td(std::to_string(g.failed), true) +
           td(fmt_pct(g.yield.copy_fpy()), true) + td(fmt_pct(g.yield.review_fpy()), true) +
           td(fmt_duration(g.mean_turnaround_s), true) + td(fmt_money(g.mean_cost), true) +
           "</tr>\n";
      labels.push_back(g.name.empty() ? "(none)" : g.name);
      fpy.values.push_back(g.yield.copy_fpy() * 100);
      rfpy.values.push_back(g.yield.review_fpy() * 100);
      turnaround.values.push_back(g.mean_turnaround_s);
      cost.values.push_back(g.mean_cost);
    }
    o += "</table>\n<div class=\"grid\"><div><h3>First-pass yield</h3>" +
         svg_hbars(
             labels, {fpy, rfpy}, [](double v) { return fmt::format("{:.0f}%", v); }, 330, 70) +
         "</div><div><h3>Mean turnaround</h3>" +
         svg_hbars(
             labels, {turnaround}, [](double v) { return fmt_duration(v); }, 330, 70) +
         "</div><div><h3>Mean cost per asset</h3>" +
         svg_hbars(
             labels, {cost}, [](double v) { return fmt_money(v); }, 330, 70) +
         "</div></div>\n";
  }

  o += render_review_section(s);
  o += render_ab_section(s);

  // Failures.
  o += "<h2>Failures</h2>\n";
  std::size_t nf = 0;
  for (const auto& it : s.items) nf += it.status != "done";
  if (nf == 0) {
    o += "<p class=\"none\">none</p>\n";
  } else {
    o += "<table><tr><th>work item</th><th>item</th><th>kind</th><th>channel</th><th>variant</th>"
         "<th>status</th><th>stage</th><th>attempts</th><th>reason</th></tr>\n";
    for (const auto& it : s.items)
      if (it.status != "done")
        o += "<tr>" + td(it.work_id) + td(it.item) + td(it.kind) + td(it.channel) + td(it.variant) +
             td(it.status) + td(it.failed_stage) + td(std::to_string(it.attempts), true) +
             td(it.error) + "</tr>\n";
    o += "</table>\n";
  }
  if (!s.warnings.empty()) {
    o += "<h2>Warnings</h2>\n<ul>\n";
    for (const auto& w : s.warnings) o += "<li>" + html_escape(w) + "</li>\n";
    o += "</ul>\n";
  }
  o += "<p class=\"muted\">Definitions: docs/kpi.md. Per-asset numbers: "
       "kpi.csv.</p>\n</body></html>\n";
  return o;
}

void write_kpi_report(const KpiSummary& s, const fs::path& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw IoError("cannot create the folder: " + ec.message(), out_dir.string());
  write_file_atomic(out_dir / "kpi.csv", render_kpi_csv(s));
  write_file_atomic(out_dir / "report.html", render_kpi_html(s));
}

}  // namespace studio
