// The image models without fixtures: the published SD 1.5 / SD 2.1 configs build with the known
// parameter counts, config errors name their key, weights that disagree with their config are a
// WeightsError listing names, and save → load round trips (incl. the legacy VAE attention names,
// tiling and odd latent sizes) on tiny random-weight models.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/tensor_io.h"
#include "image/unet.h"
#include "image/vae.h"
#include "tests/support/expect_error.h"
#include "tests/support/fixtures.h"
#include "text/clip_text_model.h"

using namespace studio;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The architecture configs shipped in configs/ (also what `studio bench image` builds).
fs::path config_dir() { return test::source_dir() / "configs"; }

json read_config(const std::string& name) { return test::read_json(config_dir() / name); }

int64_t tensor_count(const torch::nn::Module& m) {
  return static_cast<int64_t>(m.named_parameters(true).size() + m.named_buffers(true).size());
}

json tiny_unet_config() {
  return json{{"_class_name", "UNet2DConditionModel"},
              {"block_out_channels", {8, 16}},
              {"layers_per_block", 1},
              {"down_block_types", {"CrossAttnDownBlock2D", "DownBlock2D"}},
              {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D"}},
              {"attention_head_dim", 2},
              {"cross_attention_dim", 12},
              {"norm_num_groups", 4},
              {"in_channels", 4},
              {"out_channels", 4}};
}

json tiny_vae_config() {
  return json{{"_class_name", "AutoencoderKL"},
              {"block_out_channels", {8, 16}},
              {"down_block_types", {"DownEncoderBlock2D", "DownEncoderBlock2D"}},
              {"up_block_types", {"UpDecoderBlock2D", "UpDecoderBlock2D"}},
              {"layers_per_block", 1},
              {"norm_num_groups", 4},
              {"latent_channels", 4},
              {"sample_size", 16}};
}

std::vector<std::pair<std::string, at::Tensor>> state_of(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value().detach());
  return out;
}

// Writes a diffusers component folder (config.json + diffusion_pytorch_model.safetensors).
fs::path write_component(const std::string& test_name, const json& config,
                         const std::vector<std::pair<std::string, at::Tensor>>& weights) {
  const fs::path dir = test::temp_dir(test_name) / "component";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  save_safetensors(dir / "diffusion_pytorch_model.safetensors", weights);
  return dir;
}

const ComponentInfo& only_component(const CheckpointInfo& info) {
  REQUIRE(info.components.size() == 1);
  return info.components[0];
}

}  // namespace

TEST_CASE("SD 1.5 and SD 2.1 configs build with the published parameter counts",
          "[unit][slow][image]") {
  // Counts as diffusers' num_parameters() reports them for runwayml/stable-diffusion-v1-5 and
  // stabilityai/stable-diffusion-2-1 (686 UNet tensors in both).
  SECTION("SD 1.5 UNet") {
    image::UNet2DConditionModel unet(read_config("sd15/unet/config.json"), "sd15/unet/config.json");
    CHECK(image::parameter_count(*unet) == 859520964);
    CHECK(tensor_count(*unet) == 686);
    CHECK(unet->config().num_attention_heads == std::vector<int64_t>{8, 8, 8, 8});
  }
  SECTION("SD 2.1 UNet") {
    image::UNet2DConditionModel unet(read_config("sd21/unet/config.json"), "sd21/unet/config.json");
    CHECK(image::parameter_count(*unet) == 865910724);
    CHECK(tensor_count(*unet) == 686);
    CHECK(unet->config().num_attention_heads == std::vector<int64_t>{5, 10, 20, 20});
    CHECK(unet->config().use_linear_projection);
    CHECK(unet->config().upcast_attention);
  }
  SECTION("CLIP text encoders (ViT-L/14 for 1.5, OpenCLIP ViT-H for 2.1)") {
    const std::pair<const char*, int64_t> cases[] = {{"sd15/text_encoder/config.json", 123060480},
                                                     {"sd21/text_encoder/config.json", 340387840}};
    for (const auto& [name, count] : cases) {
      INFO(name);
      ClipTextModel te(ClipTextConfig::from_json(read_config(name), name));
      CHECK(image::parameter_count(*te) == count);
    }
  }
  SECTION("SD VAE (1.5 and 2.1 share it)") {
    for (const char* name : {"sd15/vae/config.json", "sd21/vae/config.json"}) {
      INFO(name);
      image::AutoencoderKL vae(read_config(name), name);
      CHECK(image::parameter_count(*vae) == 83653863);
      CHECK(tensor_count(*vae) == 248);
      CHECK(vae->config().downscale_factor() == 8);
      CHECK(vae->scaling_factor() == Approx(0.18215));
    }
  }
}

TEST_CASE("unsupported UNet configs are ConfigErrors naming the key", "[unit][image]") {
  auto message = [](const json& config) {
    return test::error_of<ConfigError>(
        [&] { image::UNet2DConditionConfig::from_json(config, "x.json"); });
  };
  json c = tiny_unet_config();
  c["down_block_types"][1] = "SimpleCrossAttnDownBlock2D";
  std::string m = message(c);
  CHECK_THAT(m, Catch::Contains("down_block_types") && Catch::Contains("not supported yet") &&
                    Catch::Contains("SimpleCrossAttnDownBlock2D") && Catch::Contains("x.json"));

  c = tiny_unet_config();
  c["up_block_types"][0] = "AttnUpBlock2D";
  CHECK_THAT(message(c), Catch::Contains("up_block_types") && Catch::Contains("not supported yet"));

  c = tiny_unet_config();
  c["addition_embed_type"] = "text_time";  // SDXL
  CHECK_THAT(message(c),
             Catch::Contains("addition_embed_type") && Catch::Contains("not supported yet"));

  c = tiny_unet_config();
  c["class_embed_type"] = "timestep";
  CHECK_THAT(message(c), Catch::Contains("class_embed_type"));

  c = tiny_unet_config();
  c["mid_block_type"] = "UNetMidBlock2DSimpleCrossAttn";
  CHECK_THAT(message(c), Catch::Contains("mid_block_type"));

  c = tiny_unet_config();
  c["attention_head_dim"] = {2, 2, 2};
  CHECK_THAT(message(c), Catch::Contains("attention_head_dim"));

  c = tiny_unet_config();
  c["attention_head_dim"] = 3;  // 3 heads do not divide 8 channels
  CHECK_THAT(message(c), Catch::Contains("attention_head_dim"));

  c = tiny_unet_config();
  c.erase("block_out_channels");
  CHECK_THAT(message(c), Catch::Contains("block_out_channels"));

  c = tiny_unet_config();
  c["only_cross_attention"] = true;
  CHECK_THAT(message(c), Catch::Contains("only_cross_attention"));

  // num_attention_heads, when present, overrides the legacy attention_head_dim.
  c = tiny_unet_config();
  c["num_attention_heads"] = 4;
  CHECK(image::UNet2DConditionConfig::from_json(c, "x.json").num_attention_heads ==
        std::vector<int64_t>{4, 4});

  json v = tiny_vae_config();
  v["down_block_types"][0] = "AttnDownEncoderBlock2D";
  CHECK_THAT(
      test::error_of<ConfigError>([&] { image::AutoencoderKLConfig::from_json(v, "vae.json"); }),
      Catch::Contains("down_block_types") && Catch::Contains("not supported yet"));
}

TEST_CASE("weights that disagree with the config are a WeightsError listing names",
          "[unit][image]") {
  image::UNet2DConditionModel built(tiny_unet_config(), "tiny");
  json other = tiny_unet_config();
  other["layers_per_block"] = {1, 2};  // an extra resnet the weights lack
  other["cross_attention_dim"] = 6;    // to_k/to_v of attn2 change shape
  const fs::path dir = write_component("image_unet_mismatch", other, state_of(*built));
  const std::string m = test::error_of<WeightsError>(
      [&] { image::load_unet(only_component(inspect_checkpoint(dir))); });
  CHECK_THAT(m, Catch::Contains("missing") && Catch::Contains("down_blocks.1.resnets.1") &&
                    Catch::Contains("attn2.to_k.weight") && Catch::Contains("wrong shape"));

  image::AutoencoderKL vae(tiny_vae_config(), "tiny");
  json vother = tiny_vae_config();
  vother["latent_channels"] = 8;
  const fs::path vdir = write_component("image_vae_mismatch", vother, state_of(*vae));
  CHECK_THAT(test::error_of<WeightsError>(
                 [&] { image::load_vae(only_component(inspect_checkpoint(vdir))); }),
             Catch::Contains("quant_conv.weight"));
}

TEST_CASE("tiny UNet and VAE round-trip through safetensors", "[unit][image]") {
  torch::NoGradGuard no_grad;
  at::manual_seed(11);
  SECTION("UNet, including a latent size that is not a multiple of 2^upsamplers") {
    image::UNet2DConditionModel unet(tiny_unet_config(), "tiny");
    const fs::path dir =
        write_component("image_unet_roundtrip", tiny_unet_config(), state_of(*unet));
    auto loaded = image::load_unet(only_component(inspect_checkpoint(dir)));
    for (int64_t size : {8, 7}) {
      const at::Tensor x = at::randn({2, 4, size, size}), ctx = at::randn({2, 5, 12});
      const at::Tensor a = unet->forward(x, at::scalar_tensor(500, at::kLong), ctx);
      const at::Tensor b = loaded->forward(x, 500.0, ctx);
      CHECK(a.sizes() == x.sizes());
      CHECK(test::max_abs_diff(a, b) == 0);
    }
    // A text mask that keeps every token changes nothing; dropping tokens changes the output.
    const at::Tensor x = at::randn({1, 4, 8, 8}), ctx = at::randn({1, 5, 12});
    image::UNetExtraInputs keep_all;
    keep_all.encoder_attention_mask = at::ones({1, 5});
    const at::Tensor plain = unet->forward(x, 10.0, ctx);
    CHECK(test::max_abs_diff(unet->forward(x, 10.0, ctx, keep_all), plain) < 1e-6);
    image::UNetExtraInputs drop;
    drop.encoder_attention_mask = at::tensor({1.f, 1.f, 0.f, 0.f, 0.f}).unsqueeze(0);
    CHECK(test::max_abs_diff(unet->forward(x, 10.0, ctx, drop), plain) > 1e-6);
  }
  SECTION("VAE with the older query/key/value/proj_attn names") {
    image::AutoencoderKL vae(tiny_vae_config(), "tiny");
    auto weights = state_of(*vae);
    const std::vector<std::pair<std::string, std::string>> renames = {
        {".to_q.", ".query."},
        {".to_k.", ".key."},
        {".to_v.", ".value."},
        {".to_out.0.", ".proj_attn."}};
    for (auto& [name, _] : weights)
      for (const auto& [from, to] : renames)
        if (auto p = name.find(from); p != std::string::npos) name.replace(p, from.size(), to);
    const fs::path dir = write_component("image_vae_legacy", tiny_vae_config(), weights);
    auto loaded = image::load_vae(only_component(inspect_checkpoint(dir)));
    CHECK(loaded->config().legacy_attention_names);
    const at::Tensor z = at::randn({1, 4, 6, 6});
    CHECK(test::max_abs_diff(loaded->decode(z), vae->decode(z)) == 0);
    const at::Tensor img = at::rand({1, 3, 12, 12}) * 2 - 1;
    CHECK(test::max_abs_diff(loaded->encode(img).mean, vae->encode(img).mean) == 0);
  }
}

TEST_CASE("tiled VAE decode blends overlapping tiles", "[unit][image]") {
  torch::NoGradGuard no_grad;
  at::manual_seed(5);
  image::AutoencoderKL vae(tiny_vae_config(), "tiny");  // sample_size 16 px → 8-latent tiles
  REQUIRE(vae->tile_sample_min_size() == 16);
  REQUIRE(vae->tile_latent_min_size() == 8);
  const at::Tensor z = at::randn({1, 4, 20, 20});
  const at::Tensor full = vae->decode(z);
  vae->enable_tiling();
  const at::Tensor tiled = vae->decode(z);
  REQUIRE(tiled.sizes() == full.sizes());  // [1, 3, 40, 40]
  // The first tile's unblended part (rows/cols < 16 - 4) is that tile decoded on its own.
  vae->enable_tiling(false);
  const at::Tensor first = vae->decode(z.slice(2, 0, 8).slice(3, 0, 8));
  CHECK(test::max_abs_diff(tiled.slice(2, 0, 12).slice(3, 0, 12),
                           first.slice(2, 0, 12).slice(3, 0, 12)) == 0);
  // Inputs no larger than a tile bypass tiling.
  vae->enable_tiling();
  const at::Tensor small = z.slice(2, 0, 8).slice(3, 0, 8);
  CHECK(test::max_abs_diff(vae->decode(small), first) == 0);
  // Tiled encode covers the whole image too.
  const at::Tensor img = at::rand({1, 3, 40, 40}) * 2 - 1;
  CHECK(vae->encode(img).mean.sizes().vec() == std::vector<int64_t>{1, 4, 20, 20});
}
