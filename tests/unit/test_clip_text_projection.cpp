// CLIP text model with projection (Point-E's text conditioning) on a tiny random config: shapes,
// determinism, pooling position, subset-strict loading of a CLIPModel-style file. There is no
// parity fixture for the projection: these check the structure, not numbers against transformers.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/tensor_io.h"
#include "text/clip_text_projection.h"

using namespace studio;
using namespace studio::test;
namespace fs = std::filesystem;

namespace {

ClipTextConfig tiny_config(int64_t vocab, int64_t eos) {
  ClipTextConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.max_position_embeddings = 16;
  c.eos_token_id = eos;
  return c;
}

nlohmann::json tiny_json(int64_t vocab, int64_t eos, int64_t proj) {
  return {{"architectures", {"CLIPModel"}},
          {"projection_dim", proj},
          {"text_config",
           {{"vocab_size", vocab},
            {"hidden_size", 32},
            {"intermediate_size", 64},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"max_position_embeddings", 16},
            {"eos_token_id", eos},
            {"hidden_act", "quick_gelu"}}},
          {"vision_config", {{"hidden_size", 8}}}};
}

// A CLIPModel-style folder: the module's tensors plus vision tensors the loader must ignore.
void write_clip_folder(const fs::path& dir, ClipTextModelWithProjection& model, int64_t vocab,
                       int64_t eos, const std::vector<std::string>& drop = {},
                       const std::vector<std::string>& extra = {}) {
  fs::create_directories(dir);
  write_file(dir / "config.json", tiny_json(vocab, eos, model->projection_dim()).dump(2));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model->named_parameters(true))
    if (std::find(drop.begin(), drop.end(), p.key()) == drop.end())
      tensors.emplace_back(p.key(), p.value().detach().clone());
  tensors.emplace_back("vision_model.embeddings.patch_embedding.weight",
                       torch::randn({8, 3, 2, 2}));
  tensors.emplace_back("visual_projection.weight", torch::randn({24, 8}));
  tensors.emplace_back("logit_scale", torch::tensor(2.6592f));
  tensors.emplace_back("text_model.embeddings.position_ids",
                       torch::arange(16, torch::kLong).unsqueeze(0));
  for (const auto& e : extra) tensors.emplace_back(e, torch::zeros({3}));
  save_safetensors(dir / "model.safetensors", tensors);
}

}  // namespace

TEST_CASE("CLIP text projection: shapes, determinism, pooled at the first EOS",
          "[unit][clip][pointe]") {
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  ClipTextModelWithProjection model(tiny_config(100, 99), 24);
  model->eval();
  // Row 0: EOS at 5; row 1: EOS at 9; padded with the EOS id (transformers' CLIP pad).
  at::Tensor ids = torch::randint(1, 90, {2, 16}, torch::kLong);
  ids.index_put_({0, torch::indexing::Slice(5, torch::indexing::None)}, 99);
  ids.index_put_({1, torch::indexing::Slice(9, torch::indexing::None)}, 99);
  const at::Tensor e = model->forward(ids);
  CHECK(e.sizes() == at::IntArrayRef({2, 24}));
  CHECK(max_abs_diff(e, model->forward(ids)) == 0.0);
  const ClipTextOutput out = model->encode(ids);
  CHECK(max_abs_diff(out.pooler_output[0], out.last_hidden_state[0][5]) == 0.0);
  CHECK(max_abs_diff(out.pooler_output[1], out.last_hidden_state[1][9]) == 0.0);
  // text_embeds = pooled @ W^T, no bias.
  const at::Tensor w = model->named_parameters()["text_projection.weight"];
  CHECK(w.sizes() == at::IntArrayRef({24, 32}));
  CHECK(max_abs_diff(e, out.pooler_output.matmul(w.t())) < 1e-5);
  // Causal mask: tokens after the EOS do not change the embedding.
  at::Tensor ids2 = ids.clone();
  ids2.index_put_({0, torch::indexing::Slice(6, torch::indexing::None)}, 3);
  CHECK(max_abs_diff(model->forward(ids2)[0], e[0]) < 1e-6);
  // ...but a token before it does.
  ids2.index_put_({0, 2}, 42);
  CHECK(max_abs_diff(model->forward(ids2)[0], e[0]) > 1e-4);

  // Legacy configs (eos_token_id 2): pooled at argmax(input_ids), the original CLIP's EOT.
  torch::manual_seed(7);
  ClipTextModelWithProjection legacy(tiny_config(100, 2), 24);
  legacy->eval();
  at::Tensor lids = torch::randint(1, 90, {1, 16}, torch::kLong);
  lids.index_put_({0, 7}, 99);
  lids.index_put_({0, torch::indexing::Slice(8, torch::indexing::None)}, 0);
  const ClipTextOutput lo = legacy->encode(lids);
  CHECK(max_abs_diff(lo.pooler_output[0], lo.last_hidden_state[0][7]) == 0.0);
}

TEST_CASE("CLIP text projection loads the text subset of a CLIPModel file strictly",
          "[unit][clip][pointe]") {
  torch::NoGradGuard no_grad;
  const fs::path root = temp_dir("clip_projection_load");
  torch::manual_seed(3);
  ClipTextModelWithProjection model(tiny_config(100, 99), 24);
  model->eval();
  write_clip_folder(root / "ok", model, 100, 99);
  ClipTextModelWithProjection loaded = load_clip_text_with_projection(root / "ok");
  const at::Tensor ids = torch::randint(1, 99, {1, 16}, torch::kLong);
  CHECK(max_abs_diff(loaded->forward(ids), model->forward(ids)) == 0.0);
  CHECK(loaded->projection_dim() == 24);

  write_clip_folder(root / "missing", model, 100, 99, {"text_projection.weight"});
  try {
    load_clip_text_with_projection(root / "missing");
    FAIL("a missing text_projection must be refused");
  } catch (const WeightsError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("text_projection.weight"));
    CHECK_THAT(std::string(e.what()), !Catch::Contains("vision_model"));
  }
  write_clip_folder(root / "unexpected", model, 100, 99, {}, {"text_model.encoder.extra.bias"});
  try {
    load_clip_text_with_projection(root / "unexpected");
    FAIL("an unexpected text tensor must be refused");
  } catch (const WeightsError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("text_model.encoder.extra.bias"));
  }
  CHECK_THROWS_AS(load_clip_text_with_projection(root / "nothing"), IoError);
}

TEST_CASE("CLIP text embedding of a prompt is unit-norm and deterministic",
          "[unit][clip][pointe]") {
  torch::NoGradGuard no_grad;
  const fs::path tok_dir = source_dir() / "configs" / "starter-tiny" / "tokenizer";
  const ClipTokenizer tok = ClipTokenizer::load(tok_dir);
  const int64_t vocab = static_cast<int64_t>(tok.vocab_size());
  torch::manual_seed(5);
  ClipTextConfig c = tiny_config(vocab, tok.eos_id());
  c.max_position_embeddings = 77;
  ClipTextModelWithProjection model(c, 24);
  model->eval();
  const at::Tensor a = clip_text_embedding(model, tok, "a red ceramic mug");
  CHECK(a.sizes() == at::IntArrayRef({1, 24}));
  CHECK(std::abs(a.norm().item<double>() - 1.0) < 1e-5);
  CHECK(max_abs_diff(a, clip_text_embedding(model, tok, "a red ceramic mug")) == 0.0);
  CHECK(max_abs_diff(a, clip_text_embedding(model, tok, "a blue glass vase")) > 1e-4);
}
