// Port of ftfy 6.2.0 fix_text() (default TextFixerConfig), step for step, so that CLIP prompts are
// cleaned exactly as transformers' CLIPTokenizer cleans them when ftfy is installed. The comments
// name the ftfy function each piece mirrors; tables come from ftfy_tables.cpp (generated).
#include "text/ftfy.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "text/ftfy_tables.h"
#include "text/unicode.h"

namespace studio::ftfy {
namespace {

using Bytes = std::string;

std::u32string from_utf8(const char* s) {
  std::u32string out;
  unicode::decode_utf8(s, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Character classes of ftfy's badness heuristic (badness.MOJIBAKE_CATEGORIES) and of its UTF-8
// detector (chardata.UTF8_CLUES). "a-b" is a range, as inside a regex character class.

enum Category : uint32_t {
  kCommon = 1u << 0,
  kC1 = 1u << 1,
  kBad = 1u << 2,
  kCurrency = 1u << 3,
  kStartPunct = 1u << 4,
  kEndPunct = 1u << 5,
  kNumeric = 1u << 6,
  kKaomoji = 1u << 7,
  kUpperAccented = 1u << 8,
  kLowerAccented = 1u << 9,
  kUpperCommon = 1u << 10,
  kLowerCommon = 1u << 11,
  kBox = 1u << 12,
  kFirstOf2 = 1u << 13,
  kFirstOf3 = 1u << 14,
  kFirstOf4 = 1u << 15,
  kContinuation = 1u << 16,
  kContinuationStrict = 1u << 17,
};

struct CategorySpec {
  Category category;
  const char32_t* chars;
};

const CategorySpec kCategorySpecs[] = {
    {kCommon, U"\u00A0\u00AD\u00B7\u00B4\u2013\u2014\u2015\u2026\u2019"},
    {kC1, U"\u0080-\u009F"},
    {kBad,
     U"\u00A6\u00A4\u00A8\u00AC\u00AF\u00B6\u00A7\u00B8\u0192\u02C6\u02C7\u02D8\u02DB\u02DC"
     U"\u2020\u2021\u2030\u2310\u25CA\uFFFD\u00AA\u00BA"},
    {kCurrency, U"\u00A2\u00A3\u00A5\u20A7\u20AC"},
    {kStartPunct,
     U"\u00A1\u00AB\u00BF\u00A9\u0384\u0385\u2018\u201A\u201C\u201E\u2022\u2039\uF8FF"},
    {kEndPunct, U"\u00AE\u00BB\u02DD\u201D\u203A\u2122"},
    {kNumeric,
     U"\u00B2\u00B3\u00B9\u00B1\u00BC\u00BD\u00BE\u00D7\u00B5\u00F7\u2044\u2202\u2206\u220F"
     U"\u2211\u221A\u221E\u2229\u222B\u2248\u2260\u2261\u2264\u2265\u2116"},
    {kKaomoji, U"\u00D2-\u00D6\u00D9-\u00DC\u00F2-\u00F6\u00F8-\u00FC\u0150\u00B0"},
    {kUpperAccented,
     U"\u00C0-\u00D1\u00D8\u00DC\u00DD\u0102\u0104\u0106\u010C\u010E\u0110\u0118\u011A\u011E"
     U"\u0130\u0139\u013D\u0141\u0143\u0147\u0152\u0158\u015A\u015E\u0160\u0162\u0164\u016E"
     U"\u0170\u0178\u0179\u017B\u017D\u0490"},
    {kLowerAccented,
     U"\u00DF\u00E0-\u00F1\u0103\u0105\u0107\u010D\u010F\u0111\u0119\u011B\u011F\u013A\u013E"
     U"\u0142\u0153\u0155\u015B\u015F\u0161\u0165\u00FC\u017A\u017C\u017E\u0491\uFB01\uFB02"},
    {kUpperCommon,
     U"\u00DE\u0391-\u03A9\u0386\u0388\u0389\u038A\u038C\u038E\u038F\u03AA\u03AB\u0401-\u042F"},
    {kLowerCommon, U"\u03B1-\u03C9\u03AC\u03AD\u03AE\u03AF\u03B0\u0430-\u045F"},
    {kBox,
     U"\u2502\u250C\u2510\u2518\u251C\u2524\u252C\u253C\u2550-\u256C\u2580\u2584\u2588\u258C"
     U"\u2590\u2591\u2592\u2593"},
    {kFirstOf2,
     U"\u00C2-\u00DF\u0102\u0106\u010C\u010E\u0110\u0118\u011A\u011E\u0130\u0139\u0143\u0147"
     U"\u0150\u0158\u015E\u0162\u016E\u0170\u0392-\u03A1\u03A3-\u03AF\u0412-\u042F"},
    {kFirstOf3,
     U"\u00E0-\u00EF\u0103\u0107\u010D\u010F\u0119\u011B\u013A\u0155\u03B0-\u03BF\u0430-\u043F"},
    {kFirstOf4, U"\u00F0\u00F3\u0111\u011F\u03C0\u03C3\u0440\u0443"},
    {kContinuation,
     U"\u0080-\u00BF\u0104\u0105\u013D\u013E\u0141\u0142\u0152\u0153\u015A\u015B\u015E\u015F"
     U"\u0160\u0161\u0164\u0165\u0178-\u017E\u0192\u02C6\u02C7\u02D8\u02DB\u02DC\u02DD\u0384"
     U"\u0385\u0386\u0388\u0389\u038A\u038C\u038E\u038F\u0401-\u040C\u040E\u040F\u0451-\u045C"
     U"\u045E\u045F\u0490\u0491\u2013\u2014\u2015\u2018\u2019\u201A\u201C\u201D\u201E\u2020"
     U"\u2021\u2022\u2026\u2030\u2039\u203A\u20AC\u2116\u2122 "},
    {kContinuationStrict,
     U"\u0080-\u00BF\u0104\u0105\u013D\u013E\u0141\u0142\u0152\u0153\u015A\u015B\u015E\u015F"
     U"\u0160\u0161\u0164\u0165\u0178-\u017E\u0192\u02C6\u02C7\u02D8\u02DB\u02DC\u02DD\u0384"
     U"\u0385\u0386\u0388\u0389\u038A\u038C\u038E\u038F\u0401-\u040C\u040E\u040F\u0451-\u045C"
     U"\u045E\u045F\u0490\u0491\u2020\u2021\u2022\u2030\u2039\u203A\u20AC\u2116\u2122"},
};

// Calls fn(first, last) for each character or range of a class spec.
template <typename Fn>
void for_each_range(std::u32string_view spec, Fn fn) {
  for (size_t i = 0; i < spec.size(); ++i) {
    if (i + 2 < spec.size() && spec[i + 1] == U'-') {
      fn(spec[i], spec[i + 2]);
      i += 2;
    } else {
      fn(spec[i], spec[i]);
    }
  }
}

const std::unordered_map<char32_t, uint32_t>& category_map() {
  static const std::unordered_map<char32_t, uint32_t> map = [] {
    std::unordered_map<char32_t, uint32_t> m;
    for (const CategorySpec& spec : kCategorySpecs)
      for_each_range(spec.chars, [&](char32_t a, char32_t b) {
        for (char32_t c = a; c <= b; ++c) m[c] |= spec.category;
      });
    return m;
  }();
  return map;
}

uint32_t categories_of(char32_t cp) {
  const auto& m = category_map();
  auto it = m.find(cp);
  return it == m.end() ? 0 : it->second;
}

// A regex character class: any of the named categories or of the listed characters/ranges.
struct CharClass {
  uint32_t categories = 0;
  std::vector<std::pair<char32_t, char32_t>> ranges;
  bool negate = false;

  bool contains(char32_t cp) const {
    bool in = (categories_of(cp) & categories) != 0;
    for (size_t i = 0; !in && i < ranges.size(); ++i)
      in = cp >= ranges[i].first && cp <= ranges[i].second;
    return in != negate;
  }
};

CharClass cls(uint32_t categories, std::u32string_view chars = {}, bool negate = false) {
  CharClass c;
  c.categories = categories;
  c.negate = negate;
  for_each_range(chars, [&](char32_t a, char32_t b) { c.ranges.emplace_back(a, b); });
  return c;
}

struct Atom {
  enum Kind { kClass, kSpace, kOptionalSpace, kWord, kAnyButNewline, kStartOfText } kind;
  CharClass chars;
};
using Pattern = std::vector<Atom>;

Atom in(uint32_t categories, std::u32string_view chars = {}) {
  return {Atom::kClass, cls(categories, chars)};
}
Atom lit(std::u32string_view chars) { return {Atom::kClass, cls(0, chars)}; }
Atom not_in(std::u32string_view chars) { return {Atom::kClass, cls(0, chars, true)}; }
Atom special(Atom::Kind kind) { return {kind, {}}; }

bool match_at(const Pattern& p, size_t k, std::u32string_view text, size_t i) {
  if (k == p.size()) return true;
  const Atom& a = p[k];
  switch (a.kind) {
    case Atom::kStartOfText:
      return i == 0 && match_at(p, k + 1, text, i);
    case Atom::kOptionalSpace:
      if (i < text.size() && unicode::is_space(text[i]) && match_at(p, k + 1, text, i + 1))
        return true;
      return match_at(p, k + 1, text, i);
    default:
      break;
  }
  if (i >= text.size()) return false;
  char32_t c = text[i];
  bool ok = false;
  switch (a.kind) {
    case Atom::kClass:
      ok = a.chars.contains(c);
      break;
    case Atom::kSpace:
      ok = unicode::is_space(c);
      break;
    case Atom::kWord:
      ok = unicode::is_word(c);
      break;
    case Atom::kAnyButNewline:
      ok = c != U'\n';
      break;
    default:
      break;
  }
  return ok && match_at(p, k + 1, text, i + 1);
}

// badness.BADNESS_RE, one Pattern per alternative, in its order.
const std::vector<Pattern>& badness_patterns() {
  static const std::vector<Pattern> patterns = [] {
    const uint32_t la = kLowerAccented, ua = kUpperAccented, sp = kStartPunct, ep = kEndPunct;
    const uint32_t cur = kCurrency, num = kNumeric, box = kBox, bad = kBad;
    std::vector<Pattern> p;
    p.push_back({in(kC1)});
    p.push_back({in(bad | la | ua | box | sp | ep | cur | num), in(bad)});
    p.push_back({lit(U"a-zA-Z"), in(kLowerCommon | kUpperCommon), in(bad)});
    p.push_back({in(bad), in(la | ua | box | sp | ep | cur | num)});
    p.push_back({in(la | kLowerCommon | box | ep | cur | num), in(ua)});
    p.push_back({in(box | ep | cur | num), in(la)});
    p.push_back({in(la | box | ep), in(cur)});
    p.push_back({special(Atom::kSpace), in(ua), in(cur)});
    p.push_back({in(ua | box), in(num)});
    p.push_back({in(la | ua | box | cur | ep), in(sp), in(num)});
    p.push_back({in(la | ua | cur | num | box), in(ep), in(sp)});
    p.push_back({in(cur | num | box), in(sp)});
    p.push_back({lit(U"a-z"), in(ua), in(sp | cur)});
    p.push_back({in(box), in(kKaomoji)});
    p.push_back({in(la | ua | cur | num | sp | ep), in(box)});
    p.push_back({in(box), in(ep)});
    p.push_back({in(la | ua), in(ep), special(Atom::kWord)});
    // The ligature oe when not followed by an unaccented Latin letter.
    p.push_back({lit(U"\u0152\u0153"), not_in(U"A-Za-z")});
    // Common Windows-1252 2-character mojibake.
    p.push_back({lit(U"\u00C2\u00C3\u00CE\u00D0"),
                 in(sp | ep,
                    U"\u20AC\u0160\u0161\u00A2\u00A3\u0178\u017E\u00A0\u00AD\u00AE"
                    U"\u00A9\u00B0\u00B7\u00BB\u2013\u2014\u00B4")});
    p.push_back({lit(U"\u00D7"), lit(U"\u00B2\u00B3")});
    // Windows-1252 mojibake of Arabic words (four characters).
    const Atom arabic_2nd =
        in(kCommon | cur | bad | num | sp, U"\u0178\u0160\u00AE\u00B0\u00B5\u00BB");
    p.push_back({lit(U"\u00D8\u00D9"), arabic_2nd, lit(U"\u00D8\u00D9"), arabic_2nd});
    // Windows-1252 mojibake starting 3-character sequences of some South Asian alphabets.
    p.push_back({lit(U"\u00E0"), lit(U"\u00B2\u00B5\u00B9\u00BC\u00BD\u00BE")});
    // MacRoman mojibake.
    p.push_back({lit(U"\u221A"),
                 lit(U"\u00B1\u2202\u2020\u2260\u00AE\u2122\u00B4\u2264\u2265\u00A5\u00B5\u00F8")});
    p.push_back({lit(U"\u2248"), lit(U"\u00B0\u00A2")});
    p.push_back({lit(U"\u201A"), lit(U"\u00C4"),
                 lit(U"\u00EC\u00EE\u00EF\u00F2\u00F4\u00FA\u00F9\u00FB\u2020\u00B0\u00A2\u03C0")});
    p.push_back({lit(U"\u201A"), lit(U"\u00E2\u00F3"), lit(U"\u00E0\u00E4\u00B0\u00EA")});
    // Windows-1251 mojibake.
    p.push_back({lit(U"\u0432"), lit(U"\u0402")});
    p.push_back({lit(U"\u0412\u0413\u0420\u0421"), in(kC1 | bad | sp | ep | cur, U"\u00B0\u00B5"),
                 lit(U"\u0412\u0413\u0420\u0421")});
    p.push_back({lit(U"\u0413"), lit(U"\u045E"), lit(U"\u0412"), lit(U"\u0402"), lit(U"\u0412"),
                 special(Atom::kAnyButNewline), lit(U"A-Za-z ")});
    // Windows-1252 encodings of a-grave and a-acute, and of U+A0 itself.
    p.push_back({lit(U"\u00C3"), lit(U"\u00A0\u00A1")});
    p.push_back({lit(U"a-z"), special(Atom::kOptionalSpace), lit(U"\u00C3\u00C2"), lit(U" ")});
    p.push_back({special(Atom::kStartOfText), lit(U"\u00C3\u00C2"), lit(U" ")});
    p.push_back({in(ep, U"a-z.,?!"), lit(U"\u00C2"), in(sp | ep, U" ")});
    // Windows-1253 mojibake.
    p.push_back({lit(U"\u03B2"), lit(U"\u20AC"), lit(U"\u2122\u00A0\u0386\u00AD\u00AE\u00B0")});
    p.push_back({lit(U"\u0392\u0393\u039E\u039F"), in(kC1 | bad | sp | ep | cur, U"\u00B0"),
                 lit(U"\u0392\u0393\u039E\u039F")});
    return p;
  }();
  return patterns;
}

// ---------------------------------------------------------------------------------------------
// Single-byte encodings (chardata.CHARMAP_ENCODINGS, bad_codecs/sloppy.py).

struct Codec {
  const tables::Charmap* map = nullptr;
  std::unordered_map<char32_t, unsigned char> encode;  // non-ASCII characters (and 0x1A's)
};

const std::vector<Codec>& codecs() {
  static const std::vector<Codec> all = [] {
    std::vector<Codec> v(tables::kCharmapCount);
    for (size_t e = 0; e < tables::kCharmapCount; ++e) {
      v[e].map = &tables::kCharmaps[e];
      for (int b = 0; b < 128; ++b)
        v[e].encode[v[e].map->high[b]] = static_cast<unsigned char>(0x80 + b);
      v[e].encode[v[e].map->sloppy ? 0xFFFD : 0x1A] = 0x1A;
    }
    return v;
  }();
  return all;
}

const Codec& codec_named(const char* name) {
  for (const Codec& c : codecs())
    if (std::strcmp(c.map->name, name) == 0) return c;
  return codecs().front();
}

// chardata.possible_encoding: every character is one this encoding can produce.
bool possible_encoding(std::u32string_view text, const Codec& codec) {
  for (char32_t c : text)
    if (!(c < 0x80 && c != 0x1A) && codec.encode.count(c) == 0) return false;
  return true;
}

Bytes encode(std::u32string_view text, const Codec& codec) {
  Bytes out;
  out.reserve(text.size());
  for (char32_t c : text) out.push_back(c < 0x80 && c != 0x1A ? char(c) : char(codec.encode.at(c)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Byte-level regexes of chardata.py and fixes.py: each alternative is a fixed-length sequence of
// byte sets, tried in order at each position (leftmost match, first alternative wins).

using ByteSet = std::bitset<256>;
using BytePattern = std::vector<ByteSet>;

ByteSet byte_set(std::initializer_list<std::pair<int, int>> ranges) {
  ByteSet s;
  for (auto [a, b] : ranges)
    for (int c = a; c <= b; ++c) s.set(static_cast<size_t>(c));
  return s;
}
ByteSet byte_one(int b) { return byte_set({{b, b}}); }

size_t match_bytes(const std::vector<BytePattern>& alternatives, const Bytes& s, size_t i) {
  for (const BytePattern& p : alternatives) {
    if (i + p.size() > s.size()) continue;
    size_t k = 0;
    while (k < p.size() && p[k].test(static_cast<unsigned char>(s[i + k]))) ++k;
    if (k == p.size()) return p.size();
  }
  return 0;
}

// chardata.ALTERED_UTF8_RE: UTF-8 sequences whose byte 0xA0 became an ASCII space.
const std::vector<BytePattern>& altered_utf8() {
  static const std::vector<BytePattern> p = [] {
    const ByteSet space = byte_one(' ');
    const ByteSet cont = byte_set({{0x80, 0xBF}});
    const ByteSet cont_no_85_a0 = byte_set({{0x80, 0x84}, {0x86, 0x9F}, {0xA1, 0xBF}});
    return std::vector<BytePattern>{
        {byte_set({{0xC2, 0xC3}, {0xC5, 0xC5}, {0xCE, 0xCE}, {0xD0, 0xD0}, {0xD9, 0xD9}}), space},
        {byte_set({{0xE2, 0xE3}}), space, cont_no_85_a0},
        {byte_set({{0xE0, 0xE3}}), cont_no_85_a0, space},
        {byte_one(0xF0), space, cont, cont},
        {byte_one(0xF0), cont, space, cont},
        {byte_one(0xF0), cont, cont, space},
    };
  }();
  return p;
}

// chardata.LOSSY_UTF8_RE: UTF-8 sequences where bytes were lost (0x1A = was U+FFFD, or '?').
const std::vector<BytePattern>& lossy_utf8() {
  static const std::vector<BytePattern> p = [] {
    const ByteSet sub = byte_one(0x1A);
    const ByteSet sub_q = byte_set({{0x1A, 0x1A}, {'?', '?'}});
    const ByteSet sub_cont = byte_set({{0x1A, 0x1A}, {0x80, 0xBF}});
    const ByteSet sub_q_cont = byte_set({{0x1A, 0x1A}, {'?', '?'}, {0x80, 0xBF}});
    const ByteSet ed = byte_one(0xED);
    const ByteSet lead3 = byte_set({{0xE0, 0xEF}}), lead4 = byte_set({{0xF0, 0xF4}});
    return std::vector<BytePattern>{
        {byte_set({{0xC2, 0xDF}}), sub},
        {byte_set({{0xC2, 0xC3}}), byte_one('?')},
        {ed, byte_set({{0xA0, 0xAF}}), sub_q, ed, byte_set({{0xB0, 0xBF}}), sub_q_cont},
        {ed, byte_set({{0xA0, 0xAF}}), sub_q_cont, ed, byte_set({{0xB0, 0xBF}}), sub_q},
        {lead3, sub_q, sub_cont},
        {lead3, sub_cont, sub_q},
        {lead4, sub_q, sub_cont, sub_cont},
        {lead4, sub_cont, sub_q, sub_cont},
        {lead4, sub_cont, sub_cont, sub_q},
        {sub},
    };
  }();
  return p;
}

bool search_bytes(const std::vector<BytePattern>& alternatives, const Bytes& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (match_bytes(alternatives, s, i) > 0) return true;
  return false;
}

// fixes.restore_byte_a0
Bytes restore_byte_a0(const Bytes& in) {
  // A_GRAVE_WORD_RE: b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 "
  static const char* const kKeep[] = {" ", "quele", "quela", "quilo", "s "};
  Bytes s;
  s.reserve(in.size() + 4);
  for (size_t i = 0; i < in.size(); ++i) {
    if (static_cast<unsigned char>(in[i]) == 0xC3 && i + 1 < in.size() && in[i + 1] == ' ') {
      bool keep = false;
      for (const char* k : kKeep) keep = keep || in.compare(i + 2, std::strlen(k), k) == 0;
      if (!keep) {
        s += "\xc3\xa0 ";
        ++i;
        continue;
      }
    }
    s.push_back(in[i]);
  }
  Bytes out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = match_bytes(altered_utf8(), s, i);
    if (n == 0) {
      out.push_back(s[i++]);
      continue;
    }
    for (size_t k = 0; k < n; ++k) out.push_back(s[i + k] == ' ' ? '\xa0' : s[i + k]);
    i += n;
  }
  return out;
}

// fixes.replace_lossy_sequences
Bytes replace_lossy_sequences(const Bytes& s) {
  Bytes out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = match_bytes(lossy_utf8(), s, i);
    if (n == 0) {
      out.push_back(s[i++]);
    } else {
      out += "\xef\xbf\xbd";
      i += n;
    }
  }
  return out;
}

// The "utf-8-variants" codec (bad_codecs/utf8_variants.py), strict: UTF-8, plus CESU-8 surrogate
// pairs and Java's 0xC0 0x80 for U+0000. Its regexes' `$` also matches before a final "\n", and
// the port keeps the two quirks that follow from it (noted below).
bool decode_utf8_variants(const Bytes& bytes, std::u32string& out) {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0, plain = 0;  // [plain, i) is ordinary UTF-8 not yet decoded
  auto flush = [&](size_t end) {
    return unicode::decode_utf8(std::string_view(bytes).substr(plain, end - plain), out);
  };
  while (i < n) {
    if (s[i] == 0xC0 && i + 1 < n && (s[i + 1] == 0x80 || (i + 2 == n && s[i + 1] == '\n'))) {
      // NULL_EXPR; "\xc0\n" at the very end also decodes to U+0000 (the `$` quirk).
      if (!flush(i)) return false;
      out.push_back(0);
      i += 2;
      plain = i;
    } else if (s[i] == 0xED && i + 1 < n && s[i + 1] >= 0xA0 && s[i + 1] <= 0xBF) {
      // CESU8_EXPR; the last byte may be a final "\n" (the `$` quirk). Otherwise a surrogate.
      if (!flush(i)) return false;
      auto cont = [&](size_t k) { return s[k] >= 0x80 && s[k] <= 0xBF; };
      bool cesu = n - i >= 6 && s[i + 1] <= 0xAF && cont(i + 2) && s[i + 3] == 0xED &&
                  s[i + 4] >= 0xB0 && s[i + 4] <= 0xBF &&
                  (cont(i + 5) || (i + 6 == n && s[i + 5] == '\n'));
      if (!cesu) return false;
      out.push_back(0x10000 + (char32_t(s[i + 1] & 0x0F) << 16) +
                    (char32_t(s[i + 2] & 0x3F) << 10) + (char32_t(s[i + 4] & 0x0F) << 6) +
                    (s[i + 5] & 0x3F));
      i += 6;
      plain = i;
    } else {
      ++i;
    }
  }
  return flush(n);
}

// ---------------------------------------------------------------------------------------------
// The UTF-8 detector (chardata.UTF8_DETECTOR_RE) and decode_inconsistent_utf8.

bool has(char32_t cp, uint32_t categories) { return (categories_of(cp) & categories) != 0; }

// Length of one UTF-8-looking unit at i ([first_of_2][cont] | [first_of_3][cont]{2} |
// [first_of_4][cont]{3}), or 0.
size_t utf8_unit_at(std::u32string_view text, size_t i) {
  if (i >= text.size()) return 0;
  size_t len = has(text[i], kFirstOf2)   ? 2
               : has(text[i], kFirstOf3) ? 3
               : has(text[i], kFirstOf4) ? 4
                                         : 0;
  if (len == 0 || i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k)
    if (!has(text[i + k], kContinuation)) return 0;
  return len;
}

// End of a UTF8_DETECTOR_RE match starting at i, or i if none.
size_t utf8_detector_match(std::u32string_view text, size_t i) {
  if (i > 0 && has(text[i - 1], kContinuationStrict)) return i;
  size_t j = i;
  while (size_t n = utf8_unit_at(text, j)) j += n;
  return j;
}

bool utf8_detector_search(std::u32string_view text) {
  for (size_t i = 0; i < text.size(); ++i)
    if (utf8_detector_match(text, i) > i) return true;
  return false;
}

// fixes.decode_inconsistent_utf8
std::u32string decode_inconsistent_utf8(std::u32string_view text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    size_t j = utf8_detector_match(text, i);
    if (j == i) {
      out.push_back(text[i++]);
      continue;
    }
    std::u32string_view sub = text.substr(i, j - i);
    if (sub.size() < text.size() && is_bad(sub))
      out += fix_encoding(sub);
    else
      out += sub;
    i = j;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The other fixers (fixes.py).

bool is_c1(char32_t c) { return c >= 0x80 && c <= 0x9F; }

std::u32string fix_c1_controls(std::u32string_view text) {
  const tables::Charmap& cp1252 = *codec_named("sloppy-windows-1252").map;
  std::u32string out(text);
  for (char32_t& c : out)
    if (is_c1(c)) c = cp1252.high[c - 0x80];
  return out;
}

// The whole of ftfy's _fix_encoding_one_step_and_explain.
std::u32string fix_encoding_one_step(std::u32string_view text) {
  std::u32string result(text);
  if (text.empty()) return result;
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; })) return result;
  if (!is_bad(text)) return result;

  bool latin1_possible = false;
  for (const Codec& codec : codecs()) {
    if (!possible_encoding(text, codec)) continue;
    std::string name = codec.map->name;
    if (name == "latin-1") latin1_possible = true;
    Bytes bytes = encode(text, codec);
    if (name != "macroman" && search_bytes(altered_utf8(), bytes)) bytes = restore_byte_a0(bytes);
    if (codec.map->sloppy) bytes = replace_lossy_sequences(bytes);
    std::u32string fixed;
    if (decode_utf8_variants(bytes, fixed)) return fixed;
  }

  if (utf8_detector_search(text)) {
    std::u32string fixed = decode_inconsistent_utf8(text);
    if (fixed != text) return fixed;
  }

  // ftfy checks for "windows-1252" among the possible encodings, a name its list never holds, so
  // Latin-1 text always goes on to the strict Latin-1 -> Windows-1252 re-decoding.
  if (latin1_possible) {
    const tables::Charmap& cp1252 = *codec_named("sloppy-windows-1252").map;
    const auto* holes_end = tables::kWindows1252Holes + tables::kWindows1252HoleCount;
    bool decodable = std::none_of(text.begin(), text.end(), [&](char32_t c) {
      return std::find(tables::kWindows1252Holes, holes_end, c) != holes_end;
    });
    if (decodable) {
      std::u32string fixed(text);
      for (char32_t& c : fixed)
        if (c >= 0x80) c = cp1252.high[c - 0x80];
      if (fixed != text) return fixed;
    }
  }

  if (std::any_of(text.begin(), text.end(), is_c1)) return fix_c1_controls(text);
  return result;
}

std::u32string fix_latin_ligatures(std::u32string_view text) {
  // chardata.LIGATURES
  static const std::unordered_map<char32_t, std::u32string> kLigatures = {
      {U'\u0132', U"IJ"},      {U'\u0133', U"ij"}, {U'\u0149', U"\u02BCn"}, {U'\u01F1', U"DZ"},
      {U'\u01F2', U"Dz"},      {U'\u01F3', U"dz"}, {U'\u01C4', U"D\u017D"}, {U'\u01C5', U"D\u017E"},
      {U'\u01C6', U"d\u017E"}, {U'\u01C7', U"LJ"}, {U'\u01C8', U"Lj"},      {U'\u01C9', U"lj"},
      {U'\u01CA', U"NJ"},      {U'\u01CB', U"Nj"}, {U'\u01CC', U"nj"},      {U'\uFB00', U"ff"},
      {U'\uFB01', U"fi"},      {U'\uFB02', U"fl"}, {U'\uFB03', U"ffi"},     {U'\uFB04', U"ffl"},
      {U'\uFB05', U"\u017Ft"}, {U'\uFB06', U"st"},
  };
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    auto it = c < 0x132 ? kLigatures.end() : kLigatures.find(c);
    if (it == kLigatures.end())
      out.push_back(c);
    else
      out += it->second;
  }
  return out;
}

std::u32string fix_character_width(std::u32string_view text) {
  static const std::unordered_map<char32_t, std::u32string> kWidth = [] {
    std::unordered_map<char32_t, std::u32string> m;
    for (size_t i = 0; i < tables::kWidthMapCount; ++i)
      m[tables::kWidthMap[i].cp] = from_utf8(tables::kWidthMap[i].utf8);
    return m;
  }();
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    auto it = c < 0x3000 ? kWidth.end() : kWidth.find(c);
    if (it == kWidth.end())
      out.push_back(c);
    else
      out += it->second;
  }
  return out;
}

std::u32string uncurl_quotes(std::u32string_view text) {
  std::u32string out(text);
  for (char32_t& c : out) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B))
      c = U'\'';
    else if (c >= 0x201C && c <= 0x201F)
      c = U'"';
  }
  return out;
}

std::u32string fix_line_breaks(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char32_t c = text[i];
    if (c == U'\r' && i + 1 < text.size() && text[i + 1] == U'\n') continue;  // "\r\n" -> "\n"
    out.push_back(c == U'\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? U'\n' : c);
  }
  return out;
}

// fixes.remove_terminal_escapes: ANSI_RE "\033\[((?:\d|;)*)([a-zA-Z])" removed.
std::u32string remove_terminal_escapes(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] == 0x1B && i + 1 < text.size() && text[i + 1] == U'[') {
      size_t j = i + 2;
      while (j < text.size() && (text[j] == U';' || unicode::is_decimal(text[j]))) ++j;
      if (j < text.size() && text[j] < 0x80 && unicode::is_letter(text[j])) {
        i = j + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

// chardata.CONTROL_CHARS
bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

std::u32string remove_control_chars(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text)
    if (!is_removed_control(c)) out.push_back(c);
  return out;
}

// One segment, fix_and_explain(): every fixer, then NFC, until nothing changes.
std::u32string fix_segment(std::u32string text, bool unescape) {
  while (true) {
    std::u32string orig = text;
    if (unescape) text = unescape_html(text);
    text = fix_encoding(text);
    text = fix_c1_controls(text);
    text = fix_latin_ligatures(text);
    text = fix_character_width(text);
    text = uncurl_quotes(text);
    text = fix_line_breaks(text);
    // fix_surrogates has nothing to do: UTF-32 text decoded from valid UTF-8 has no surrogates.
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    text = unicode::nfc(text);
    if (text == orig) return text;
  }
}

// html.unescape of a numeric reference "#..." (without '&' and ';'), as ftfy's _unescape_fixup
// uses it; false when html.unescape would not consume the whole reference.
bool numeric_reference(std::u32string_view ref, std::u32string& out) {
  bool hex = ref.size() >= 2 && (ref[0] == U'x' || ref[0] == U'X');
  std::u32string_view digits = hex ? ref.substr(1) : ref;
  uint64_t num = 0;
  for (char32_t c : digits) {
    int d;
    if (c >= U'0' && c <= U'9')
      d = int(c - U'0');
    else if (hex && (c | 0x20) >= U'a' && (c | 0x20) <= U'f')
      d = int((c | 0x20) - U'a' + 10);
    else
      return false;
    num = std::min<uint64_t>(num * (hex ? 16 : 10) + d, 0x7FFFFFFF);  // saturate: > 0x10FFFF
  }
  // html._invalid_charrefs, then surrogates / out of range, then html._invalid_codepoints.
  static const char32_t kCharrefs1252[32] = {
      0x20AC, 0x81,   0x201A, 0x192,  0x201E, 0x2026, 0x2020, 0x2021, 0x2C6,  0x2030, 0x160,
      0x2039, 0x152,  0x8D,   0x17D,  0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x2DC,  0x2122, 0x161,  0x203A, 0x153,  0x9D,   0x17E,  0x178};
  out.clear();
  if (num == 0) {
    out = U"\uFFFD";
  } else if (num == 0x0D) {
    out = U"\r";
  } else if (num >= 0x80 && num <= 0x9F) {
    out.push_back(kCharrefs1252[num - 0x80]);
  } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out = U"\uFFFD";
  } else if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
             num == 0x7F || (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE) {
    // an invalid code point: html.unescape drops it
  } else {
    out.push_back(char32_t(num));
  }
  return true;
}

const tables::Entity* find_entity(const std::string& name) {
  const tables::Entity* end = tables::kEntities + tables::kEntitiesCount;
  const tables::Entity* it = std::lower_bound(tables::kEntities, end, name,
                                              [](const tables::Entity& e, const std::string& n) {
                                                return std::strcmp(e.name, n.c_str()) < 0;
                                              });
  return it != end && name == it->name ? it : nullptr;
}

bool is_ascii_alnum(char32_t c) {
  return (c >= U'0' && c <= U'9') || ((c | 0x20) >= U'a' && (c | 0x20) <= U'z');
}

}  // namespace

bool is_bad(std::u32string_view text) {
  const auto& patterns = badness_patterns();
  for (size_t i = 0; i < text.size(); ++i)
    for (const Pattern& p : patterns)
      if (match_at(p, 0, text, i)) return true;
  return false;
}

std::u32string fix_encoding(std::u32string_view text) {
  std::u32string current(text);
  while (true) {
    std::u32string next = fix_encoding_one_step(current);
    if (next == current) return next;
    current = std::move(next);
  }
}

std::u32string unescape_html(std::u32string_view text) {
  // HTML_ENTITY_RE "&#?[0-9A-Za-z]{1,24};" with _unescape_fixup.
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] != U'&') {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i + 1;
    bool numeric = j < text.size() && text[j] == U'#';
    if (numeric) ++j;
    size_t k = j;
    while (k < text.size() && k - j < 25 && is_ascii_alnum(text[k])) ++k;
    if (k == j || k - j > 24 || k >= text.size() || text[k] != U';') {
      out.push_back(text[i++]);
      continue;
    }
    std::u32string_view ref = text.substr(j, k - j);
    std::u32string whole(text.substr(i, k + 1 - i));
    std::u32string replacement = whole;
    if (numeric) {
      std::u32string decoded;
      if (numeric_reference(ref, decoded) && decoded.find(U';') == std::u32string::npos)
        replacement = decoded;
    } else {
      std::string name = unicode::encode_utf8(ref) + ";";
      if (const tables::Entity* e = find_entity(name)) replacement = from_utf8(e->utf8);
    }
    out += replacement;
    i = k + 1;
  }
  return out;
}

std::u32string fix_text(std::u32string_view text) {
  constexpr size_t kMaxDecodeLength = 1000000;
  bool unescape = true;  // unescape_html="auto": off from the first segment containing '<' on
  std::u32string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find(U'\n', pos);
    size_t end = nl == std::u32string_view::npos ? text.size() : nl + 1;
    if (end - pos > kMaxDecodeLength) end = pos + kMaxDecodeLength;
    std::u32string_view segment = text.substr(pos, end - pos);
    if (unescape && segment.find(U'<') != std::u32string_view::npos) unescape = false;
    out += fix_segment(std::u32string(segment), unescape);
    pos = end;
  }
  return out;
}

}  // namespace studio::ftfy
