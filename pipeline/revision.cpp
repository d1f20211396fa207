#include "pipeline/revision.h"

#include <map>

#include "core/error.h"
#include "core/hash.h"
#include "pipeline/journal.h"
#include "pipeline/kpi.h"

namespace fs = std::filesystem;

namespace studio {

fs::path revision_output(const fs::path& base_output, int64_t revision) {
  fs::path out = base_output;
  out.replace_filename(base_output.stem().string() + ".r" + std::to_string(revision) +
                       base_output.extension().string());
  return out;
}

RevisionPlan plan_revisions(const Plan& plan, const fs::path& run_dir) {
  RevisionPlan rp;
  if (!fs::exists(run_dir / "review.jsonl"))
    throw UsageError(
        "no review.jsonl in the run folder: nothing has been reviewed yet", run_dir.string(),
        "review the run first (studio review " + run_dir.string() + "), then run --revise");
  const std::vector<ReviewVerdict> reviews = read_reviews(run_dir, &rp.warnings);

  std::map<std::string, const WorkItem*> base_items;
  for (const WorkItem& w : plan.items) base_items[w.id] = &w;

  // What exists: per base asset its latest done revision and that revision's output. Journal
  // records are read in file order per shard, last record per work id wins.
  struct Made {
    int64_t revision = -1;
    std::string output, sha256;
  };
  std::map<std::string, JournalRecord> last;  // work_id -> last record
  for (auto& r : read_all_journals(run_dir, &rp.warnings)) last[r.work_id] = std::move(r);
  std::map<std::string, Made> latest;  // base work_id -> latest done revision
  std::map<std::string, std::pair<std::string, int64_t>> by_output, by_revision_id;
  for (const auto& [id, r] : last) {
    const std::string base = r.revision > 0 ? r.base_work_id : r.work_id;
    by_revision_id[id] = {base, r.revision};
    if (!r.output.empty()) by_output[r.output] = {base, r.revision};
    if (r.status != "done") continue;
    Made& m = latest[base];
    if (r.revision > m.revision) m = Made{r.revision, r.output, r.sha256};
  }

  // The last verdict per base asset (a line may name the base, a revision's id or an output).
  std::map<std::string, const ReviewVerdict*> verdict;
  std::map<std::string, int64_t> verdict_revision;
  for (const ReviewVerdict& v : reviews) {
    std::string base;
    int64_t revision = v.revision;
    if (!v.work_id.empty()) {
      const auto it = by_revision_id.find(v.work_id);
      if (it != by_revision_id.end()) {
        base = it->second.first;
        if (it->second.second > 0) revision = it->second.second;
      } else if (base_items.count(v.work_id)) {
        base = v.work_id;
      }
    } else {
      const auto it = by_output.find(v.output);
      if (it != by_output.end()) std::tie(base, revision) = it->second;
    }
    if (base.empty() || !base_items.count(base)) {
      rp.warnings.push_back("review.jsonl: a verdict on " +
                            (v.work_id.empty() ? v.output : v.work_id) +
                            ", which is not an asset of this job's plan: ignored");
      continue;
    }
    verdict[base] = &v;
    verdict_revision[base] = revision;
  }

  for (const WorkItem& w : plan.items) {
    const auto vit = verdict.find(w.id);
    if (vit == verdict.end()) continue;
    ++rp.reviewed;
    const ReviewVerdict& v = *vit->second;
    if (v.verdict == "accept") {
      ++rp.accepted;
      continue;
    }
    if (v.verdict != "reject" && v.verdict != "revise") continue;
    const auto mit = latest.find(w.id);
    if (mit == latest.end()) {
      rp.warnings.push_back("review.jsonl: " + w.id + " (" + w.output.generic_string() +
                            ") was sent back but has no finished output to revise: ignored");
      continue;
    }
    const Made& made = mit->second;
    if (verdict_revision[w.id] < made.revision) {
      ++rp.already_revised;  // the newer revision waits for its review
      continue;
    }
    WorkItem r = w;
    r.revision = made.revision + 1;
    r.base_work_id = w.id;
    r.revision_verdict = v.verdict;
    r.revision_note = v.verdict == "revise" ? v.note : v.reason;
    if (r.revision_note.empty()) r.revision_note = v.note;  // version-1 lines carry only a note
    r.revision_source = made.output;
    r.output = revision_output(w.output, r.revision);
    r.inputs["revision"] = {{"base_work_id", w.id},
                            {"revision", r.revision},
                            {"verdict", r.revision_verdict},
                            {"note", r.revision_note},
                            {"source_sha256", made.sha256}};
    r.id = work_item_id(r.inputs);
    if (v.verdict == "revise" && r.revision_note.empty())
      r.input_error = "the reviewer asked for a revision without a note saying what to change";
    rp.items.push_back(std::move(r));
  }
  for (size_t i = 0; i < rp.items.size(); ++i) rp.items[i].order = i;
  return rp;
}

}  // namespace studio
