// The draft-and-verify copywriter: a brief (product facts, tone, language) and a channel preset's
// caption section (instruction, sampling, rules) -> N drafts in one batch -> each checked against
// the rules -> only the failing spans re-masked and repaired, up to R rounds -> the best passing
// draft or a clear "failed rule X" result, with per-caption records (rounds, first-pass yield,
// NFEs, tokens, TTFT, TPOT, tokens/s).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/caption_rules.h"
#include "text/text_model.h"

namespace studio {

struct CopyBrief {
  std::string product;             // required
  std::vector<std::string> facts;  // product facts, one per entry
  std::string brand;
  std::string tone;
  std::string audience;
  std::string language = "en";
  std::string notes;

  // Keys as the fields above; strict (unknown keys, wrong types, no product: one ConfigError
  // listing every problem with its JSON path under `json_path`, naming `origin`).
  static CopyBrief from_json(const nlohmann::json& j, const std::string& origin,
                             const std::string& json_path = "");
  static CopyBrief load(const std::filesystem::path& file);  // a JSON file holding one brief
  nlohmann::json to_json() const;
};

// A channel preset's "caption" section.
struct CopyPreset {
  std::string name;         // the preset's name (for records and messages)
  std::string instruction;  // what to write, e.g. "Write an Instagram caption for this product."
  int64_t gen_length = 64;  // answer canvas in tokens
  int64_t block_length = 32;
  int64_t steps = 64;
  int64_t drafts = 4;         // drafts per caption, one batch
  int64_t repair_rounds = 2;  // verify -> repair rounds at most
  double temperature = 0.8;   // > 0 so the drafts differ
  LLaDASampler sampler = LLaDASampler::kLLaDA;
  std::optional<double> threshold;  // Fast-dLLM parallel decoding
  CaptionRules rules;

  // Keys: instruction, gen_length, block_length, steps, drafts, repair_rounds, temperature,
  // sampler ("llada" | "fast-dllm"), threshold (null or (0, 1], fast-dllm only), rules.
  // Strict, every problem listed in one ConfigError with its JSON path.
  static CopyPreset from_json(const nlohmann::json& caption, const std::string& name,
                              const std::string& origin, const std::string& json_path);
  nlohmann::json to_json() const;
};

// One caption (a draft and its repairs).
struct CaptionRecord {
  int64_t draft = 0;  // index in the draft batch
  std::string text;   // the final text
  bool passed = false;
  bool first_pass = false;  // passed as drafted, before any repair
  int64_t rounds = 0;       // repair rounds it went through
  std::vector<RuleViolation> violations;  // left at the end (empty when passed)
  std::vector<std::string> history;       // the draft, then the text after each round
  std::vector<std::string> repairs;       // per round, what was done ("re-masked banned_words")
  int64_t nfe = 0;       // forward calls of the batches it was part of
  int64_t tokens = 0;    // tokens generated for it (draft canvas + repair slots)
  double seconds = 0;    // wall time of the batches it was part of
  double ttft_seconds = 0;
  double tpot_seconds = 0;
  double tokens_per_second = 0;

  nlohmann::json to_json() const;
};

struct CopyResult {
  bool passed = false;
  int64_t best = -1;    // index into drafts of the chosen caption (-1: none was generated)
  std::string text;     // the chosen caption
  std::string failure;  // when !passed: "failed rule max_chars: ..." (the rules still broken)
  std::vector<CaptionRecord> drafts;
  int64_t nfe = 0;  // all forward calls (drafts + repairs)
  int64_t rounds = 0;
  double seconds = 0;
  double ttft_seconds = 0;  // of the draft batch

  nlohmann::json to_json() const;
};

struct CopyOptions {
  int64_t drafts = -1;  // -1: the preset's
  int64_t rounds = -1;  // -1: the preset's repair_rounds
  uint64_t seed = 0;
  // Streaming: after each denoising step of a batch (what: "draft" or "repair N").
  std::function<bool(const std::string& what, int64_t step, const std::vector<std::string>& rows)>
      on_step;
  std::function<void(const std::string& message)> on_event;  // one line per phase
};

// The user turn the model gets for a brief under a preset (instruction, brief, rules).
std::string build_copy_prompt(const CopyBrief& brief, const CopyPreset& preset);

// Drafts, verifies and repairs (see the header comment). Repairs per violation: a misspelt brand
// term is replaced by its exact spelling; a missing required word, hashtag or brand term is
// inserted; extra hashtags and forbidden emoji are removed; a banned word is re-masked and
// rewritten; an overlong caption has its overflow re-masked into a shorter slot (or cut when no
// room is left); a short one gets a slot appended. Only those spans change.
CopyResult write_copy(TextModel& model, const CopyBrief& brief, const CopyPreset& preset,
                      const CopyOptions& options = {});

// A reviewer's revision of an existing caption (`studio run --revise`): `text` is rewritten as a
// whole under the note (Instant Edit: the model sees the old caption and the note, and writes a
// new one in a slot of the preset's gen_length), preset.drafts rows in one batch, then the same
// verify -> repair rounds and choice as write_copy. first_pass = a row met the rules as revised.
// UsageError when `note` is empty.
CopyResult revise_copy(TextModel& model, const CopyBrief& brief, const CopyPreset& preset,
                       const std::string& text, const std::string& note,
                       const CopyOptions& options = {});
// The user-turn instruction revise_copy gives the model.
std::string revision_instruction(const CopyBrief& brief, const CopyPreset& preset,
                                 const std::string& note);

}  // namespace studio
