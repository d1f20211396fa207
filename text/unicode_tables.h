// Layout of the generated Unicode tables (unicode_tables.cpp, made by gen_unicode_tables.py).
// Internal to text/: use the functions in text/unicode.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace studio::unicode::tables {

struct Range {
  char32_t first, last;
};
struct ValueRange {
  char32_t first, last;
  uint8_t value;
};
struct LowerRun {  // every stride-th code point of [first, last] lowercases to itself + delta
  char32_t first, last;
  uint8_t stride;
  int32_t delta;
};
struct SpecialLower {
  char32_t cp;
  const char* utf8;
};
struct Decomposition {
  char32_t cp, first, second;  // second = 0: singleton
  bool composes;               // a primary composite: NFC recomposes first + second into cp
};

extern const ValueRange kGeneralClass[];
extern const size_t kGeneralClassCount;
extern const Range kSpace[];
extern const size_t kSpaceCount;
extern const LowerRun kLower[];
extern const size_t kLowerCount;
extern const SpecialLower kSpecialLower[];
extern const size_t kSpecialLowerCount;
extern const ValueRange kSigmaContext[];
extern const size_t kSigmaContextCount;
extern const ValueRange kCombiningClass[];
extern const size_t kCombiningClassCount;
extern const Decomposition kDecomposition[];
extern const size_t kDecompositionCount;

}  // namespace studio::unicode::tables
