// Channel presets (what a caption and a visual for "instagram-square" look like) and quality tiers
// (draft / standard / final), JSON files under a presets folder addressed by name. A tier is a JSON
// merge patch (RFC 7386) over a channel preset; so is a job's override. Every file is validated
// strictly and a resolved preset is complete (defaults filled in), so it can be hashed as is.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/json_check.h"

namespace studio {

// Checks a channel preset object; JSON paths in `p` are relative to it ("/caption/steps").
// Complete (partial = false): "name" and one of "caption" / "visual" required, cross-field rules
// (gen_length a multiple of block_length, ...) checked; returns the preset with every default
// filled in and "rules" normalised (null when there are problems).
// partial = true: a merge patch (a job's override, a tier's overlay): only the keys present are
// checked, null (= delete) is allowed, "base" is allowed and "name" is not; returns null.
nlohmann::json check_channel_preset(const nlohmann::json& j, Problems& p, bool partial = false);

// Checks a tier file ({"name", "description", "overlay": {"caption": patch, "visual": patch}}).
void check_tier(const nlohmann::json& j, Problems& p);

// The channel preset with the tier's overlay merged into the sections it has (a tier never adds a
// "caption" or "visual" section the channel lacks).
nlohmann::json apply_tier(nlohmann::json channel, const nlohmann::json& tier);

// Scheduler aliases a preset may name (make_scheduler's names, inversion excluded).
std::vector<std::string> preset_scheduler_names();

class PresetLibrary {
 public:
  // IoError when `dir` has no channels/ folder.
  explicit PresetLibrary(std::filesystem::path dir);

  // The presets folder: `option` (--presets) when not empty, else $STUDIO_PRESETS, else the
  // first of <exe dir>/../../presets (build tree), <exe dir>/../presets (installed), the source
  // tree's presets/ compiled in, that has a channels/ folder. IoError naming what was tried.
  static std::filesystem::path find_dir(const std::string& option = {});
  // PresetLibrary(find_dir(option)).
  static PresetLibrary find(const std::string& option = {});

  const std::filesystem::path& dir() const { return dir_; }
  std::vector<std::string> channel_names() const;  // sorted file stems of channels/*.json
  std::vector<std::string> tier_names() const;     // of tiers/*.json
  bool has_channel(const std::string& name) const;
  bool has_tier(const std::string& name) const;
  std::filesystem::path channel_file(const std::string& name) const;
  std::filesystem::path tier_file(const std::string& name) const;

  // The channel preset, validated and completed. ConfigError listing the available names for an
  // unknown one; ValidationError naming the file for an invalid one (ConfigError with line and
  // column for bad JSON).
  nlohmann::json channel(const std::string& name) const;
  // The tier file, validated (the same errors).
  nlohmann::json tier(const std::string& name) const;
  // channel(name) ← override (a merge patch; may be null) ← tier's overlay (tier may be empty),
  // validated as a whole: what `studio presets show NAME --tier T` prints.
  nlohmann::json resolve(const std::string& channel, const std::string& tier,
                         const nlohmann::json& override_patch = nullptr) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace studio
