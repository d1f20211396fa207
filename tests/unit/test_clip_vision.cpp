// CLIP vision tower as Point-E's embed_images_grid uses it, on a tiny random config: grid shape
// (class token dropped), determinism, bidirectional attention, subset-strict loading of a
// CLIPModel-style file, and CLIP's preprocessing (short side, centre crop, mean/std). There is no
// parity fixture for the vision tower: these check structure, not numbers against CLIP.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/tensor_io.h"
#include "text/clip_vision_model.h"

using namespace studio;
using namespace studio::test;
namespace fs = std::filesystem;

namespace {

nlohmann::json tiny_json() {
  return {{"projection_dim", 24},
          {"text_config", {{"hidden_size", 16}}},
          {"vision_config",
           {{"hidden_size", 32},
            {"intermediate_size", 64},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"image_size", 28},
            {"patch_size", 7}}}};
}

}  // namespace

TEST_CASE("CLIP vision grid: shape, class token dropped, bidirectional", "[unit][clip][pointe]") {
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  const ClipVisionConfig c = ClipVisionConfig::from_json(tiny_json(), "test");
  CHECK(c.grid_tokens() == 16);
  ClipVisionModel model(c);
  model->eval();
  const at::Tensor px = torch::randn({2, 3, 28, 28});
  const at::Tensor g = model->grid(px);
  CHECK(g.sizes() == at::IntArrayRef({2, 32, 16}));
  CHECK(max_abs_diff(g, model->grid(px)) == 0.0);
  // Rows are independent.
  CHECK(max_abs_diff(model->grid(px.narrow(0, 1, 1))[0], g[1]) < 1e-5);
  // Bidirectional: changing the last patch changes the first patch token.
  at::Tensor px2 = px.clone();
  px2.index_put_(
      {0, torch::indexing::Slice(), torch::indexing::Slice(21, 28), torch::indexing::Slice(21, 28)},
      5.0);
  const at::Tensor g2 = model->grid(px2);
  CHECK(max_abs_diff(g2[0].select(1, 0), g[0].select(1, 0)) > 1e-4);
  CHECK_THROWS_AS(model->grid(torch::randn({1, 3, 20, 20})), UsageError);
}

TEST_CASE("CLIP vision loads the vision subset of a CLIPModel file strictly",
          "[unit][clip][pointe]") {
  torch::NoGradGuard no_grad;
  const fs::path dir = temp_dir("clip_vision_load");
  torch::manual_seed(2);
  ClipVisionModel model(ClipVisionConfig::from_json(tiny_json(), "test"));
  model->eval();
  auto write = [&](const fs::path& d, const std::string& drop, const std::string& extra) {
    fs::create_directories(d);
    write_file(d / "config.json", tiny_json().dump(2));
    std::vector<std::pair<std::string, at::Tensor>> t;
    for (const auto& p : model->named_parameters(true))
      if (p.key() != drop) t.emplace_back(p.key(), p.value().detach().clone());
    t.emplace_back("text_model.embeddings.token_embedding.weight", torch::randn({10, 16}));
    t.emplace_back("visual_projection.weight", torch::randn({24, 32}));
    t.emplace_back("logit_scale", torch::tensor(2.5f));
    t.emplace_back("vision_model.embeddings.position_ids",
                   torch::arange(17, torch::kLong).unsqueeze(0));
    if (!extra.empty()) t.emplace_back(extra, torch::zeros({2}));
    save_safetensors(d / "model.safetensors", t);
  };
  write(dir / "ok", "", "");
  ClipVisionModel loaded = load_clip_vision_model(dir / "ok");
  const at::Tensor px = torch::randn({1, 3, 28, 28});
  CHECK(max_abs_diff(loaded->grid(px), model->grid(px)) == 0.0);
  write(dir / "missing", "vision_model.embeddings.class_embedding", "");
  try {
    load_clip_vision_model(dir / "missing");
    FAIL("a missing class embedding must be refused");
  } catch (const WeightsError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("vision_model.embeddings.class_embedding"));
    CHECK_THAT(std::string(e.what()), !Catch::Contains("text_model"));
  }
  write(dir / "unexpected", "", "vision_model.encoder.extra");
  CHECK_THROWS_AS(load_clip_vision_model(dir / "unexpected"), WeightsError);
}

TEST_CASE("CLIP preprocessing: short side, centre crop, CLIP mean/std", "[unit][clip][pointe]") {
  // A 40 x 80 image: left half black, right half white, a uniform colour overall elsewhere.
  at::Tensor img = torch::zeros({40, 80, 3}, torch::kByte);
  img.index_put_({torch::indexing::Slice(), torch::indexing::Slice(40, 80)}, 255);
  const at::Tensor x = clip_preprocess(img, 28);
  CHECK(x.sizes() == at::IntArrayRef({1, 3, 28, 28}));
  // Resized to 28 x 56, cropped at columns 14..41: the left column is black, the right white.
  const float black_r = (0.0f - 0.48145466f) / 0.26862954f;
  const float white_r = (1.0f - 0.48145466f) / 0.26862954f;
  CHECK(std::abs(x[0][0][10][0].item<float>() - black_r) < 1e-4);
  CHECK(std::abs(x[0][0][10][27].item<float>() - white_r) < 1e-4);
  at::Tensor rgba = torch::full({30, 30, 4}, 128, torch::kByte);
  const at::Tensor u = clip_preprocess(rgba, 28);
  const float g = (128.0f / 255.0f - 0.4578275f) / 0.26130258f;
  CHECK(std::abs(u[0][1].mean().item<float>() - g) < 1e-4);
  CHECK_THROWS_AS(clip_preprocess(torch::zeros({4, 4}, torch::kByte)), UsageError);
}
