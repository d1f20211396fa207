// KPIs of a run: the ledger (RUN_DIR/ledger/<shard>.jsonl, one JSON line per work item and stage,
// plus run start/stop/resume lines), its merge across shards, and the summary behind
// `studio kpi report` (turnaround, throughput, first-pass yield, cost, hours replaced, A/B,
// restarts, human review and revisions, A/B campaign reactions) with its CSV and self-contained
// HTML report. Formats and formulas: docs/kpi.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/reactions.h"

namespace studio {

class AppendFile;

// One stage of one work item ("type":"stage").
struct StageEvent {
  std::string run_id, shard;  // LedgerWriter fills these in when empty
  std::string work_id, item, kind, channel, variant;
  int64_t seed = 0;
  std::string stage;          // decode | text | image | edit | encode | write
  std::string status = "ok";  // ok | failed | skipped
  std::string error;
  int64_t attempt = 1;
  double queue_wait_s = 0, compute_s = 0, gpu_s = 0;
  int64_t peak_mem_bytes = 0, nfe = 0, steps = 0, tokens = 0;
  double ttft_s = 0, tpot_s = 0, tokens_per_s = 0;
  int64_t images = 0, rounds = 0;
  std::optional<bool> first_pass;  // the copywriter's checks passed on the first round (captions)
  double t_start = 0, t_end = 0;   // seconds since the Unix epoch
  // Review revisions (`studio run --revise`): revision n > 0 is its own work item re-making the
  // asset `base_work_id`. Written only when revision > 0 (then base_work_id is required).
  int64_t revision = 0;
  std::string base_work_id;

  nlohmann::json to_json() const;
  static StageEvent from_json(const nlohmann::json& j);  // FormatError when malformed
};

// A run-level line ("type":"run").
struct RunEvent {
  std::string run_id, shard;
  std::string event;  // start | stop | interrupted | resumed
  double t = 0;
  int64_t restart_count = 0;
  int64_t items_total = 0;

  nlohmann::json to_json() const;
  static RunEvent from_json(const nlohmann::json& j);
};

// Appends ledger lines to RUN_DIR/ledger/<shard>.jsonl: one write() per line (thread-safe), fsync
// on flush() and close(). Opening cuts a torn last line left by a crash off the file.
class LedgerWriter {
 public:
  LedgerWriter(std::filesystem::path run_dir, std::string shard, std::string run_id);
  ~LedgerWriter();
  LedgerWriter(const LedgerWriter&) = delete;
  LedgerWriter& operator=(const LedgerWriter&) = delete;

  void write(StageEvent e);  // run_id / shard filled in when empty
  void write(RunEvent e);    // run_id / shard filled in when empty; t = now when 0
  void flush();
  void close();
  const std::filesystem::path& file() const { return file_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::filesystem::path file_;
  std::string shard_, run_id_;
  std::unique_ptr<AppendFile> out_;
  std::vector<std::string> warnings_;
};

// Every ledger line of a run folder (RUN_DIR/ledger/*.jsonl in name order).
struct Ledger {
  std::vector<StageEvent> stages;
  std::vector<RunEvent> runs;
  std::vector<std::string> warnings;  // torn last lines dropped, unknown line types
  std::size_t files = 0;
};
Ledger read_ledger(const std::filesystem::path& run_dir);

// RUN_DIR/run.json's KPI settings (written by the runner); defaults when absent.
struct KpiConfig {
  std::string run_id, job_name, job_file;
  double gpu_price_per_hour = 0, cpu_price_per_hour = 0;
  double manual_price_per_hour = 0;  // optional: prices the manual baseline; 0 = compare minutes
  std::map<std::string, double> manual_minutes, review_minutes;  // per asset kind
  int64_t shards = 1;
};
KpiConfig read_run_config(const std::filesystem::path& run_dir);

// A line of RUN_DIR/review.jsonl: a person's verdict on one asset (version 2; version-1 lines
// have no "v", revision, reason, seconds or time).
struct ReviewVerdict {
  int64_t v = 1;
  std::string work_id, output;  // one of the two names the asset (work_id: the BASE asset's)
  int64_t revision = 0;         // the revision reviewed (0: the original)
  std::string verdict;          // accept | reject | revise
  std::string reason;           // why rejected
  std::string note;             // revise: the next round's instruction
  std::string reviewer;
  double seconds = 0;    // time on the asset
  std::string time;      // ISO 8601 UTC
  std::size_t line = 0;  // in review.jsonl
};
std::vector<ReviewVerdict> read_reviews(const std::filesystem::path& run_dir,
                                        std::vector<std::string>* warnings = nullptr);

// One work item as the report sees it.
struct ItemKpi {
  std::string work_id, item, kind, channel, variant, shard;
  int64_t seed = 0;
  std::string status;  // done (an asset) | failed | incomplete
  std::string failed_stage, error;
  int64_t attempts = 1;
  bool recovered = false;  // finished after a resume
  double t_first_start = 0, t_end = 0;
  double turnaround_s = 0;  // t_end of its last stage − the run's (its shard's) start
  double latency_s = 0;     // t_end of its last stage − t_start of its first
  double queue_wait_s = 0, compute_s = 0, gpu_s = 0, cost = 0;
  int64_t nfe = 0, tokens = 0, rounds = 0, peak_mem_bytes = 0;
  double ttft_s = 0, tpot_s = 0;
  std::optional<bool> first_pass;
  // Revisions: revision n > 0 re-made `base_work_id`; for an original, how many revision work
  // items exist for it (failed ones too).
  int64_t revision = 0;
  std::string base_work_id;
  int64_t revisions = 0;
  // Human review. An original: its final verdict (last line), the revision that verdict was on,
  // its first verdict, verdict lines, seconds on it, accepted first time (human first-pass yield)
  // and the final line's reason and note. A revision: the last verdict on that revision.
  std::string review;  // accept | reject | revise | "" (not reviewed)
  int64_t review_revision = 0;
  std::string first_review;
  std::size_t review_lines = 0;
  double review_seconds = 0;
  bool review_first_pass = false;
  std::string review_reason, review_note;
};

struct Quantiles {
  std::size_t n = 0;
  double mean = 0, p50 = 0, p90 = 0, min = 0, max = 0;
};
// Linear interpolation between closest ranks (numpy's default): p at position p·(n−1).
Quantiles quantiles(std::vector<double> values);

struct StageTotals {
  std::string stage;
  std::size_t events = 0, failed = 0;
  double queue_wait_s = 0, compute_s = 0, gpu_s = 0;
};

// First-pass yield of one group (a channel, a variant, all).
struct Yield {
  std::size_t first_pass_n = 0, first_pass_ok = 0;  // copywriter: items with first_pass set
  // Human review of original assets: reviewed (at least one verdict), finally accepted, and
  // accepted on revision 0 with no reject/revise before (first pass).
  std::size_t reviewed = 0, accepted = 0, accepted_first_pass = 0;
  double copy_fpy() const;  // NaN when first_pass_n == 0
  // Human first-pass yield: accepted_first_pass / reviewed; NaN when reviewed == 0.
  double human_fpy() const;
  double review_fpy() const { return human_fpy(); }  // the same (the report's older name)
};

// Human review of a run's original assets (RUN_DIR/review.jsonl). See docs/kpi.md.
struct ReviewSummary {
  std::size_t lines = 0;  // verdict lines (every line counts for time)
  std::size_t reviewed = 0, accepted = 0, accepted_first_pass = 0;
  std::size_t rejected = 0, to_revise = 0;  // final verdict reject / revise
  std::size_t pending_revision = 0;   // final reject/revise on the latest revision: none made yet
  double revisions_per_accepted = 0;  // Σ revision accepted on / accepted; NaN when none
  double seconds = 0, minutes = 0, mean_seconds = 0;  // mean per verdict line; NaN without lines
  std::map<std::string, double> minutes_by_kind;
  std::vector<ReviewVerdict> issues;  // reject and revise lines (work_id: the base asset)
  double human_fpy() const;           // accepted_first_pass / reviewed; NaN when none
};

struct GroupKpi {
  std::string name;
  std::size_t items = 0, assets = 0, failed = 0;
  Yield yield;
  double mean_turnaround_s = 0, mean_cost = 0, cost_total = 0;  // means over its assets
  double manual_minutes = 0, compute_s = 0;                     // per kind: baseline, Σ compute
};

struct KpiSummary {
  KpiConfig config;
  std::vector<ItemKpi> items;  // every work item, by first start
  std::size_t work_items = 0, assets = 0, failed = 0, incomplete = 0;
  std::size_t retried = 0, retried_ok = 0;  // items with more than one attempt; those finished
  double run_start = 0, run_end = 0, makespan_s = 0, throughput_per_hour = 0;
  Quantiles turnaround, latency;  // over assets
  std::map<std::string, Quantiles> turnaround_by_kind;
  std::vector<StageTotals> stages;  // pipeline order
  double compute_s = 0, gpu_s = 0, cost_total = 0, cost_per_asset = 0;
  double manual_hours = 0, review_hours = 0, hours_replaced = 0;
  Yield yield;
  std::vector<GroupKpi> by_channel, by_variant, by_kind;
  // Revision work items (counted apart from the originals above; their cost and compute are in
  // the totals and the time per stage).
  std::size_t revisions_made = 0, revisions_done = 0, revisions_failed = 0;
  double revision_cost = 0, revision_compute_s = 0;
  ReviewSummary review;
  AbComparison ab;  // campaign reactions (RUN_DIR/reactions.jsonl); empty without
  // Restarts. preemptions: shard starts the cluster made (SLURM_RESTART_COUNT > 0: a requeue after
  // preemption, `scontrol requeue`, a time-limit self-requeue or a node failure).
  std::size_t interruptions = 0, resumes = 0, recovered = 0, preemptions = 0;
  int64_t max_restart_count = 0;
  double downtime_s = 0, redone_s = 0, time_lost_s = 0, cost_redone = 0;
  std::vector<std::string> warnings;

  nlohmann::json to_json() const;
};

// The KPIs of a run folder: its ledger shards, run.json, review.jsonl, reactions.jsonl and (for
// review lines that name an output) its journals. Error when the folder has no ledger.
KpiSummary compute_kpis(const std::filesystem::path& run_dir);
// The same from inputs already read; `output_to_work_id` maps outputs named by reviews to the
// work item that made them (a revision's output: the revision's work id, resolved to its base
// through the ledger).
KpiSummary compute_kpis(const Ledger& ledger, const KpiConfig& config,
                        const std::vector<ReviewVerdict>& reviews,
                        const std::map<std::string, std::string>& output_to_work_id = {},
                        const std::vector<Reaction>& reactions = {});

// Stage events deduplicated by (work_id, stage): a later t_end wins (ties: the later line), and a
// "skipped" event never replaces an ok or failed one. `superseded` gets the losers.
std::vector<StageEvent> dedupe_stage_events(const std::vector<StageEvent>& events,
                                            std::vector<StageEvent>* superseded = nullptr);

struct MergeResult {
  std::size_t ledger_files = 0, journal_files = 0;
  std::size_t stage_events = 0, run_events = 0, journal_records = 0, duplicates_dropped = 0;
  std::filesystem::path ledger, journal;
  std::vector<std::string> warnings;  // torn last lines dropped from the inputs
};
// Joins the ledgers and journals of `run_dirs` (one run folder with several shard files, or several
// run folders) into OUT/ledger/merged.jsonl and OUT/journal/merged.jsonl (stage events deduplicated
// as dedupe_stage_events, journal records by work_id, last by time wins) and copies the first
// run.json, review.jsonl and reactions.jsonl found. UsageError when OUT is one of the inputs.
MergeResult merge_runs(const std::vector<std::filesystem::path>& run_dirs,
                       const std::filesystem::path& out_dir);

// kpi.csv: one row per work item.
std::string render_kpi_csv(const KpiSummary& s);
// report.html: self-contained (inline CSS and SVG, no scripts, no external resources).
std::string render_kpi_html(const KpiSummary& s);
// The headline as plain text lines (what `studio kpi report` prints).
std::string render_kpi_headline(const KpiSummary& s);
// Writes OUT/kpi.csv and OUT/report.html atomically.
void write_kpi_report(const KpiSummary& s, const std::filesystem::path& out_dir);

std::string html_escape(const std::string& s);

}  // namespace studio
