// The plan of a job: job × items × channels × asset kinds × variants × seeds → work items, each
// with every input resolved and a stable id (a hash of exactly the inputs that determine its
// output), so a changed job changes only the ids of what it changes and a resumed run knows what is
// already made.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/job_spec.h"

namespace studio {

struct WorkItem {
  std::string id;         // first 16 hex digits of SHA-256 over inputs.dump() (sorted keys)
  std::size_t order = 0;  // position in the plan
  std::string item_id;
  std::string kind;  // "caption", "visual" or "edit"
  std::string channel;
  std::string variant;
  int64_t seed = 0;  // captions: the item's first seed

  // Resolved inputs.
  std::string name;
  std::vector<std::string> facts;
  std::string tone, language, brand;
  std::string instruction;  // caption: the channel's instruction + the variant's
  std::string prompt;       // visual: the item's prompt (or one built from name and facts) +
                            // the variant's suffix
  std::string source_prompt;  // edit: what the photo shows (the inversion's prompt)
  nlohmann::json preset;    // the resolved preset section ("caption" / "visual"; no "seeds";
                            // "visual" keeps its "edit" settings only for edits)
  std::filesystem::path model_dir;  // absolute
  std::filesystem::path photo;      // absolute; empty when the item has none
  std::string photo_sha256;         // "" when none or unreadable
  std::filesystem::path mask;       // edit: the item's product mask file (absolute), or empty
  // Everything the id hashes: kind, item (id, name, facts, tone, language, brand), channel,
  // preset section, variant, instruction / prompt, seed, model folder as written in the job,
  // photo's SHA-256.
  nlohmann::json inputs;

  std::filesystem::path output;  // relative to Plan::output_dir:
                                 // <item>/<channel>/<kind>-<variant>-s<seed>.txt|.png
  // Why this work item cannot run (photo or model folder missing or unreadable), "" when it can.
  // The runner records it as failed with this reason and runs the others.
  std::string input_error;

  // A revision round's work item (pipeline/revision.h): revision n > 0 re-makes `base_work_id`,
  // whose reviewed output `revision_source` (relative to the run folder) got the verdict
  // `revision_verdict` ("reject": made again with a new seed; "revise": re-edited under
  // `revision_note`). 0 for the job's own work items.
  int64_t revision = 0;
  std::string base_work_id;
  std::string revision_verdict, revision_note;
  std::filesystem::path revision_source;

  nlohmann::json to_json() const;
};

struct Plan {
  std::string job_name;
  std::filesystem::path job_file;
  std::filesystem::path output_dir;  // absolute
  std::string tier;
  std::vector<WorkItem> items;  // deterministic order: items, channels, kinds (caption, visual,
                                // ...), variants, seeds, as the job lists them

  std::size_t input_errors() const;
  nlohmann::json to_json() const;
};

// The work items of a validated job. Reads (hashes) each item's photo; never fails on missing
// inputs (see WorkItem::input_error).
Plan make_plan(const JobSpec& job);

// The visual prompt built from an item's name and facts when it has none.
std::string default_prompt(const JobItem& item);
// 16 hex digits of SHA-256 over the canonical dump (sorted keys, no spaces) of `inputs`.
std::string work_item_id(const nlohmann::json& inputs);

}  // namespace studio
