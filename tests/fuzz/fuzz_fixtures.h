// Where the fuzz targets find the fixture tokenizers: $STUDIO_FIXTURES, else ../shared/fixtures
// beside the source tree (as the test suite finds them).
#pragma once

#include <cstdlib>
#include <filesystem>

namespace studio::fuzz {

inline std::filesystem::path fixture(const char* name) {
  const char* root = std::getenv("STUDIO_FIXTURES");
  return std::filesystem::path(root && *root ? root : STUDIO_FUZZ_DEFAULT_FIXTURES) / name;
}

}  // namespace studio::fuzz
