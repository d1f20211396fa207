// Every fixture model folder is recognised and opened, and agrees with its build record
// (`<name>-ref/build_*.json`: file sizes and SHA-256, parameter counts and shapes) and with
// Point-E's per-folder state_dict_shapes. Data-driven over $STUDIO_FIXTURES.
#include <catch2/catch.hpp>
#include <map>

#include "core/checkpoint.h"
#include "core/hash.h"
#include "tests/support/fixtures.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {
std::vector<fs::path> build_records(const fs::path& root) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(root)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    if (name.size() < 5 || name.substr(name.size() - 4) != "-ref") continue;
    for (const auto& f : fs::directory_iterator(e.path())) {
      const std::string fn = f.path().filename().string();
      if (fn.rfind("build_", 0) == 0 && f.path().extension() == ".json") out.push_back(f.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Elements of the checkpoint's nn.Parameters: every tensor except the persistent buffers the
// references store beside them (AnimateDiff's sinusoidal `pos_embed.pe` tables), which the build
// records' param_count (sum of p.numel() over parameters()) does not count.
uint64_t total_params(const CheckpointInfo& info) {
  uint64_t n = 0;
  for (const auto& c : info.components) {
    if (c.weight_files.empty()) continue;
    const StateDict sd = StateDict::open(c.weight_files);
    for (const auto& name : sd.names()) {
      const bool buffer = name.size() > 3 && name.compare(name.size() - 3, 3, ".pe") == 0;
      if (!buffer) n += sd.info(name).numel();
    }
  }
  for (const auto& child : info.children) n += total_params(child);
  return n;
}
}  // namespace

TEST_CASE("fixture checkpoints match their build records", "[parity][checkpoint]") {
  const fs::path root = test::fixtures_root();
  const auto records = build_records(root);
  REQUIRE(!records.empty());
  for (const auto& record_path : records) {
    const std::string ref = record_path.parent_path().filename().string();
    const fs::path model = root / ref.substr(0, ref.size() - 4);
    DYNAMIC_SECTION(record_path.filename().string()) {
      const auto record = test::read_json(record_path);
      REQUIRE(fs::is_directory(model));
      for (auto it = record["files"].begin(); it != record["files"].end(); ++it) {
        INFO(it.key());
        const fs::path f = model / it.key();
        REQUIRE(fs::is_regular_file(f));
        CHECK(fs::file_size(f) == it.value()["bytes"].get<uint64_t>());
        CHECK(sha256_file_hex(f) == it.value()["sha256"].get<std::string>());
      }
      const CheckpointInfo info = inspect_checkpoint(model);
      if (record.contains("param_counts")) {
        for (auto it = record["param_counts"].begin(); it != record["param_counts"].end(); ++it) {
          INFO(it.key());
          const auto& c = find_component(info, it.key());
          CHECK(StateDict::open(c.weight_files).parameter_count() == it.value().get<uint64_t>());
        }
      }
      if (record.contains("param_count"))
        CHECK(total_params(info) == record["param_count"].get<uint64_t>());
      if (record.contains("parameter_shapes")) {
        const StateDict sd = StateDict::open(info.components.at(0).weight_files);
        CHECK(sd.size() == record["parameter_shapes"].size());
        for (auto it = record["parameter_shapes"].begin(); it != record["parameter_shapes"].end();
             ++it) {
          INFO(it.key());
          REQUIRE(sd.contains(it.key()));
          CHECK(sd.info(it.key()).shape == it.value().get<std::vector<int64_t>>());
        }
      }
    }
  }
}

TEST_CASE("Point-E fixture folders match their state_dict_shapes", "[parity][checkpoint]") {
  const fs::path root = test::fixtures_root();
  int folders = 0;
  for (const auto& top : fs::directory_iterator(root)) {
    if (!top.is_directory()) continue;
    for (const auto& e : fs::directory_iterator(top.path())) {
      const fs::path cfg = e.path() / "config.json";
      if (!e.is_directory() || !fs::is_regular_file(cfg)) continue;
      const auto j = test::read_json(cfg);
      if (!j.contains("state_dict_shapes")) continue;
      ++folders;
      DYNAMIC_SECTION(e.path().string()) {
        const CheckpointInfo info = inspect_checkpoint(e.path());
        CHECK(info.kind == CheckpointKind::PointEModel);
        const StateDict sd = StateDict::open(info.components.at(0).weight_files);
        for (auto it = j["state_dict_shapes"].begin(); it != j["state_dict_shapes"].end(); ++it) {
          INFO(it.key());
          REQUIRE(sd.contains(it.key()));
          CHECK(sd.info(it.key()).shape == it.value().get<std::vector<int64_t>>());
        }
        CHECK(sd.size() == j["state_dict_shapes"].size());
      }
    }
  }
  CHECK(folders > 0);
}
