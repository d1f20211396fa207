// Checkpoint folders: layouts, shard indexes, variants, refusal of pickles, strict loading into
// torch modules with errors that list missing / unexpected / mis-shaped names.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/module_loading.h"
#include "core/tensor_io.h"
#include "tests/support/expect_error.h"
#include "tests/support/fixtures.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    proj = register_module("proj", torch::nn::Linear(3, 4));
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({4})));
    register_buffer("table", torch::zeros({2}));
  }
  torch::nn::Linear proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Tiny);

std::vector<std::pair<std::string, at::Tensor>> tiny_weights() {
  return {{"proj.weight", at::randn({4, 3})},
          {"proj.bias", at::randn({4})},
          {"norm.weight", at::randn({4})},
          {"norm.bias", at::randn({4})},
          {"table", at::randn({2})}};
}

}  // namespace

TEST_CASE("strict loading copies every tensor by name", "[unit][checkpoint]") {
  const auto dir = test::temp_dir("ckpt_strict_ok");
  const auto w = tiny_weights();
  save_safetensors(dir / "model.safetensors", w);
  Tiny m;
  load_state_dict_strict(*m, StateDict::open({dir / "model.safetensors"}), "tiny");
  CHECK(at::equal(m->proj->weight, w[0].second));
  CHECK(at::equal(m->norm->bias, w[3].second));
  CHECK(at::equal(m->named_buffers()["table"], w[4].second));
}

TEST_CASE("strict loading lists missing, unexpected and mis-shaped names", "[unit][checkpoint]") {
  const auto dir = test::temp_dir("ckpt_strict_bad");
  auto w = tiny_weights();
  w.erase(w.begin() + 1);                         // proj.bias missing
  w.push_back({"extra.weight", at::zeros({1})});  // unexpected
  w[0].second = at::randn({4, 5});                // proj.weight mis-shaped
  save_safetensors(dir / "model.safetensors", w);
  Tiny m;
  const std::string msg = test::error_of<WeightsError>(
      [&] { load_state_dict_strict(*m, StateDict::open({dir / "model.safetensors"}), "tiny"); });
  CHECK_THAT(msg, Catch::Contains("tiny"));
  CHECK_THAT(msg, Catch::Contains("1 missing") && Catch::Contains("proj.bias"));
  CHECK_THAT(msg, Catch::Contains("1 unexpected") && Catch::Contains("extra.weight"));
  CHECK_THAT(msg, Catch::Contains("proj.weight: checkpoint [4,5] vs model [4,3]"));
}

TEST_CASE("prefix stripping loads wrapped checkpoints", "[unit][checkpoint]") {
  const auto dir = test::temp_dir("ckpt_prefix");
  std::vector<std::pair<std::string, at::Tensor>> w;
  for (auto& [n, t] : tiny_weights()) w.push_back({"model." + n, t});
  save_safetensors(dir / "model.safetensors", w);
  Tiny m;
  CHECK_NOTHROW(
      load_state_dict_strict(*m, StateDict::open({dir / "model.safetensors"}), "tiny", "model."));
}

TEST_CASE("sharded transformers folders are resolved through the index", "[unit][checkpoint]") {
  const auto dir = test::temp_dir("ckpt_sharded");
  test::write_file(dir / "config.json",
                   R"({"architectures": ["TinyModel"], "model_type": "tiny"})");
  const auto w = tiny_weights();
  save_safetensors(dir / "model-00001-of-00002.safetensors", {w[0], w[1]});
  save_safetensors(dir / "model-00002-of-00002.safetensors", {w[2], w[3], w[4]});
  nlohmann::json index;
  for (std::size_t i = 0; i < w.size(); ++i)
    index["weight_map"][w[i].first] =
        i < 2 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  test::write_file(dir / "model.safetensors.index.json", index.dump());

  const CheckpointInfo info = inspect_checkpoint(dir);
  CHECK(info.kind == CheckpointKind::TransformersModel);
  CHECK(info.class_name == "TinyModel");
  REQUIRE(info.components.at(0).weight_files.size() == 2);
  const StateDict sd = StateDict::open(info.components[0].weight_files);
  CHECK(sd.size() == 5);
  Tiny m;
  CHECK_NOTHROW(load_state_dict_strict(*m, sd, dir.string()));

  SECTION("a missing shard is named") {
    fs::remove(dir / "model-00002-of-00002.safetensors");
    CHECK_THAT(test::error_of<IoError>([&] { inspect_checkpoint(dir); }),
               Catch::Contains("model-00002-of-00002.safetensors"));
  }
  SECTION("a tensor in two shards is an error") {
    save_safetensors(dir / "model-00002-of-00002.safetensors", {w[0], w[2], w[3], w[4]});
    CHECK_THAT(test::error_of<WeightsError>([&] { StateDict::open(find_weight_files(dir)); }),
               Catch::Contains("appears in two shards"));
  }
}

TEST_CASE("diffusers variants, pickles and unknown layouts", "[unit][checkpoint]") {
  const auto dir = test::temp_dir("ckpt_variants");
  test::write_file(dir / "config.json", R"({"_class_name": "AutoencoderKL"})");
  save_safetensors(dir / "diffusion_pytorch_model.fp16.safetensors", {{"x", at::zeros({1})}});

  CHECK(find_weight_files(dir, "fp16").at(0).filename() ==
        "diffusion_pytorch_model.fp16.safetensors");
  CHECK_THAT(test::error_of<IoError>([&] { find_weight_files(dir, "bf16"); }),
             Catch::Contains("no 'bf16' variant"));
  // Without a variant the only safetensors file is taken.
  CHECK(find_weight_files(dir).size() == 1);

  const auto pickles = test::temp_dir("ckpt_pickles");
  test::write_file(pickles / "config.json", R"({"_class_name": "UNet2DConditionModel"})");
  test::write_file(pickles / "diffusion_pytorch_model.bin", "PK");
  CHECK_THAT(test::error_of<FormatError>([&] { inspect_checkpoint(pickles); }),
             Catch::Contains("pickle") && Catch::Contains("safetensors"));

  const auto unknown = test::temp_dir("ckpt_unknown");
  test::write_file(unknown / "config.json", R"({"hello": 1})");
  CHECK_THAT(test::error_of<ConfigError>([&] { inspect_checkpoint(unknown); }),
             Catch::Contains("_class_name"));

  const auto empty = test::temp_dir("ckpt_empty");
  CHECK_THAT(test::error_of<IoError>([&] { inspect_checkpoint(empty); }),
             Catch::Contains("not a checkpoint"));

  const auto broken = test::temp_dir("ckpt_broken_json");
  test::write_file(broken / "config.json",
                   "{\n  \"_class_name\": \"UNet2DConditionModel\",\n  oops\n}");
  CHECK_THAT(test::error_of<ConfigError>([&] { inspect_checkpoint(broken); }),
             Catch::Contains("line 3"));
}

TEST_CASE("a pipeline with a missing component folder is refused", "[unit][checkpoint]") {
  const auto dir = test::temp_dir("ckpt_pipeline_missing");
  test::write_file(
      dir / "model_index.json",
      R"({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
                 "safety_checker": [null, null], "requires_safety_checker": false})");
  CHECK_THAT(test::error_of<IoError>([&] { inspect_checkpoint(dir); }),
             Catch::Contains("component 'unet'") && Catch::Contains("missing"));

  test::write_file(dir / "unet/config.json", R"({"_class_name": "UNet2DConditionModel"})");
  CHECK_THAT(test::error_of<IoError>([&] { inspect_checkpoint(dir); }),
             Catch::Contains("no weights found"));

  save_safetensors(dir / "unet/diffusion_pytorch_model.safetensors", {{"x", at::zeros({1})}});
  const CheckpointInfo info = inspect_checkpoint(dir);
  CHECK(info.kind == CheckpointKind::DiffusersPipeline);
  CHECK(find_component(info, "unet").class_name == "UNet2DConditionModel");
  CHECK_THROWS_AS(find_component(info, "vae"), ConfigError);

  test::write_file(dir / "unet/config.json", R"({"_class_name": "AutoencoderKL"})");
  CHECK_THAT(test::error_of<ConfigError>([&] { inspect_checkpoint(dir); }),
             Catch::Contains("declares UNet2DConditionModel"));
}

// Found by tests/fuzz/fuzz_checkpoint_folder: names of the wrong JSON type used to escape as
// nlohmann::json::type_error instead of a ConfigError naming the file.
TEST_CASE("config and model_index names of the wrong type are configuration errors",
          "[unit][checkpoint]") {
  const auto dir = test::temp_dir("ckpt_wrong_types");
  save_safetensors(dir / "model.safetensors", {{"x", at::zeros({1})}});
  SECTION("config.json") {
    for (const char* config : {R"({"_class_name": 3})", R"({"architectures": [null]})",
                               R"({"model_type": []})", R"({"model_config": {"name": {}}})"}) {
      test::write_file(dir / "config.json", config);
      CHECK_THAT(test::error_of<ConfigError>([&] { inspect_checkpoint(dir); }),
                 Catch::Contains("config.json"));
    }
  }
  SECTION("model_index.json") {
    fs::create_directories(dir / "unet");
    test::write_file(dir / "unet" / "config.json", R"({"_class_name": "UNet2DConditionModel"})");
    save_safetensors(dir / "unet" / "model.safetensors", {{"x", at::zeros({1})}});
    for (const char* index : {R"({"_class_name": {"w": 1}, "unet": ["diffusers", "UNet"]})",
                              R"({"unet": ["diffusers", 7]})", R"({"unet": [1, "UNet"]})"}) {
      test::write_file(dir / "model_index.json", index);
      CHECK_THAT(test::error_of<ConfigError>([&] { inspect_checkpoint(dir); }),
                 Catch::Contains("model_index.json"));
    }
  }
}
