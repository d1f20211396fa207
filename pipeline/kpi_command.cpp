// `studio kpi merge RUN_DIR... --out DIR`: joins shard ledgers and journals into one run folder.
// `studio kpi report RUN_DIR [--out DIR] [--json FILE]`: kpi.csv and report.html of a run, and its
// headline on stdout. `studio kpi ingest RUN_DIR reactions.csv [--replace]`: campaign reactions
// into RUN_DIR/reactions.jsonl, then the report again. Definitions: docs/kpi.md.
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "core/atomic_file.h"
#include "pipeline/commands.h"
#include "pipeline/kpi.h"

namespace studio {

namespace {

struct KpiOptions {
  std::vector<std::string> run_dirs;
  std::string run_dir;
  std::string out;
  std::string json;
  std::string csv;
  bool replace = false;
};

int run_merge(const KpiOptions& o) {
  std::vector<std::filesystem::path> dirs(o.run_dirs.begin(), o.run_dirs.end());
  const MergeResult r = merge_runs(dirs, o.out);
  for (const auto& w : r.warnings) std::cerr << "studio: warning: " << w << "\n";
  std::cout << fmt::format(
      "merged {} ledger file(s) and {} journal file(s) from {} folder(s):\n"
      "  {} ({} stage events, {} run events; {} duplicates dropped)\n"
      "  {} ({} records)\n",
      r.ledger_files, r.journal_files, dirs.size(), r.ledger.string(), r.stage_events, r.run_events,
      r.duplicates_dropped, r.journal.string(), r.journal_records);
  return 0;
}

int run_report(const KpiOptions& o) {
  const KpiSummary s = compute_kpis(o.run_dir);
  const std::filesystem::path out = o.out.empty() ? o.run_dir : o.out;
  write_kpi_report(s, out);
  if (!o.json.empty()) write_file_atomic(o.json, s.to_json().dump(2) + "\n");
  for (const auto& w : s.warnings) std::cerr << "studio: warning: " << w << "\n";
  std::cout << render_kpi_headline(s) << "\nwrote " << (out / "kpi.csv").string() << " and "
            << (out / "report.html").string() << (o.json.empty() ? std::string() : " and " + o.json)
            << "\n";
  return 0;
}

int run_ingest(const KpiOptions& o) {
  const IngestResult r = ingest_reactions(o.run_dir, o.csv, o.replace);
  std::cout << fmt::format(
      "ingested {} row(s) for {} asset(s) from {} ({} impressions, {} clicks, {} conversions)\n"
      "{} {} ({} row(s) in all)\n",
      r.rows, r.assets, o.csv, r.impressions, r.clicks, r.conversions,
      r.replaced ? "replaced" : "appended to", r.file.string(), r.total_rows);
  // The report again, with the A/B comparison.
  const KpiSummary s = compute_kpis(o.run_dir);
  write_kpi_report(s, o.run_dir);
  for (const auto& w : s.warnings) std::cerr << "studio: warning: " << w << "\n";
  for (const auto& v : s.ab.verdicts()) std::cout << v << "\n";
  const std::filesystem::path dir = o.run_dir;
  std::cout << "wrote " << (dir / "kpi.csv").string() << " and " << (dir / "report.html").string()
            << "\n";
  return 0;
}

}  // namespace

void add_kpi_command(CLI::App& app, CommandAction* action) {
  auto* cmd = app.add_subcommand(
      "kpi", "Merge shard ledgers, report a run's KPIs and ingest campaign reactions");
  cmd->require_subcommand(1);
  auto o = std::make_shared<KpiOptions>();

  auto* merge = cmd->add_subcommand(
      "merge", "Join the ledgers and journals of shard run folders into one run folder");
  merge->add_option("run_dirs", o->run_dirs, "run folders (or one folder with several shards)")
      ->required();
  merge->add_option("--out", o->out, "folder for the merged ledger, journal and run.json")
      ->required();
  merge->callback([action, o] { *action = [o] { return run_merge(*o); }; });

  auto* report = cmd->add_subcommand(
      "report", "Write kpi.csv and a self-contained report.html for a run folder");
  report->add_option("run_dir", o->run_dir, "the run's output folder (with ledger/)")->required();
  report->add_option("--out", o->out, "folder for kpi.csv and report.html (default: RUN_DIR)");
  report->add_option("--json", o->json, "also write the KPI summary as JSON to this file");
  report->callback([action, o] { *action = [o] { return run_report(*o); }; });

  auto* ingest = cmd->add_subcommand(
      "ingest",
      "Add campaign reactions (impressions, clicks, conversions per asset) from a CSV to a run "
      "folder and write its report again with the A/B comparison");
  ingest->add_option("run_dir", o->run_dir, "the run's output folder (with ledger/)")->required();
  ingest
      ->add_option("csv", o->csv,
                   "CSV with a header: work_id or output, impressions, clicks, conversions, "
                   "optional variant and date")
      ->required();
  ingest->add_flag("--replace", o->replace,
                   "replace the reactions ingested before (default: append to them)");
  ingest->callback([action, o] { *action = [o] { return run_ingest(*o); }; });
}

}  // namespace studio
