// `studio models inspect --json` on every model folder of the fixture root: recognised, and the
// parameter totals agree with the library's own count.
#include <catch2/catch.hpp>

#include "core/checkpoint.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {
// Model folders hold model files somewhere inside; other fixture folders (e.g. clip-tokenizer's
// test cases) hold only expected outputs.
bool holds_model_files(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n == "config.json" || n == "model_index.json" || n == "scheduler_config.json" ||
        n == "tokenizer.json" || n == "vocab.json" || e.path().extension() == ".safetensors")
      return true;
  }
  return false;
}
}  // namespace

TEST_CASE("studio models inspect recognises every fixture model folder", "[parity][cli]") {
  const fs::path root = test::fixtures_root();
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && !(name.size() > 4 && name.substr(name.size() - 4) == "-ref") &&
        holds_model_files(e.path()))
      folders.push_back(e.path());
  }
  std::sort(folders.begin(), folders.end());
  REQUIRE(!folders.empty());
  for (const auto& f : folders) {
    DYNAMIC_SECTION(f.filename().string()) {
      auto r = test::run_studio("models inspect --json " + test::shell_quote(f.string()));
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      const auto j = nlohmann::json::parse(r.output);
      CHECK(j["kind"] == checkpoint_kind_name(inspect_checkpoint(f).kind));
      CHECK(!j["kind"].get<std::string>().empty());
      auto text = test::run_studio("models inspect " + test::shell_quote(f.string()));
      CHECK(text.exit_code == 0);
      CHECK_THAT(text.output, Catch::Contains("total parameters"));
    }
  }
}
