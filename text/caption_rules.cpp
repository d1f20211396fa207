// Caption rules: strict JSON reading and the checker. Matching works on code points (lowercased one
// by one unless case_sensitive) with a code point -> byte offset map, so that every violation names
// a byte range of the original text; messages name character (code point) offsets.
#include "text/caption_rules.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/unicode.h"

namespace studio {
namespace {

using nlohmann::json;

constexpr const char* kPresetHint = "see docs/presets.md for the caption rule keys and values";

// ---------------------------------------------------------------------------------------------
// Emoji data.

struct CodePointRange {
  char32_t first;
  char32_t last;
};

// Extended_Pictographic=Yes, merged ranges, from Unicode's emoji-data.txt for Emoji 15.0 (Unicode
// 15.0.0, file date 2022-08-02; 3537 code points, reserved ones included as the file lists them).
constexpr CodePointRange kExtendedPictographic[] = {
    {0x00A9, 0x00A9},   {0x00AE, 0x00AE},   {0x203C, 0x203C},   {0x2049, 0x2049},
    {0x2122, 0x2122},   {0x2139, 0x2139},   {0x2194, 0x2199},   {0x21A9, 0x21AA},
    {0x231A, 0x231B},   {0x2328, 0x2328},   {0x2388, 0x2388},   {0x23CF, 0x23CF},
    {0x23E9, 0x23F3},   {0x23F8, 0x23FA},   {0x24C2, 0x24C2},   {0x25AA, 0x25AB},
    {0x25B6, 0x25B6},   {0x25C0, 0x25C0},   {0x25FB, 0x25FE},   {0x2600, 0x2605},
    {0x2607, 0x2612},   {0x2614, 0x2685},   {0x2690, 0x2705},   {0x2708, 0x2712},
    {0x2714, 0x2714},   {0x2716, 0x2716},   {0x271D, 0x271D},   {0x2721, 0x2721},
    {0x2728, 0x2728},   {0x2733, 0x2734},   {0x2744, 0x2744},   {0x2747, 0x2747},
    {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},   {0x2757, 0x2757},
    {0x2763, 0x2767},   {0x2795, 0x2797},   {0x27A1, 0x27A1},   {0x27B0, 0x27B0},
    {0x27BF, 0x27BF},   {0x2934, 0x2935},   {0x2B05, 0x2B07},   {0x2B1B, 0x2B1C},
    {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x3030, 0x3030},   {0x303D, 0x303D},
    {0x3297, 0x3297},   {0x3299, 0x3299},   {0x1F000, 0x1F0FF}, {0x1F10D, 0x1F10F},
    {0x1F12F, 0x1F12F}, {0x1F16C, 0x1F171}, {0x1F17E, 0x1F17F}, {0x1F18E, 0x1F18E},
    {0x1F191, 0x1F19A}, {0x1F1AD, 0x1F1E5}, {0x1F201, 0x1F20F}, {0x1F21A, 0x1F21A},
    {0x1F22F, 0x1F22F}, {0x1F232, 0x1F23A}, {0x1F23C, 0x1F23F}, {0x1F249, 0x1F3FA},
    {0x1F400, 0x1F53D}, {0x1F546, 0x1F64F}, {0x1F680, 0x1F6FF}, {0x1F774, 0x1F77F},
    {0x1F7D5, 0x1F7FF}, {0x1F80C, 0x1F80F}, {0x1F848, 0x1F84F}, {0x1F85A, 0x1F85F},
    {0x1F888, 0x1F88F}, {0x1F8AE, 0x1F8FF}, {0x1F90C, 0x1F93A}, {0x1F93C, 0x1F945},
    {0x1F947, 0x1FAFF}, {0x1FC00, 0x1FFFD},
};

// Emoji_Presentation=Yes below U+1F000, same file. Extended_Pictographic code points below U+1F000
// that are not in it (©, ®, ™, ‼, arrows, ☀, ❤...) default to text presentation: they count as
// emoji only with U+FE0F, a skin-tone modifier or in a ZWJ sequence, so "Studio™" has no emoji.
// From U+1F000 on every pictographic code point counts (reserved ones too: future emoji).
constexpr CodePointRange kEmojiPresentationBmp[] = {
    {0x231A, 0x231B}, {0x23E9, 0x23EC}, {0x23F0, 0x23F0}, {0x23F3, 0x23F3}, {0x25FD, 0x25FE},
    {0x2614, 0x2615}, {0x2648, 0x2653}, {0x267F, 0x267F}, {0x2693, 0x2693}, {0x26A1, 0x26A1},
    {0x26AA, 0x26AB}, {0x26BD, 0x26BE}, {0x26C4, 0x26C5}, {0x26CE, 0x26CE}, {0x26D4, 0x26D4},
    {0x26EA, 0x26EA}, {0x26F2, 0x26F3}, {0x26F5, 0x26F5}, {0x26FA, 0x26FA}, {0x26FD, 0x26FD},
    {0x2705, 0x2705}, {0x270A, 0x270B}, {0x2728, 0x2728}, {0x274C, 0x274C}, {0x274E, 0x274E},
    {0x2753, 0x2755}, {0x2757, 0x2757}, {0x2795, 0x2797}, {0x27B0, 0x27B0}, {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C}, {0x2B50, 0x2B50}, {0x2B55, 0x2B55},
};

template <size_t N>
bool in_table(const CodePointRange (&table)[N], char32_t cp) {
  const CodePointRange* it =
      std::lower_bound(std::begin(table), std::end(table), cp,
                       [](const CodePointRange& r, char32_t c) { return r.last < c; });
  return it != std::end(table) && it->first <= cp;
}

bool is_pictographic(char32_t cp) { return in_table(kExtendedPictographic, cp); }
bool has_emoji_presentation(char32_t cp) {
  return cp >= 0x1F000 || in_table(kEmojiPresentationBmp, cp);
}
bool is_regional_indicator(char32_t cp) { return cp >= 0x1F1E6 && cp <= 0x1F1FF; }
bool is_skin_tone(char32_t cp) { return cp >= 0x1F3FB && cp <= 0x1F3FF; }
bool is_tag(char32_t cp) { return cp >= 0xE0020 && cp <= 0xE007F; }
bool is_keycap_base(char32_t cp) { return (cp >= '0' && cp <= '9') || cp == '#' || cp == '*'; }

constexpr char32_t kVs16 = 0xFE0F;  // emoji presentation selector
constexpr char32_t kVs15 = 0xFE0E;  // text presentation selector
constexpr char32_t kZwj = 0x200D;
constexpr char32_t kKeycap = 0x20E3;

// A run [begin, end) of code points.
struct Span {
  size_t begin;
  size_t end;
};

// After a pictographic base at j - 1: its presentation selector, skin tone and tag characters.
size_t extend_emoji(const std::u32string& s, size_t j, bool* presented) {
  if (j < s.size() && s[j] == kVs16) {
    *presented = true;
    ++j;
  } else if (j < s.size() && s[j] == kVs15) {
    *presented = false;
    ++j;
  }
  if (j < s.size() && is_skin_tone(s[j])) {
    *presented = true;
    ++j;
    if (j < s.size() && s[j] == kVs16) ++j;
  }
  while (j < s.size() && is_tag(s[j])) ++j;  // subdivision flags: U+1F3F4 + tags + U+E007F
  return j;
}

// Emoji sequences: keycaps, regional-indicator pairs (a lone one counts alone), pictographs with
// their selectors / skin tones / tags, joined by ZWJ into one sequence.
std::vector<Span> find_emoji(const std::u32string& s) {
  std::vector<Span> out;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const char32_t c = s[i];
    size_t end = 0;
    if (is_keycap_base(c)) {
      size_t j = i + 1;
      if (j < n && s[j] == kVs16) ++j;
      if (j < n && s[j] == kKeycap) end = j + 1;
    } else if (is_regional_indicator(c)) {
      end = (i + 1 < n && is_regional_indicator(s[i + 1])) ? i + 2 : i + 1;
    } else if (is_pictographic(c) || is_skin_tone(c)) {
      bool presented = has_emoji_presentation(c);
      size_t j = extend_emoji(s, i + 1, &presented);
      while (j + 1 < n && s[j] == kZwj && is_pictographic(s[j + 1])) {
        bool joined = true;
        j = extend_emoji(s, j + 2, &joined);
        presented = true;
      }
      if (presented) end = j;
    }
    if (end != 0) {
      out.push_back({i, end});
      i = end;
    } else {
      ++i;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text as code points.

bool is_word_char(char32_t cp) {
  return cp == '_' || unicode::is_letter(cp) || unicode::is_number(cp);
}

size_t utf8_length(char32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// Lowercase of one code point (the first of a multi-code-point lowercase such as U+0130 -> "i"
// U+0307, so that indices keep matching the text); final sigma compares as sigma.
char32_t fold(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + ('a' - 'A') : cp;
  if (cp == 0x03C2) return 0x03C3;
  const std::u32string lower = unicode::to_lower(std::u32string_view(&cp, 1));
  if (lower.empty()) return cp;
  return lower[0] == 0x03C2 ? char32_t{0x03C3} : lower[0];
}

std::u32string fold_all(std::u32string_view s) {
  std::u32string out(s);
  for (char32_t& c : out) c = fold(c);
  return out;
}

struct Text {
  std::u32string cps;
  std::u32string folded;
  std::vector<size_t> offsets;  // byte offset of each code point, then the text size

  size_t byte(size_t index) const { return offsets[index]; }
};

Text decode_text(std::string_view text) {
  Text t;
  size_t bad = 0;
  if (!unicode::decode_utf8(text, t.cps, &bad))
    throw FormatError(
        "the caption is not valid UTF-8 (bad sequence at byte " + std::to_string(bad) + ")",
        "caption text, byte " + std::to_string(bad),
        "repair the text's encoding before checking it");
  t.offsets.reserve(t.cps.size() + 1);
  size_t at = 0;
  for (char32_t c : t.cps) {
    t.offsets.push_back(at);
    at += utf8_length(c);
  }
  t.offsets.push_back(at);
  t.folded = fold_all(t.cps);
  return t;
}

// Whole-word (or phrase) occurrences of `needle` in `hay`, left to right, not overlapping.
std::vector<Span> find_words(const std::u32string& hay, const std::u32string& needle) {
  std::vector<Span> out;
  if (needle.empty() || needle.size() > hay.size()) return out;
  size_t from = 0;
  while (from + needle.size() <= hay.size()) {
    const size_t at = hay.find(needle, from);
    if (at == std::u32string::npos) break;
    const size_t end = at + needle.size();
    const bool left_ok = at == 0 || !is_word_char(hay[at - 1]);
    const bool right_ok = end == hay.size() || !is_word_char(hay[end]);
    if (left_ok && right_ok) {
      out.push_back({at, end});
      from = end;
    } else {
      from = at + 1;
    }
  }
  return out;
}

// '#' followed by a run of letters, digits or '_' (at least one).
std::vector<Span> find_hashtags(const std::u32string& s) {
  std::vector<Span> out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '#') {
      size_t j = i + 1;
      while (j < s.size() && is_word_char(s[j])) ++j;
      if (j > i + 1) {
        out.push_back({i, j});
        i = j;
        continue;
      }
    }
    ++i;
  }
  return out;
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

RuleViolation make(const char* rule, std::string message, size_t begin, size_t end,
                   std::string insert = {}) {
  RuleViolation v;
  v.rule = rule;
  v.message = std::move(message);
  v.begin = begin;
  v.end = end;
  v.insert = std::move(insert);
  return v;
}

void sort_by_begin(std::vector<RuleViolation>& v, size_t from) {
  std::stable_sort(
      v.begin() + static_cast<std::ptrdiff_t>(from), v.end(),
      [](const RuleViolation& a, const RuleViolation& b) { return a.begin < b.begin; });
}

// ---------------------------------------------------------------------------------------------
// JSON reading.

const char* emoji_policy_name(EmojiPolicy p) {
  switch (p) {
    case EmojiPolicy::kNone:
      return "none";
    case EmojiPolicy::kRequired:
      return "required";
    case EmojiPolicy::kAllowed:
      break;
  }
  return "allowed";
}

std::string found(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

class Problems {
 public:
  explicit Problems(std::string base) : base_(std::move(base)) {}
  void add(const std::string& path, const std::string& found_text, const std::string& expected) {
    const std::string where = base_ + path;
    items_.push_back((where.empty() ? "/" : where) + ": found " + found_text + ", expected " +
                     expected);
  }
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  std::string joined() const {
    std::string out;
    for (const std::string& s : items_) out += (out.empty() ? "" : "; ") + s;
    return out;
  }

 private:
  std::string base_;
  std::vector<std::string> items_;
};

// Reads an integer >= minimum; false (and a problem) when present but wrong.
bool read_int(const json& obj, const char* key, const std::string& path, int64_t minimum,
              const std::string& expected, int64_t& out, Problems& problems) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  const json& v = *it;
  bool ok = v.is_number_integer();
  int64_t value = 0;
  if (ok && v.is_number_unsigned()) {
    ok = v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (ok) value = static_cast<int64_t>(v.get<uint64_t>());
  } else if (ok) {
    value = v.get<int64_t>();
  }
  if (!ok || value < minimum) {
    problems.add(path, found(v), expected);
    return false;
  }
  out = value;
  return true;
}

bool read_bool(const json& obj, const char* key, const std::string& path, bool& out,
               Problems& problems) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  if (!it->is_boolean()) {
    problems.add(path, found(*it), "true or false");
    return false;
  }
  out = it->get<bool>();
  return true;
}

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

bool is_hashtag(const std::string& s) {
  if (s.size() < 2 || s[0] != '#') return false;
  std::u32string cps;
  if (!unicode::decode_utf8(std::string_view(s).substr(1), cps)) return false;
  return std::all_of(cps.begin(), cps.end(), is_word_char);
}

// An array of non-empty strings (hashtags when `hashtags`); bad elements are skipped and reported.
bool read_strings(const json& obj, const char* key, const std::string& path, bool hashtags,
                  std::vector<std::string>& out, Problems& problems) {
  auto it = obj.find(key);
  if (it == obj.end()) return true;
  if (!it->is_array()) {
    problems.add(path, found(*it), hashtags ? "an array of hashtags" : "an array of strings");
    return false;
  }
  bool ok = true;
  out.clear();
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    const std::string epath = path + "/" + std::to_string(i);
    if (!e.is_string()) {
      problems.add(epath, found(e), hashtags ? "a hashtag string" : "a string");
      ok = false;
    } else if (hashtags && !is_hashtag(e.get<std::string>())) {
      problems.add(epath, found(e), "a hashtag: '#' then letters, digits or '_' (\"#sale\")");
      ok = false;
    } else if (!hashtags && blank(e.get<std::string>())) {
      problems.add(epath, found(e), "a non-empty word or phrase");
      ok = false;
    } else {
      out.push_back(e.get<std::string>());
    }
  }
  return ok;
}

void check_unknown_keys(const json& obj, const std::string& path,
                        const std::vector<std::string>& allowed, Problems& problems) {
  std::string list;
  for (const std::string& k : allowed) list += (list.empty() ? "" : ", ") + k;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
      problems.add(path + "/" + it.key(), "an unknown key", "one of " + list);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

bool CaptionRules::empty() const {
  return min_chars == 0 && max_chars == 0 && required_words.empty() && banned_words.empty() &&
         brand_terms.empty() && !brand_required && hashtags_min == 0 && hashtags_max == -1 &&
         hashtags_required.empty() && emoji == EmojiPolicy::kAllowed && emoji_max == -1;
}

CaptionRules CaptionRules::from_json(const nlohmann::json& j, const std::string& origin,
                                     const std::string& json_path) {
  CaptionRules r;
  Problems problems(json_path);
  if (!j.is_object()) {
    problems.add("", found(j), "an object of caption rules");
    throw ConfigError("invalid caption rules: " + problems.joined(), origin, kPresetHint);
  }
  check_unknown_keys(j, "",
                     {"min_chars", "max_chars", "required_words", "banned_words", "brand_terms",
                      "brand_required", "hashtags", "emoji", "emoji_max", "case_sensitive"},
                     problems);

  const bool min_ok =
      read_int(j, "min_chars", "/min_chars", 0, "an integer >= 0", r.min_chars, problems);
  const bool max_ok = read_int(j, "max_chars", "/max_chars", 0, "an integer >= 0 (0 = no limit)",
                               r.max_chars, problems);
  const bool required_ok =
      read_strings(j, "required_words", "/required_words", false, r.required_words, problems);
  const bool banned_ok =
      read_strings(j, "banned_words", "/banned_words", false, r.banned_words, problems);
  const bool brands_ok =
      read_strings(j, "brand_terms", "/brand_terms", false, r.brand_terms, problems);
  const bool brand_required_ok =
      read_bool(j, "brand_required", "/brand_required", r.brand_required, problems);

  bool tags_min_ok = true, tags_max_ok = true, tags_required_ok = true;
  if (auto it = j.find("hashtags"); it != j.end()) {
    if (!it->is_object()) {
      problems.add("/hashtags", found(*it), "an object with min, max, required");
      tags_min_ok = tags_max_ok = tags_required_ok = false;
    } else {
      check_unknown_keys(*it, "/hashtags", {"min", "max", "required"}, problems);
      tags_min_ok =
          read_int(*it, "min", "/hashtags/min", 0, "an integer >= 0", r.hashtags_min, problems);
      tags_max_ok = read_int(*it, "max", "/hashtags/max", -1, "an integer >= -1 (-1 = no limit)",
                             r.hashtags_max, problems);
      tags_required_ok =
          read_strings(*it, "required", "/hashtags/required", true, r.hashtags_required, problems);
    }
  }

  bool emoji_ok = true;
  if (auto it = j.find("emoji"); it != j.end()) {
    const std::string v = it->is_string() ? it->get<std::string>() : std::string();
    if (v == "allowed")
      r.emoji = EmojiPolicy::kAllowed;
    else if (v == "none")
      r.emoji = EmojiPolicy::kNone;
    else if (v == "required")
      r.emoji = EmojiPolicy::kRequired;
    else {
      problems.add("/emoji", found(*it), "\"allowed\", \"none\" or \"required\"");
      emoji_ok = false;
    }
  }
  const bool emoji_max_ok = read_int(j, "emoji_max", "/emoji_max", -1,
                                     "an integer >= -1 (-1 = no limit)", r.emoji_max, problems);
  const bool case_ok =
      read_bool(j, "case_sensitive", "/case_sensitive", r.case_sensitive, problems);

  // Rules that contradict each other (checked only where both values are valid on their own).
  if (min_ok && max_ok && r.max_chars > 0 && r.min_chars > r.max_chars)
    problems.add("/min_chars", std::to_string(r.min_chars),
                 "at most max_chars (" + std::to_string(r.max_chars) + ")");
  if (tags_min_ok && tags_max_ok && r.hashtags_max >= 0 && r.hashtags_min > r.hashtags_max)
    problems.add("/hashtags/min", std::to_string(r.hashtags_min),
                 "at most hashtags/max (" + std::to_string(r.hashtags_max) + ")");
  if (tags_required_ok && tags_max_ok && r.hashtags_max >= 0 &&
      static_cast<int64_t>(r.hashtags_required.size()) > r.hashtags_max)
    problems.add("/hashtags/required",
                 plural(static_cast<int64_t>(r.hashtags_required.size()), "hashtag", "hashtags"),
                 "at most hashtags/max (" + std::to_string(r.hashtags_max) + ")");
  if (emoji_ok && emoji_max_ok && r.emoji == EmojiPolicy::kRequired && r.emoji_max == 0)
    problems.add("/emoji_max", "0", "-1 or at least 1 when emoji is \"required\"");
  if (brand_required_ok && brands_ok && r.brand_required && r.brand_terms.empty())
    problems.add("/brand_required", "true", "false when brand_terms is empty");
  if (required_ok && banned_ok && case_ok) {
    for (size_t b = 0; b < r.banned_words.size(); ++b) {
      const std::u32string banned = unicode::decode_utf8_lossy(r.banned_words[b]);
      for (const std::string& w : r.required_words) {
        const std::u32string req = unicode::decode_utf8_lossy(w);
        if (r.case_sensitive ? banned == req : fold_all(banned) == fold_all(req)) {
          problems.add("/banned_words/" + std::to_string(b), in_quotes(r.banned_words[b]),
                       "a word that required_words does not also require");
          break;
        }
      }
    }
  }
  if (brands_ok) {
    for (size_t b = 1; b < r.brand_terms.size(); ++b) {
      const std::u32string term = fold_all(unicode::decode_utf8_lossy(r.brand_terms[b]));
      for (size_t a = 0; a < b; ++a) {
        if (r.brand_terms[a] != r.brand_terms[b] &&
            fold_all(unicode::decode_utf8_lossy(r.brand_terms[a])) == term) {
          problems.add("/brand_terms/" + std::to_string(b), in_quotes(r.brand_terms[b]),
                       "one spelling per term (brand_terms/" + std::to_string(a) + " is " +
                           in_quotes(r.brand_terms[a]) + ")");
          break;
        }
      }
    }
  }

  if (!problems.empty())
    throw ConfigError("invalid caption rules (" +
                          plural(static_cast<int64_t>(problems.size()), "problem", "problems") +
                          "): " + problems.joined(),
                      origin, kPresetHint);
  return r;
}

nlohmann::json CaptionRules::to_json() const {
  json j = json::object();
  j["min_chars"] = min_chars;
  j["max_chars"] = max_chars;
  j["required_words"] = required_words;
  j["banned_words"] = banned_words;
  j["brand_terms"] = brand_terms;
  j["brand_required"] = brand_required;
  j["hashtags"] = {{"min", hashtags_min}, {"max", hashtags_max}, {"required", hashtags_required}};
  j["emoji"] = emoji_policy_name(emoji);
  j["emoji_max"] = emoji_max;
  j["case_sensitive"] = case_sensitive;
  return j;
}

// ---------------------------------------------------------------------------------------------

std::vector<RuleViolation> check_caption(std::string_view text, const CaptionRules& rules) {
  const Text t = decode_text(text);
  const size_t n = t.cps.size();
  const size_t end = text.size();
  const std::string at_end = " (insert at character " + std::to_string(n) + ")";
  const std::u32string& hay = rules.case_sensitive ? t.cps : t.folded;
  auto prepare = [&](const std::string& word) {
    const std::u32string w = unicode::decode_utf8_lossy(word);
    return rules.case_sensitive ? w : fold_all(w);
  };
  std::vector<RuleViolation> out;

  if (rules.max_chars > 0 && static_cast<int64_t>(n) > rules.max_chars) {
    const size_t limit = static_cast<size_t>(rules.max_chars);
    size_t from = limit;
    if (!unicode::is_space(t.cps[limit])) {
      while (from > 0 && !unicode::is_space(t.cps[from - 1])) --from;
    }
    out.push_back(make("max_chars",
                       "caption has " + std::to_string(n) + " characters, the limit is " +
                           std::to_string(rules.max_chars) + " (rewrite from character " +
                           std::to_string(from) + " on)",
                       t.byte(from), end));
  }

  if (rules.min_chars > 0 && static_cast<int64_t>(n) < rules.min_chars) {
    out.push_back(make("min_chars",
                       "caption has " + std::to_string(n) + " characters, the minimum is " +
                           std::to_string(rules.min_chars) + at_end,
                       end, end));
  }

  for (const std::string& word : rules.required_words) {
    if (find_words(hay, prepare(word)).empty())
      out.push_back(make("required_words",
                         "required word " + in_quotes(word) + " is missing" + at_end, end, end,
                         word));
  }

  size_t first = out.size();
  for (const std::string& word : rules.banned_words) {
    for (const Span& s : find_words(hay, prepare(word))) {
      const std::string_view found_text =
          text.substr(t.byte(s.begin), t.byte(s.end) - t.byte(s.begin));
      out.push_back(make("banned_words",
                         "banned word " + in_quotes(word) + " appears as " + in_quotes(found_text) +
                             " at character " + std::to_string(s.begin),
                         t.byte(s.begin), t.byte(s.end)));
    }
  }
  sort_by_begin(out, first);

  // Brand terms are found case-insensitively whatever case_sensitive says: a wrong case is the
  // very thing to catch.
  bool any_brand = false;
  first = out.size();
  for (const std::string& term : rules.brand_terms) {
    for (const Span& s : find_words(t.folded, fold_all(unicode::decode_utf8_lossy(term)))) {
      any_brand = true;
      const std::string_view found_text =
          text.substr(t.byte(s.begin), t.byte(s.end) - t.byte(s.begin));
      if (found_text == term) continue;
      out.push_back(make("brand_terms",
                         "brand term " + in_quotes(found_text) + " at character " +
                             std::to_string(s.begin) + " must be spelled " + in_quotes(term),
                         t.byte(s.begin), t.byte(s.end), term));
    }
  }
  sort_by_begin(out, first);
  if (rules.brand_required && !any_brand && !rules.brand_terms.empty()) {
    std::string list;
    for (const std::string& term : rules.brand_terms)
      list += (list.empty() ? "" : ", ") + in_quotes(term);
    out.push_back(make("brand_required", "none of the brand terms " + list + " appears" + at_end,
                       end, end, rules.brand_terms.front()));
  }

  const std::vector<Span> tags = find_hashtags(t.cps);
  std::set<std::u32string> present_tags;
  for (const Span& s : tags) present_tags.insert(t.folded.substr(s.begin, s.end - s.begin));
  std::vector<std::string> missing_tags;
  for (const std::string& tag : rules.hashtags_required) {
    if (present_tags.count(fold_all(unicode::decode_utf8_lossy(tag))) == 0)
      missing_tags.push_back(tag);
  }
  const int64_t tag_count = static_cast<int64_t>(tags.size());
  if (tag_count < rules.hashtags_min) {
    std::string insert;
    for (const std::string& tag : missing_tags) insert += (insert.empty() ? "" : " ") + tag;
    out.push_back(make("hashtags.min",
                       "caption has " + plural(tag_count, "hashtag", "hashtags") + ", at least " +
                           std::to_string(rules.hashtags_min) + " are required" + at_end,
                       end, end, insert));
  }
  if (rules.hashtags_max >= 0 && tag_count > rules.hashtags_max) {
    for (size_t i = static_cast<size_t>(rules.hashtags_max); i < tags.size(); ++i) {
      const Span& s = tags[i];
      const size_t from =
          (s.begin > 0 && unicode::is_space(t.cps[s.begin - 1])) ? s.begin - 1 : s.begin;
      out.push_back(make(
          "hashtags.max",
          "hashtag " +
              unicode::encode_utf8(std::u32string_view(t.cps).substr(s.begin, s.end - s.begin)) +
              " at character " + std::to_string(s.begin) + " is beyond the limit of " +
              plural(rules.hashtags_max, "hashtag", "hashtags"),
          t.byte(from), t.byte(s.end)));
    }
  }
  for (const std::string& tag : missing_tags)
    out.push_back(make("hashtags.required", "required hashtag " + tag + " is missing" + at_end, end,
                       end, tag));

  const std::vector<Span> emoji = find_emoji(t.cps);
  auto emoji_text = [&](const Span& s) {
    return std::string(text.substr(t.byte(s.begin), t.byte(s.end) - t.byte(s.begin)));
  };
  if (rules.emoji == EmojiPolicy::kNone) {
    for (const Span& s : emoji)
      out.push_back(make(
          "emoji",
          "emoji " + emoji_text(s) + " at character " + std::to_string(s.begin) + " is not allowed",
          t.byte(s.begin), t.byte(s.end)));
  } else {
    if (rules.emoji == EmojiPolicy::kRequired && emoji.empty())
      out.push_back(
          make("emoji", "caption has no emoji, at least one is required" + at_end, end, end));
    if (rules.emoji_max >= 0 && static_cast<int64_t>(emoji.size()) > rules.emoji_max) {
      for (size_t i = static_cast<size_t>(rules.emoji_max); i < emoji.size(); ++i) {
        const Span& s = emoji[i];
        out.push_back(make("emoji_max",
                           "emoji " + emoji_text(s) + " at character " + std::to_string(s.begin) +
                               " is beyond the limit of " + std::to_string(rules.emoji_max),
                           t.byte(s.begin), t.byte(s.end)));
      }
    }
  }
  return out;
}

int64_t count_hashtags(std::string_view text) {
  return static_cast<int64_t>(find_hashtags(unicode::decode_utf8_lossy(text)).size());
}

int64_t count_chars(std::string_view text) {
  int64_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace studio
