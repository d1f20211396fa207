// LLaDAConfig parsing (the real LLaDA-8B config and its 8.02B parameters computed without
// allocating; unsupported or invalid values name the key), module names and shapes, grouped-query
// attention's head mapping, and forward argument checks, on tiny random-weight models.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>

#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"
#include "tests/support/fixtures.h"
#include "text/llada_model.h"

using namespace studio;
using nlohmann::json;

namespace {

// LLaDA-8B's config.json with tiny sizes.
json tiny_config_json() {
  json j = read_json_file(test::source_dir() / "configs" / "llada-8b" / "config.json");
  j["d_model"] = 64;
  j["n_layers"] = 2;
  j["n_heads"] = 4;
  j["n_kv_heads"] = 4;
  j["mlp_hidden_size"] = 96;
  j["vocab_size"] = 300;
  j["embedding_size"] = 320;
  j["mask_token_id"] = 299;
  j["eos_token_id"] = 298;
  j["pad_token_id"] = 298;
  j["max_sequence_length"] = 64;
  return j;
}

LLaDAModelLM random_model(const json& j, uint64_t seed) {
  LLaDAModelLM model(LLaDAConfig::from_json(j, "tiny"));
  torch::NoGradGuard no_grad;
  at::manual_seed(seed);
  for (auto& p : model->named_parameters()) {
    if (p.key().find("norm") != std::string::npos || p.key().find("ln_f") != std::string::npos)
      p.value().uniform_(0.5, 1.5);
    else
      p.value().normal_(0.0, 0.1);
  }
  model->eval();
  return model;
}

// The ConfigError message for `j` (edited tiny config).
std::string config_error(const json& j) {
  try {
    LLaDAConfig::from_json(j, "cfg.json");
  } catch (const ConfigError& e) {
    CHECK(e.where() == "cfg.json");
    CHECK_FALSE(e.hint().empty());
    return e.what_failed();
  }
  FAIL("config was accepted: " << j.dump());
  return {};
}

}  // namespace

TEST_CASE("LLaDA-8B config: values and 8.02B parameters from the config", "[unit][llada]") {
  const auto path = test::source_dir() / "configs" / "llada-8b" / "config.json";
  const LLaDAConfig c = LLaDAConfig::from_json(read_json_file(path), path.string());
  CHECK(c.d_model == 4096);
  CHECK(c.n_layers == 32);
  CHECK(c.n_heads == 32);
  CHECK(c.n_kv_heads == 32);
  CHECK(c.head_dim() == 128);
  CHECK(c.mlp_hidden_size == 12288);
  CHECK(c.vocab_size == 126464);
  CHECK(c.embedding_size == 126464);
  CHECK(c.mask_token_id == 126336);
  CHECK(c.eos_token_id == 126081);
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK(c.max_sequence_length == 4096);

  // Shapes only: an fp32 8B model would need 32 GB.
  const auto shapes = llada_parameter_shapes(c);
  CHECK(shapes.size() == 2 + 32 * 9 + 1);
  CHECK(shapes.front().first == "model.transformer.wte.weight");
  CHECK(shapes.back().first == "model.transformer.ff_out.weight");
  const int64_t count = llada_parameter_count(c);
  // 2 * 126464 * 4096 (embeddings, output) + 32 * (4 * 4096^2 + 3 * 4096 * 12288 + 2 * 4096)
  // + 4096 (ln_f): the published "8.02B".
  CHECK(count == 8015581184);
  CHECK(std::llround(double(count) / 1e7) == 802);
}

TEST_CASE("LLaDA module names and shapes follow the config", "[unit][llada]") {
  for (int64_t kv : {4, 2, 1}) {
    json j = tiny_config_json();
    j["n_kv_heads"] = kv;
    const LLaDAConfig c = LLaDAConfig::from_json(j, "tiny");
    LLaDAModelLM model(c);
    std::map<std::string, std::vector<int64_t>> module, formula;
    for (const auto& [name, shape] : module_tensor_shapes(*model)) module[name] = shape;
    for (const auto& [name, shape] : llada_parameter_shapes(c)) formula[name] = shape;
    CHECK(module == formula);
    CHECK(formula.at("model.transformer.blocks.1.k_proj.weight") ==
          std::vector<int64_t>{kv * 16, 64});
    CHECK(formula.at("model.transformer.ff_out.weight") == std::vector<int64_t>{320, 64});
  }
  // multi_query_attention without n_kv_heads means one kv head.
  json j = tiny_config_json();
  j["n_kv_heads"] = nullptr;
  j["multi_query_attention"] = true;
  CHECK(LLaDAConfig::from_json(j, "tiny").n_kv_heads == 1);
  j["mlp_hidden_size"] = nullptr;
  CHECK(LLaDAConfig::from_json(j, "tiny").mlp_hidden_size == 4 * 64);
}

TEST_CASE("LLaDA refuses unsupported and invalid configs naming the key", "[unit][llada]") {
  auto edited = [](const char* key, const json& value) {
    json j = tiny_config_json();
    if (value.is_discarded())
      j.erase(key);
    else
      j[key] = value;
    return j;
  };
  auto names = [](const std::string& msg, const std::string& key) {
    INFO(msg);
    CHECK(msg.find("'" + key + "'") != std::string::npos);
  };
  const json erase = json(json::value_t::discarded);
  names(config_error(edited("block_type", "sequential")), "block_type");
  names(config_error(edited("block_type", erase)), "block_type");  // OLMo default: sequential
  names(config_error(edited("alibi", true)), "alibi");
  names(config_error(edited("rope", false)), "rope");
  names(config_error(edited("activation_type", "gelu")), "activation_type");
  names(config_error(edited("include_bias", true)), "include_bias");
  names(config_error(edited("include_qkv_bias", true)), "include_qkv_bias");
  names(config_error(edited("weight_tying", true)), "weight_tying");
  names(config_error(edited("attention_layer_norm", true)), "attention_layer_norm");
  names(config_error(edited("layer_norm_type", "default")), "layer_norm_type");
  names(config_error(edited("block_group_size", 2)), "block_group_size");
  names(config_error(edited("clip_qkv", 8.0)), "clip_qkv");
  names(config_error(edited("model_type", "llama")), "model_type");
  names(config_error(edited("d_model", erase)), "d_model");
  names(config_error(edited("d_model", "4096")), "d_model");
  names(config_error(edited("d_model", 62)), "d_model");  // not a multiple of n_heads
  names(config_error(edited("n_kv_heads", 3)), "n_kv_heads");
  names(config_error(edited("n_layers", 0)), "n_layers");
  names(config_error(edited("embedding_size", 200)), "embedding_size");
  names(config_error(edited("mask_token_id", erase)), "mask_token_id");
  names(config_error(edited("mask_token_id", 320)), "mask_token_id");
  json mqa = tiny_config_json();
  mqa["multi_query_attention"] = true;
  CHECK(config_error(mqa).find("multi_query_attention") != std::string::npos);
  CHECK_THROWS_AS(LLaDAConfig::from_json(json::array(), "cfg.json"), ConfigError);
}

TEST_CASE("LLaDA grouped-query attention maps kv head j to query heads j*g..", "[unit][llada]") {
  // A GQA model equals the full-head model whose k/v projections repeat each kv head g times.
  json j = tiny_config_json();
  j["n_kv_heads"] = 2;
  LLaDAModelLM gqa = random_model(j, 1);
  LLaDAModelLM mha = random_model(tiny_config_json(), 2);
  torch::NoGradGuard no_grad;
  auto gqa_params = gqa->named_parameters();
  for (auto& p : mha->named_parameters()) {
    const at::Tensor src = gqa_params[p.key()];
    if (p.key().find("k_proj") != std::string::npos || p.key().find("v_proj") != std::string::npos)
      p.value().copy_(src.view({2, 16, 64}).repeat_interleave(2, 0).reshape({64, 64}));
    else
      p.value().copy_(src);
  }
  const at::Tensor ids = at::randint(0, 300, {2, 11}, at::kLong);
  const at::Tensor a = gqa->forward(ids), b = mha->forward(ids);
  CHECK(a.sizes() == at::IntArrayRef({2, 11, 320}));
  CHECK(a.isfinite().all().item<bool>());
  CHECK(test::max_abs_diff(a, b) <= 1e-5);
}

TEST_CASE("LLaDA attention is bidirectional and the mask hides padding keys", "[unit][llada]") {
  LLaDAModelLM model = random_model(tiny_config_json(), 3);
  torch::NoGradGuard no_grad;
  at::Tensor ids = at::randint(0, 300, {1, 9}, at::kLong);
  const at::Tensor base = model->forward(ids);
  at::Tensor changed = ids.clone();
  changed[0][8] = (ids[0][8].item<int64_t>() + 1) % 300;
  // Changing the last token changes the first position's logits (no causal mask) ...
  CHECK(test::max_abs_diff(model->forward(changed).narrow(1, 0, 1), base.narrow(1, 0, 1)) > 1e-4);
  // ... unless that key is masked out.
  at::Tensor mask = at::ones({1, 9}, at::kLong);
  mask[0][8] = 0;
  CHECK(test::max_abs_diff(model->forward(changed, mask).narrow(1, 0, 8),
                           model->forward(ids, mask).narrow(1, 0, 8)) <= 1e-6);
}

TEST_CASE("LLaDA forward checks its arguments", "[unit][llada]") {
  LLaDAModelLM model = random_model(tiny_config_json(), 4);
  torch::NoGradGuard no_grad;
  const at::Tensor ids = at::randint(0, 300, {2, 5}, at::kLong);
  CHECK_THROWS_AS(model->forward(ids.view({10})), UsageError);
  CHECK_THROWS_AS(model->forward(ids, at::ones({2, 4}, at::kLong)), UsageError);
  CHECK_THROWS_AS(model->forward(ids, at::ones({1, 5}, at::kLong)), UsageError);

  LLaDAForwardOptions options;
  options.replace_start = 0;
  CHECK_THROWS_AS(model->forward_with_cache(ids, options), UsageError);  // no cache
  options.return_cache = true;
  options.replace_start = -1;
  const LLaDAOutput full = model->forward_with_cache(ids, options);
  CHECK(full.cache.length() == 5);
  options.past = &full.cache;
  options.replace_start = 3;
  CHECK_THROWS_AS(model->forward_with_cache(ids, options), UsageError);  // [3, 8) outside 5
  const LLaDAKVCache one = full.cache.slice(0, 2);
  CHECK(one.length() == 2);
  CHECK_THROWS_AS(full.cache.slice(3, 6), UsageError);
  options.replace_start = -1;
  options.past = &one;
  CHECK_THROWS_AS(model->forward_with_cache(ids.narrow(0, 0, 1), options), UsageError);  // batch
}
