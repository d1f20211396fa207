// Unicode helpers: strict UTF-8, category lookups, Python's str.lower() and NFC over the
// generated tables in unicode_tables.cpp.
#include "text/unicode.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "text/unicode_tables.h"

namespace studio::unicode {
namespace {

namespace t = tables;

// The entry of a sorted range table containing cp, or nullptr.
template <typename R>
const R* find_range(const R* table, size_t count, char32_t cp) {
  const R* end = table + count;
  const R* it =
      std::upper_bound(table, end, cp, [](char32_t c, const R& r) { return c < r.first; });
  if (it == table) return nullptr;
  --it;
  return cp <= it->last ? it : nullptr;
}

// Bits of kGeneralClass (see gen_unicode_tables.py).
constexpr uint8_t kLetterBit = 1, kNumberBit = 2, kDecimalBit = 4, kWordBit = 8, kGapBit = 16;

uint8_t char_class(char32_t cp) {
  const auto* r = find_range(t::kGeneralClass, t::kGeneralClassCount, cp);
  return r ? r->value : 0;
}

// Hangul syllable composition constants (Unicode chapter 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

const t::Decomposition* find_decomposition(char32_t cp) {
  const t::Decomposition* end = t::kDecomposition + t::kDecompositionCount;
  const t::Decomposition* it = std::lower_bound(
      t::kDecomposition, end, cp, [](const t::Decomposition& d, char32_t c) { return d.cp < c; });
  return it != end && it->cp == cp ? it : nullptr;
}

void decompose(char32_t cp, std::u32string& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const t::Decomposition* d = find_decomposition(cp);
  if (d == nullptr) {
    out.push_back(cp);
    return;
  }
  decompose(d->first, out);
  if (d->second != 0) decompose(d->second, out);
}

const std::unordered_map<uint64_t, char32_t>& composition_pairs() {
  static const std::unordered_map<uint64_t, char32_t> pairs = [] {
    std::unordered_map<uint64_t, char32_t> m;
    for (size_t i = 0; i < t::kDecompositionCount; ++i) {
      const t::Decomposition& d = t::kDecomposition[i];
      if (d.composes) m.emplace((uint64_t(d.first) << 21) | d.second, d.cp);
    }
    return m;
  }();
  return pairs;
}

// The primary composite of a + b, or 0.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& pairs = composition_pairs();
  auto it = pairs.find((uint64_t(a) << 21) | b);
  return it == pairs.end() ? 0 : it->second;
}

}  // namespace

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0; *prefix gets the length of the longest
// prefix of a valid sequence there (the "maximal subpart" that one U+FFFD replaces).
size_t utf8_sequence(const unsigned char* s, size_t n, size_t i, size_t* prefix) {
  unsigned char b = s[i];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b < 0x80) {
    *prefix = 1;
    return 1;
  } else if (b >= 0xC2 && b <= 0xDF) {
    need = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    *prefix = 1;
    return 0;
  }
  size_t k = 1;
  for (; k < need && i + k < n; ++k) {
    unsigned char c = s[i + k];
    bool ok = k == 1 ? (c >= lo && c <= hi) : (c & 0xC0) == 0x80;
    if (!ok) break;
  }
  *prefix = k;
  return k == need ? need : 0;
}

char32_t utf8_value(const unsigned char* s, size_t len) {
  if (len == 1) return s[0];
  char32_t cp = s[0] & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (s[k] & 0x3F);
  return cp;
}

}  // namespace

std::u32string decode_utf8_lossy(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t i = 0; i < bytes.size();) {
    size_t prefix = 1;
    size_t len = utf8_sequence(s, bytes.size(), i, &prefix);
    if (len == 0) {
      out.push_back(0xFFFD);
      i += prefix;
    } else {
      out.push_back(utf8_value(s + i, len));
      i += len;
    }
  }
  return out;
}

bool decode_utf8(std::string_view bytes, std::u32string& out, size_t* error_offset) {
  out.reserve(out.size() + bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t i = 0; i < bytes.size();) {
    size_t prefix = 1;
    size_t len = utf8_sequence(s, bytes.size(), i, &prefix);
    if (len == 0) {
      if (error_offset) *error_offset = i;
      return false;
    }
    out.push_back(utf8_value(s + i, len));
    i += len;
  }
  return true;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return (char_class(cp) & kLetterBit) != 0;
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return (char_class(cp) & kNumberBit) != 0;
}

bool is_ignorecase_class_gap(char32_t cp) { return (char_class(cp) & kGapBit) != 0; }

bool is_decimal(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return (char_class(cp) & kDecimalBit) != 0;
}

bool is_space(char32_t cp) { return find_range(t::kSpace, t::kSpaceCount, cp) != nullptr; }

bool is_word(char32_t cp) { return (char_class(cp) & kWordBit) != 0; }

std::u32string to_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  auto sigma_context = [](char32_t c) {
    const auto* r = find_range(t::kSigmaContext, t::kSigmaContextCount, c);
    return r ? r->value : 0;  // 1: case-ignorable, 2: cased
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char32_t cp = text[i];
    if (cp < 0x80) {
      out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
      continue;
    }
    if (cp == 0x3A3) {
      // Final sigma: preceded by a cased letter and not followed by one (case-ignorable code
      // points skipped on both sides), as CPython's handle_capital_sigma decides it.
      size_t j = i;
      int before = 0;
      while (j > 0 && (before = sigma_context(text[j - 1])) == 1) --j;
      bool final_sigma = j > 0 && before == 2;
      if (final_sigma) {
        size_t k = i + 1;
        while (k < text.size() && sigma_context(text[k]) == 1) ++k;
        final_sigma = k == text.size() || sigma_context(text[k]) != 2;
      }
      out.push_back(final_sigma ? 0x3C2 : 0x3C3);
      continue;
    }
    bool special = false;
    for (size_t s = 0; s < t::kSpecialLowerCount; ++s) {
      if (t::kSpecialLower[s].cp == cp) {
        decode_utf8(t::kSpecialLower[s].utf8, out);
        special = true;
        break;
      }
    }
    if (special) continue;
    const auto* r = find_range(t::kLower, t::kLowerCount, cp);
    if (r && (cp - r->first) % r->stride == 0) cp = char32_t(int32_t(cp) + r->delta);
    out.push_back(cp);
  }
  return out;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* r = find_range(t::kCombiningClass, t::kCombiningClassCount, cp);
  return r ? r->value : 0;
}

std::u32string nfc(std::u32string_view text) {
  // Below U+0300 every code point is stable under NFC.
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x300; }))
    return std::u32string(text);

  // Full canonical decomposition, then canonical ordering of each run of non-starters.
  std::u32string d;
  d.reserve(text.size() + 8);
  for (char32_t cp : text) decompose(cp, d);
  std::vector<uint8_t> ccc(d.size());
  for (size_t i = 0; i < d.size(); ++i) ccc[i] = combining_class(d[i]);
  for (size_t i = 0; i < d.size();) {
    if (ccc[i] == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && ccc[j] != 0) ++j;
    if (j - i > 1) {
      std::vector<std::pair<uint8_t, char32_t>> run;
      for (size_t k = i; k < j; ++k) run.emplace_back(ccc[k], d[k]);
      std::stable_sort(run.begin(), run.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t k = i; k < j; ++k) {
        ccc[k] = run[k - i].first;
        d[k] = run[k - i].second;
      }
    }
    i = j;
  }

  // Canonical composition.
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;  // index in out of the last starter
  int last_ccc = -1;                      // ccc of the last code point appended after it
  for (size_t i = 0; i < d.size(); ++i) {
    char32_t cp = d[i];
    int cc = ccc[i];
    if (starter != std::u32string::npos) {
      bool adjacent = starter + 1 == out.size();
      bool unblocked = adjacent || (last_ccc != 0 && last_ccc < cc);
      if (unblocked) {
        char32_t composite = compose_pair(out[starter], cp);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cc == 0) starter = out.size();
    last_ccc = cc;
    out.push_back(cp);
  }
  return out;
}

}  // namespace studio::unicode
