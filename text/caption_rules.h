// A channel preset's caption rules (length, required / banned words, brand spellings, hashtags,
// emoji policy) read from JSON, and the checker that finds where a caption breaks them. Rules are
// data: the copywriter re-masks the spans a violation names and lets the text model repair them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace studio {

enum class EmojiPolicy { kAllowed, kNone, kRequired };

struct CaptionRules {
  // Length in characters (Unicode code points, as the channels count them); 0 = no limit.
  int64_t min_chars = 0;
  int64_t max_chars = 0;
  // Whole words or phrases (word boundaries on both sides); case-insensitive unless case_sensitive.
  std::vector<std::string> required_words;  // each must appear at least once
  std::vector<std::string> banned_words;    // none may appear
  // Brand terms: wherever the term appears case-insensitively it must be spelled exactly so
  // ("iPhone", never "iphone"). brand_required: at least one of them must appear.
  std::vector<std::string> brand_terms;
  bool brand_required = false;
  // Hashtags are '#' followed by letters, digits or '_' (the whole run). max -1 = no limit.
  int64_t hashtags_min = 0;
  int64_t hashtags_max = -1;
  std::vector<std::string> hashtags_required;  // each with its '#', compared case-insensitively
  // An emoji is one sequence (ZWJ-joined, with skin tone / U+FE0F, a flag, a keycap) counted once.
  // Extended_Pictographic symbols that default to text presentation (©, ®, ™, ❤ below U+1F000)
  // count only with U+FE0F or in such a sequence, so "Studio™" holds no emoji.
  EmojiPolicy emoji = EmojiPolicy::kAllowed;
  int64_t emoji_max = -1;  // -1 = no limit (with kAllowed / kRequired)
  bool case_sensitive = false;

  bool empty() const;  // no rule at all

  // Reads a rules object (the "rules" of a preset's "caption" section). Strict: unknown keys,
  // wrong types, negative lengths, min > max, empty words, required hashtags without '#', an
  // unknown emoji policy... every problem is listed in one ConfigError whose message names
  // `origin` (the file) and the JSON path of each bad value (json_path + "/max_chars").
  // Keys: min_chars, max_chars, required_words, banned_words, brand_terms, brand_required,
  // hashtags {min, max, required}, emoji ("allowed" | "none" | "required"), emoji_max,
  // case_sensitive.
  static CaptionRules from_json(const nlohmann::json& j, const std::string& origin,
                                const std::string& json_path);
  nlohmann::json to_json() const;  // the same keys (round-trips through from_json)
};

// One broken rule and where. [begin, end) is a byte range of the checked text to rewrite
// (re-mask); begin == end is a place to insert at (e.g. the end of the text for a missing word).
// `insert` is text that fixes it deterministically when put in place of the range (the exact
// spelling of a brand term, a missing required word or hashtag); empty when only a rewrite can.
struct RuleViolation {
  std::string rule;     // "max_chars", "min_chars", "required_words", "banned_words",
                        // "brand_terms", "brand_required", "hashtags.min", "hashtags.max",
                        // "hashtags.required", "emoji", "emoji_max"
  std::string message;  // one sentence: what and where (character offsets)
  size_t begin = 0;
  size_t end = 0;
  std::string insert;
};

// Every violation of `rules` in `text` (UTF-8), in text order within each rule. Empty = passes.
// FormatError naming the byte offset when `text` is not valid UTF-8.
std::vector<RuleViolation> check_caption(std::string_view text, const CaptionRules& rules);

// Characters (code points) of valid UTF-8 text.
int64_t count_chars(std::string_view text);
// Hashtags in `text` as check_caption counts them (invalid UTF-8 is read lossily).
int64_t count_hashtags(std::string_view text);

}  // namespace studio
