// Layout of the generated ftfy data (ftfy_tables.cpp, made by gen_unicode_tables.py).
// Internal to text/: use the functions in text/ftfy.h.
#pragma once

#include <cstddef>

namespace studio::ftfy::tables {

struct Charmap {
  const char* name;
  bool sloppy;         // "sloppy-" codec: byte 0x1A stands for U+FFFD
  char32_t high[128];  // bytes 0x80..0xFF
};
struct CodepointString {
  char32_t cp;
  const char* utf8;
};
struct Entity {
  const char* name;  // without '&', with the trailing ';'
  const char* utf8;
};

extern const Charmap kCharmaps[];
extern const size_t kCharmapCount;
extern const unsigned char kWindows1252Holes[];
extern const size_t kWindows1252HoleCount;
extern const CodepointString kWidthMap[];
extern const size_t kWidthMapCount;
extern const Entity kEntities[];
extern const size_t kEntitiesCount;

}  // namespace studio::ftfy::tables
