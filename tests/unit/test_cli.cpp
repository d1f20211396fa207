// The studio executable: help, version, exit codes, and clear errors for corrupt checkpoints.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "core/tensor_io.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio::test;
namespace fs = std::filesystem;

TEST_CASE("studio --help and --version", "[unit][cli]") {
  auto help = run_studio("--help");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.output, Catch::Contains("models"));
  auto version = run_studio("--version");
  CHECK(version.exit_code == 0);
  CHECK_THAT(version.output, Catch::Contains("studio 0.") && Catch::Contains("libtorch"));
  auto bad = run_studio("no-such-command");
  CHECK(bad.exit_code == 2);
}

TEST_CASE("studio models inspect reports corrupt files clearly", "[unit][cli]") {
  const auto dir = temp_dir("cli_corrupt");
  const fs::path good = dir / "good.safetensors";
  studio::save_safetensors(good, {{"w", at::randn({16, 16})}, {"b", at::randn({16})}});
  const std::string bytes = read_file(good);

  auto ok = run_studio("models inspect --json " + shell_quote(good.string()));
  REQUIRE(ok.exit_code == 0);
  const auto j = nlohmann::json::parse(ok.output);
  CHECK(j["kind"] == "safetensors file");
  CHECK(j["parameters"] == 16 * 16 + 16);

  write_file(dir / "truncated.safetensors", bytes.substr(0, bytes.size() / 2));
  std::string lying = bytes;
  const auto pos = lying.find("[0,64]");  // "b" occupies bytes [0, 64): claim more
  REQUIRE(pos != std::string::npos);
  lying.replace(pos, 6, "[0,96]");
  write_file(dir / "lying.safetensors", lying);
  std::string huge = bytes;
  for (int i = 0; i < 8; ++i) huge[i] = static_cast<char>(0x7f);
  write_file(dir / "huge_header.safetensors", huge);
  write_file(dir / "empty.safetensors", "");

  for (const char* name : {"truncated", "lying", "huge_header", "empty"}) {
    DYNAMIC_SECTION(name) {
      const fs::path f = dir / (std::string(name) + ".safetensors");
      auto r = run_studio("models inspect " + shell_quote(f.string()));
      CHECK(r.exit_code == 1);
      CHECK_THAT(r.output, Catch::Contains(f.string()) && Catch::Contains("format error"));
    }
  }
  auto missing = run_studio("models inspect " + shell_quote((dir / "nope").string()));
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Catch::Contains("no such file"));
}
