// `studio kpi merge RUN_DIR... --out DIR`: joins shard ledgers and journals into one run folder.
// `studio kpi report RUN_DIR [--out DIR] [--json FILE]`: kpi.csv and report.html of a run, and its
// headline on stdout. Definitions: docs/kpi.md.
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
};

int run_merge(const KpiOptions& o) {
  std::vector<std::filesystem::path> dirs(o.run_dirs.begin(), o.run_dirs.end());
  const MergeResult r = merge_runs(dirs, o.out);
  for (const auto& w : r.warnings) std::cerr << "studio: warning: " << w << "\n";
  std::cout << fmt::format(
      "merged {} ledger file(s) and {} journal file(s) from {} folder(s):\n"
      "  {} ({} stage events, {} run events; {} duplicates dropped)\n"
      "  {} ({} records)\n",
      r.ledger_files, r.journal_files, dirs.size(), r.ledger.string(), r.stage_events,
      r.run_events, r.duplicates_dropped, r.journal.string(), r.journal_records);
  return 0;
}

int run_report(const KpiOptions& o) {
  const KpiSummary s = compute_kpis(o.run_dir);
  const std::filesystem::path out = o.out.empty() ? o.run_dir : o.out;
  write_kpi_report(s, out);
  if (!o.json.empty()) write_file_atomic(o.json, s.to_json().dump(2) + "\n");
  for (const auto& w : s.warnings) std::cerr << "studio: warning: " << w << "\n";
  std::cout << render_kpi_headline(s) << "\nwrote " << (out / "kpi.csv").string() << " and "
            << (out / "report.html").string()
            << (o.json.empty() ? std::string() : " and " + o.json) << "\n";
  return 0;
}

}  // namespace

void add_kpi_command(CLI::App& app, CommandAction* action) {
  auto* cmd = app.add_subcommand("kpi", "Merge shard ledgers and report a run's KPIs");
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
}

}  // namespace studio
