// `studio models init`: a random-weight diffusers pipeline built from configs/starter-tiny, which
// `models inspect` recognises, `studio image` runs on, a second init does not overwrite, and the
// same seed reproduces byte for byte. Also the committed starter tokenizer.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>

#include "core/json_file.h"
#include "image/unet.h"
#include "image/vae.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"

using namespace studio::test;
namespace fs = std::filesystem;

namespace {

int64_t tensor_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  for (const auto& b : m.buffers()) n += b.numel();
  return n;
}

// Parameters (and buffers) of each starter-tiny component built in process from its config.
std::map<std::string, int64_t> expected_counts(const fs::path& arch) {
  auto cfg = [&](const char* c) { return studio::read_json_file(arch / c / "config.json"); };
  std::map<std::string, int64_t> n;
  n["unet"] = tensor_count(*studio::image::UNet2DConditionModel(cfg("unet"), "unet"));
  n["vae"] = tensor_count(*studio::image::AutoencoderKL(cfg("vae"), "vae"));
  n["text_encoder"] = tensor_count(
      *studio::ClipTextModel(studio::ClipTextConfig::from_json(cfg("text_encoder"), "te")));
  return n;
}

std::vector<fs::path> weight_files(const fs::path& model) {
  return {model / "unet" / "diffusion_pytorch_model.safetensors",
          model / "vae" / "diffusion_pytorch_model.safetensors",
          model / "text_encoder" / "model.safetensors"};
}

}  // namespace

TEST_CASE("the committed starter tokenizer loads and encodes prompts", "[unit][models]") {
  const auto tok = studio::ClipTokenizer::load(source_dir() / "configs/starter-tiny/tokenizer");
  const auto te =
      studio::read_json_file(source_dir() / "configs/starter-tiny/text_encoder/config.json");
  CHECK(tok.vocab_size() == te["vocab_size"].get<size_t>());
  CHECK(tok.eos_id() == te["eos_token_id"].get<int64_t>());
  CHECK(tok.bos_id() == te["bos_token_id"].get<int64_t>());
  CHECK(tok.model_max_length() == 77);
  const auto enc = tok.encode_padded("a red ceramic mug on a wooden table, studio lighting");
  REQUIRE(enc.input_ids.size() == 77);
  CHECK(enc.input_ids.front() == tok.bos_id());
  CHECK_FALSE(enc.truncated);
  // Merges apply ("the" is one token) and unseen words fall back to byte-level symbols.
  CHECK(tok.tokenize("the") == std::vector<std::string>{"the</w>"});
  const auto ids = tok.encode("zygote \xc3\xa9t\xc3\xa9 42!");
  CHECK(!ids.empty());
  CHECK_THAT(tok.decode(ids), Catch::StartsWith("zygote \xc3\xa9t\xc3\xa9 4"));
}

TEST_CASE("studio models init writes a random-weight pipeline that studio runs",
          "[unit][models]") {
  const fs::path dir = temp_dir("models_init");
  const fs::path arch = source_dir() / "configs" / "starter-tiny";
  const fs::path model = dir / "starter";
  const std::string init_args =
      "models init --arch " + shell_quote(arch.string()) + " --seed 7 --out ";

  auto r = run_studio(init_args + shell_quote(model.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("noise"));
  for (const char* f : {"model_index.json", "README.md", "unet/config.json", "vae/config.json",
                        "text_encoder/config.json", "scheduler/scheduler_config.json",
                        "tokenizer/vocab.json", "tokenizer/merges.txt",
                        "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json"})
    CHECK(fs::is_regular_file(model / f));
  for (const auto& f : weight_files(model)) CHECK(fs::is_regular_file(f));
  CHECK_THAT(read_file(model / "README.md"), Catch::Contains("noise"));
  // No temporary folder is left beside the output.
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename() == "starter");

  SECTION("models inspect recognises it with the modules' parameter counts") {
    auto ins = run_studio("models inspect --json " + shell_quote(model.string()));
    INFO(ins.output);
    REQUIRE(ins.exit_code == 0);
    const auto j = nlohmann::json::parse(ins.output);
    CHECK(j["kind"] == "diffusers pipeline");
    const auto expected = expected_counts(arch);
    int found = 0;
    for (const auto& c : j["components"]) {
      const std::string name = c["name"].get<std::string>();
      auto it = expected.find(name);
      if (it == expected.end()) continue;
      ++found;
      CHECK(c["parameters"].get<int64_t>() == it->second);
      CHECK(c["dtypes"].contains("F32"));
    }
    CHECK(found == 3);
  }

  SECTION("studio image runs on it") {
    const fs::path png = dir / "out.png";
    auto img = run_studio("image --model " + shell_quote(model.string()) +
                          " --prompt 'a red mug' --seed 1 --steps 2 --size 64 --device cpu --out " +
                          shell_quote(png.string()));
    INFO(img.output);
    REQUIRE(img.exit_code == 0);
    const std::string bytes = read_file(png);
    REQUIRE(bytes.size() > 8);
    CHECK(bytes.substr(1, 3) == "PNG");
    CHECK(fs::is_regular_file(dir / "out.png.json"));
  }

  SECTION("a second init without --force is refused and leaves the folder intact") {
    const std::string before = read_file(model / "unet/diffusion_pytorch_model.safetensors");
    auto again = run_studio("models init --arch " + shell_quote(arch.string()) +
                            " --seed 8 --out " + shell_quote(model.string()));
    CHECK(again.exit_code == 1);
    CHECK_THAT(again.output, Catch::Contains("already exists") && Catch::Contains("--force"));
    CHECK(read_file(model / "unet/diffusion_pytorch_model.safetensors") == before);
    CHECK(fs::is_regular_file(model / "model_index.json"));

    auto forced = run_studio("models init --arch " + shell_quote(arch.string()) +
                             " --seed 8 --force --out " + shell_quote(model.string()));
    INFO(forced.output);
    CHECK(forced.exit_code == 0);
    CHECK(read_file(model / "unet/diffusion_pytorch_model.safetensors") != before);
  }

  SECTION("the same seed gives byte-identical weights") {
    const fs::path twin = dir / "twin";
    auto r2 = run_studio(init_args + shell_quote(twin.string()));
    INFO(r2.output);
    REQUIRE(r2.exit_code == 0);
    const auto a = weight_files(model), b = weight_files(twin);
    for (size_t i = 0; i < a.size(); ++i) {
      INFO(a[i].string());
      CHECK(read_file(a[i]) == read_file(b[i]));
    }
  }
}

TEST_CASE("studio models init explains a bad architecture folder", "[unit][models]") {
  const fs::path dir = temp_dir("models_init_bad");
  // configs/sd15 has component configs but no model_index.json.
  auto r = run_studio("models init --arch " +
                      shell_quote((source_dir() / "configs/sd15").string()) + " --out " +
                      shell_quote((dir / "x").string()));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("model_index.json"));
  CHECK_FALSE(fs::exists(dir / "x"));
  auto missing = run_studio("models init --arch " + shell_quote((dir / "nope").string()) +
                            " --out " + shell_quote((dir / "y").string()));
  CHECK(missing.exit_code == 1);
  CHECK_FALSE(fs::exists(dir / "y"));
}
