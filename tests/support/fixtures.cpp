#include "tests/support/fixtures.h"

#include <ATen/ATen.h>

#include <unistd.h>
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
  // Per process: CTest runs test cases in parallel processes, and two cases may pick one name.
  namespace fs = std::filesystem;
  const fs::path base = fs::path(STUDIO_BINARY_DIR) / "test-output";
  // Folders of earlier runs whose process is gone are removed, so outputs do not pile up.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(base, ec)) {
    const std::string n = e.path().filename().string();
    const auto dash = n.rfind('-');
    if (n.compare(0, dash, name) != 0 || dash == std::string::npos) continue;
    const std::string pid = n.substr(dash + 1);
    if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos &&
        !fs::exists("/proc/" + pid))
      fs::remove_all(e.path(), ec);
  }
  auto dir = base / (name + "-" + std::to_string(::getpid()));
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

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::filesystem::path& path, const std::string& content) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
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

double max_abs(const at::Tensor& a) {
  return a.to(at::kCPU, at::kDouble).abs().max().item<double>();
}

}  // namespace studio::test
