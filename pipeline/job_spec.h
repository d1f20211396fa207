// A studio job file (version 1, documented in docs/jobs.md): products, the channels and asset kinds
// to make for each, variants, models and KPI prices. Everything is validated before anything runs
// and every problem is reported at once with its JSON path; missing input files are not validation
// errors (the plan marks the work items that need them).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/presets.h"

namespace studio {

// Asset kinds in pipeline order. Only caption and visual have a stage in this version.
extern const std::vector<std::string> kAssetKinds;     // caption, visual, edit, video, mesh
extern const std::vector<std::string> kAvailableKinds;  // caption, visual

struct JobVariant {
  std::string name = "default";
  std::string caption_instruction;  // appended to the channel's caption instruction
  std::string prompt_suffix;        // appended to visual prompts
};

struct JobItem {
  std::string id;    // unique in the job, [A-Za-z0-9._-]+
  std::string name;  // defaults to id
  std::vector<std::string> facts;
  std::string tone;      // item, else defaults.tone, else ""
  std::string language;  // item, else defaults.language, else "en"
  std::string brand;     // item, else defaults.brand, else ""
  std::vector<std::string> channels;  // item, else defaults.channels (one at least)
  std::vector<std::string> make;      // item, else defaults.make, else caption + visual
  std::vector<int64_t> seeds;         // item, else defaults.seeds; empty: the preset's seeds
  std::string photo;                  // as written (relative to the job folder); "" for none
  std::filesystem::path photo_path;   // resolved; empty for none (may not exist: see plan)
  std::string prompt;                 // as written; "" = built from name and facts
  std::string source_prompt;          // edit: what the photo shows; "" = "<name>, product photo"
  std::string mask;                   // edit: a product mask image for the photo, as written
  std::filesystem::path mask_path;    // resolved; empty for none (overrides the preset's mask)
  std::string json_path;              // "/items/3"
};

struct JobKpi {
  double gpu_price_per_hour = 0;
  double cpu_price_per_hour = 0;
  double manual_price_per_hour = 0;  // what an hour of the manual baseline costs (0: not priced)
  std::map<std::string, double> manual_minutes;  // per asset kind, as given
  std::map<std::string, double> review_minutes;
};

struct JobSpec {
  std::filesystem::path file;  // the job file as given
  std::filesystem::path dir;   // its folder: relative paths in the job are relative to it
  std::string name;
  std::string description;
  std::filesystem::path output_dir;  // resolved (default <dir>/out/<name>)
  std::string text_model;            // as written ("" when not given)
  std::string image_model;
  std::filesystem::path text_model_path;  // resolved (empty when not given)
  std::filesystem::path image_model_path;
  // Pinned folder digests (`studio models hash`): the run refuses a model folder whose files
  // changed. "" = not pinned.
  std::string text_model_sha256, image_model_sha256;
  std::string tier;  // "standard" when not given (and the presets folder has it), else ""
  std::vector<JobVariant> variants;
  std::vector<JobItem> items;
  JobKpi kpi;
  // Every channel preset an item uses, resolved: library preset ← the job's override ← the tier's
  // overlay, validated and complete (presets.h). Keyed by the name the items use.
  std::map<std::string, nlohmann::json> presets;
  nlohmann::json raw;  // the file's JSON
};

// Reads and validates a job file. ConfigError with line/column for bad JSON, IoError when the
// file is unreadable, ValidationError (a ConfigError naming the file, one line per problem:
// "/items/3/channels/0: unknown preset ...") listing every problem found.
JobSpec load_job(const std::filesystem::path& file, const PresetLibrary& presets);
// The same for already parsed JSON; `file` names it in errors and anchors relative paths.
JobSpec parse_job(const nlohmann::json& j, const std::filesystem::path& file,
                  const PresetLibrary& presets);

}  // namespace studio
