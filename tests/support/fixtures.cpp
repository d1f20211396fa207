#include "tests/support/fixtures.h"

#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

namespace studio::test {

std::filesystem::path fixtures_root() {
  const char* env = std::getenv("STUDIO_FIXTURES");
  std::filesystem::path root = env && *env ? env : STUDIO_DEFAULT_FIXTURES;
  if (!std::filesystem::is_directory(root))
    FAIL("fixture root " << root << " does not exist: set STUDIO_FIXTURES");
  return root;
}

std::filesystem::path data_root() {
  const char* env = std::getenv("STUDIO_DATA");
  std::filesystem::path root = env && *env ? env : STUDIO_DEFAULT_DATA;
  if (!std::filesystem::is_directory(root))
    FAIL("data root " << root << " does not exist: set STUDIO_DATA");
  return root;
}

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(STUDIO_BINARY_DIR) / "test-output" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::filesystem::path source_dir() { return STUDIO_SOURCE_DIR; }

std::filesystem::path studio_exe() {
  return std::filesystem::path(STUDIO_BINARY_DIR) / "pipeline" / "studio";
}

void copy_tree_writable(const std::filesystem::path& from, const std::filesystem::path& to) {
  namespace fs = std::filesystem;
  fs::create_directories(to);
  for (const auto& e : fs::recursive_directory_iterator(from)) {
    const fs::path target = to / fs::relative(e.path(), from);
    if (e.is_directory()) {
      fs::create_directories(target);
    } else {
      fs::copy_file(e.path(), target, fs::copy_options::overwrite_existing);
      fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write |
                                  fs::perms::group_read | fs::perms::others_read);
    }
  }
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) FAIL("cannot open " << path);
  return nlohmann::json::parse(in);
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

double max_abs(const at::Tensor& a) { return a.to(at::kCPU, at::kDouble).abs().max().item<double>(); }

}  // namespace studio::test
