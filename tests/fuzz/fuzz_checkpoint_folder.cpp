// libFuzzer target: the checkpoint-folder inspection (core/checkpoint_layout.cpp: layout
// recognition from config.json, shard index parsing, weight-file resolution, pipeline components
// from model_index.json) on arbitrary bytes split at NUL bytes (JSON text cannot hold a raw NUL):
//   part 0: config.json, part 1 (optional): model.safetensors.index.json,
//   part 2 (optional): model_index.json; with it the folder is a pipeline and parts 0 and 1 go
//   into its unet/ component folder.
// A small valid shard, model-00001-of-00001.safetensors, sits beside config.json so that an index
// naming it gets past the missing-shard check. Each input must be inspected or refused with a
// studio::Error; another exception (e.g. nlohmann's type_error), a crash, a sanitizer report, a
// hang or > 2 GB RSS is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/checkpoint_layout.h"
#include "core/error.h"
#include "tests/fuzz/fuzz_temp.h"

namespace fs = std::filesystem;

namespace {

// {"w": F32 [1]} with a 4-byte data area: a shard the index may name.
std::string tiny_shard() {
  const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + std::string(4, '\0');
}

void write(const fs::path& p, const std::string& bytes) {
  studio::fuzz::temp_dir();  // the folder exists
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  const auto& tmp = studio::fuzz::temp_dir();
  const fs::path rel = p.lexically_relative(tmp.path());
  tmp.write(rel.string(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  studio::fuzz::temp_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = studio::fuzz::split_at_nul(data, size, 3);
  const auto& tmp = studio::fuzz::temp_dir();
  tmp.clear();
  const fs::path root = tmp.path() / "model";
  const fs::path dir = parts.size() > 2 ? root / "unet" : root;
  write(dir / "config.json", parts[0]);
  if (parts.size() > 1) write(dir / "model.safetensors.index.json", parts[1]);
  if (parts.size() > 2) write(root / "model_index.json", parts[2]);
  write(dir / "model-00001-of-00001.safetensors", tiny_shard());
  try {
    const studio::CheckpointInfo info = studio::inspect_checkpoint(root);
    if (info.path != root || std::strlen(studio::checkpoint_kind_name(info.kind)) == 0)
      std::abort();
    for (const auto& c : info.components)
      for (const auto& f : c.weight_files)
        if (f.parent_path() != c.dir) std::abort();  // shards sit beside their index
  } catch (const studio::Error&) {
  }
  return 0;
}
