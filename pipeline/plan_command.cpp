// `studio plan JOB`: validates a job file (every problem at once, with JSON paths) and prints its
// work items (id, item, channel, kind, variant, seed, output) as a table or, with --json, the whole
// plan with each work item's resolved inputs. Nothing is generated.
#include <fmt/format.h>

#include <map>

#include <iostream>

#include "pipeline/commands.h"
#include "pipeline/job_spec.h"
#include "pipeline/plan.h"
#include "pipeline/presets.h"

namespace studio {

namespace {

struct PlanOptions {
  std::string job;
  std::string presets;
  bool json = false;
};

void print_table(const Plan& plan, std::ostream& out) {
  const std::vector<std::string> head = {"ID",      "ITEM", "CHANNEL", "KIND",
                                         "VARIANT", "SEED", "OUTPUT"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& w : plan.items)
    rows.push_back({w.id, w.item_id, w.channel, w.kind, w.variant, std::to_string(w.seed),
                    w.output.generic_string()});
  std::vector<std::size_t> width(head.size());
  for (std::size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (std::size_t c = 0; c < r.size(); ++c)
      s += c + 1 == r.size() ? r[c] : fmt::format("{:<{}}  ", r[c], width[c]);
    out << s << "\n";
  };
  line(head);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    line(rows[i]);
    if (!plan.items[i].input_error.empty())
      out << "    ! input error: " << plan.items[i].input_error << "\n";
  }
  std::map<std::string, std::size_t> per_kind;
  for (const auto& w : plan.items) ++per_kind[w.kind];
  std::string kinds;
  for (const auto& k : kAssetKinds)
    if (per_kind.count(k))
      kinds += fmt::format("{}{} {}{}", kinds.empty() ? "" : ", ", per_kind[k], k,
                           per_kind[k] == 1 ? "" : "s");
  out << fmt::format("\n{}: {} work items ({}), tier {}, {} with input errors; output {}\n",
                     plan.job_name, plan.items.size(), kinds, plan.tier, plan.input_errors(),
                     plan.output_dir.string());
}

int run_plan(const PlanOptions& o) {
  const PresetLibrary presets = PresetLibrary::find(o.presets);
  const JobSpec job = load_job(o.job, presets);
  const Plan plan = make_plan(job);
  if (o.json)
    std::cout << plan.to_json().dump(2) << "\n";
  else
    print_table(plan, std::cout);
  return 0;
}

}  // namespace

void add_plan_command(CLI::App& app, CommandAction* action) {
  auto* cmd = app.add_subcommand(
      "plan", "Validate a job file and list its work items (nothing is generated)");
  auto o = std::make_shared<PlanOptions>();
  cmd->add_option("job", o->job, "job file (JSON, see docs/jobs.md)")->required();
  cmd->add_flag("--json", o->json, "print the plan as JSON, with each work item's inputs");
  cmd->add_option("--presets", o->presets,
                  "presets folder (default: $STUDIO_PRESETS, else the one beside studio)");
  cmd->callback([action, o] { *action = [o] { return run_plan(*o); }; });
}

}  // namespace studio
