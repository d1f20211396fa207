// Revision rounds (`studio run JOB --revise`): the assets whose last review verdict in
// RUN_DIR/review.jsonl is "reject" or "revise" become new work items that re-make them, numbered
// per asset (output <stem>.r<N>.<ext>), so a round re-runs only what reviewers sent back.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/plan.h"

namespace studio {

struct RevisionPlan {
  std::vector<WorkItem> items;        // revision work items, in the plan's order
  std::size_t reviewed = 0;           // base assets with a verdict
  std::size_t accepted = 0;           // last verdict accept
  std::size_t already_revised = 0;    // sent back, but a newer revision waits for its review
  std::vector<std::string> warnings;  // verdicts naming unknown assets, torn last lines
};

// The revision work items of `plan`'s run folder: per base asset (a work item of the plan) the
// last verdict counts; "reject" or "revise" on its latest revision (a done journal record) makes
// revision latest + 1 from that output. Ids hash the base id, the revision, the verdict, the note
// and the reviewed file's SHA-256, so a killed round resumes (same ids) and a re-run after the
// round finished finds nothing new. UsageError when the folder has no review.jsonl.
RevisionPlan plan_revisions(const Plan& plan, const std::filesystem::path& run_dir);

// "a/b/caption-A-s0.txt", 2 -> "a/b/caption-A-s0.r2.txt".
std::filesystem::path revision_output(const std::filesystem::path& base_output, int64_t revision);

}  // namespace studio
