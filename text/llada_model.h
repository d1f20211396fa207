// LLaDA, the masked diffusion language model (GSAI-ML/LLaDA-8B-Base / -Instruct, "LLaDAModelLM"):
// LLaMA-style blocks (RMSNorm, RoPE, SwiGLU, GQA) with bidirectional attention, built from the
// transformers config.json; module names equal the checkpoint keys
// (model.transformer.blocks.N.q_proj.weight, ...). The forward optionally takes and returns
// per-layer K/V so the samplers can run prefix and dual KV caches (Fast-dLLM).
#pragma once

#include <ATen/Tensor.h>
#include <c10/util/Optional.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"

namespace studio {

struct LLaDAConfig {
  int64_t d_model = 4096;
  int64_t n_layers = 32;
  int64_t n_heads = 32;
  int64_t n_kv_heads = 32;          // < n_heads: grouped-query attention
  int64_t mlp_hidden_size = 12288;  // config null: mlp_ratio * d_model
  int64_t vocab_size = 126464;
  int64_t embedding_size = 126464;  // rows of wte / ff_out, >= vocab_size; logits have this size
  int64_t max_sequence_length = 4096;
  double rope_theta = 500000.0;
  double rms_norm_eps = 1e-5;
  bool rope_full_precision = true;  // RoPE in fp32 whatever the activation dtype
  bool input_emb_norm = false;      // scale embeddings by sqrt(d_model)
  bool scale_logits = false;        // scale logits by 1/sqrt(d_model)
  int64_t mask_token_id = 126336;
  int64_t eos_token_id = 126081;
  int64_t pad_token_id = 126081;

  int64_t head_dim() const { return d_model / n_heads; }

  // Reads LLaDA's config.json. Values this implementation does not support (block_type other
  // than "llama", activation_type other than "silu", alibi, biases, weight tying, attention layer
  // norm, block groups, non-RMS norms, ...) are a ConfigError naming the key and `origin`.
  static LLaDAConfig from_json(const nlohmann::json& j, const std::string& origin);
};

// Every parameter's checkpoint name and shape, computed from the config without allocating
// (what LLaDAModelLM registers and the checkpoint holds), and their total element count.
std::vector<std::pair<std::string, std::vector<int64_t>>> llada_parameter_shapes(
    const LLaDAConfig& config);
int64_t llada_parameter_count(const LLaDAConfig& config);

// Per-layer keys and values, [B, n_kv_heads, L, head_dim]; keys before RoPE (Fast-dLLM's layout,
// so rows can be moved or replaced and RoPE follows their position in the cache).
struct LLaDAKVCache {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;

  bool empty() const { return keys.empty(); }
  int64_t length() const;                                // L (0 when empty)
  LLaDAKVCache slice(int64_t start, int64_t end) const;  // positions [start, end), views
};

struct LLaDAForwardOptions {
  // [B, Lk] key-padding mask over all keys of the call (past and new): 1 = real token, 0 = pad
  // (never attended to). Left-pad prompts of different lengths to batch them. None: attend to all.
  c10::optional<at::Tensor> attention_mask;
  // K/V of positions computed before. Without replace_start, the new tokens follow the cache
  // (prefix cache): keys = past ++ new, query positions past.length() ... past.length() + L - 1.
  const LLaDAKVCache* past = nullptr;
  // Dual cache: the L new tokens are positions [replace_start, replace_start + L) of the cached
  // sequence; their K/V replace those rows, keys keep all past.length() positions.
  int64_t replace_start = -1;
  // Return the K/V of every key position of this call (past and new) in LLaDAOutput::cache.
  bool return_cache = false;
};

struct LLaDAOutput {
  at::Tensor logits;   // [B, L, embedding_size], in the parameters' dtype
  LLaDAKVCache cache;  // when return_cache
};

// Bias-free projection and embedding table holding only "weight". Parameters are allocated
// uninitialised (an 8B model is not randomly initialised just to be overwritten by the loader).
class LLaDALinearImpl : public torch::nn::Module {
 public:
  LLaDALinearImpl(int64_t in_features, int64_t out_features);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight;  // [out, in]
};
TORCH_MODULE(LLaDALinear);

class LLaDAEmbeddingImpl : public torch::nn::Module {
 public:
  LLaDAEmbeddingImpl(int64_t num_embeddings, int64_t dim);
  at::Tensor forward(const at::Tensor& ids);

  at::Tensor weight;  // [num, dim]
};
TORCH_MODULE(LLaDAEmbedding);

class LLaDARMSNormImpl : public torch::nn::Module {
 public:
  LLaDARMSNormImpl(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(LLaDARMSNorm);

// Rotary tables shared by all blocks: cos/sin of position * inv_freq, [positions, head_dim], fp32,
// computed as LLaDA does (table for max_sequence_length positions, grown on demand), per device.
class LLaDARotary {
 public:
  LLaDARotary(int64_t head_dim, double theta, int64_t initial_positions);
  // cos and sin rows for positions [start, start + count) on `device`.
  std::pair<at::Tensor, at::Tensor> get(int64_t start, int64_t count, const at::Device& device);

 private:
  int64_t head_dim_;
  double theta_;
  int64_t initial_positions_;
  std::mutex mutex_;
  at::Tensor cos_, sin_;
};

class LLaDABlockImpl : public torch::nn::Module {
 public:
  explicit LLaDABlockImpl(const LLaDAConfig& c);
  // x [B, L, d]; q_cos/q_sin rows for the query positions, k_cos/k_sin for all key positions.
  // `bias`: additive [B, 1, 1, Lk] or undefined. Returns the new x; sets *k_out / *v_out to the
  // keys (before RoPE) and values the attention used.
  at::Tensor forward(const at::Tensor& x, const std::pair<at::Tensor, at::Tensor>& q_rope,
                     const std::pair<at::Tensor, at::Tensor>& k_rope, const at::Tensor& bias,
                     const at::Tensor& past_k, const at::Tensor& past_v, int64_t replace_start,
                     at::Tensor* k_out, at::Tensor* v_out);

 private:
  int64_t n_heads_, n_kv_heads_, head_dim_;
  bool rope_full_precision_;
  LLaDARMSNorm attn_norm_{nullptr}, ff_norm_{nullptr};
  LLaDALinear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, attn_out_{nullptr};
  LLaDALinear ff_proj_{nullptr}, up_proj_{nullptr}, ff_out_{nullptr};
};
TORCH_MODULE(LLaDABlock);

// Registered as model.transformer inside LLaDAModelLM so names match the checkpoint.
class LLaDATransformerImpl : public torch::nn::Module {
 public:
  explicit LLaDATransformerImpl(const LLaDAConfig& c);
  LLaDAOutput forward(const at::Tensor& input_ids, const LLaDAForwardOptions& options);

 private:
  LLaDAConfig config_;
  std::shared_ptr<LLaDARotary> rotary_;
  LLaDAEmbedding wte_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  LLaDARMSNorm ln_f_{nullptr};
  LLaDALinear ff_out_{nullptr};
};
TORCH_MODULE(LLaDATransformer);

class LLaDAModelLMImpl : public torch::nn::Module {
 public:
  explicit LLaDAModelLMImpl(const LLaDAConfig& c);

  // ids [B, L] (int64; any integer dtype is converted) -> logits [B, L, embedding_size].
  // attention_mask [B, L]: 1 = real token, 0 = padding (see LLaDAForwardOptions).
  at::Tensor forward(const at::Tensor& input_ids,
                     const c10::optional<at::Tensor>& attention_mask = c10::nullopt);
  // The general form: KV caches in and out.
  LLaDAOutput forward_with_cache(const at::Tensor& input_ids, const LLaDAForwardOptions& options);

  const LLaDAConfig& config() const { return config_; }

 private:
  LLaDAConfig config_;
  LLaDATransformer transformer_{nullptr};
};
TORCH_MODULE(LLaDAModelLM);

// Replaces the (uninitialised) parameters with deterministic random values made directly in
// `dtype` on `device`: normal(0, 0.02) from the default generators seeded with `seed`, RMSNorm
// weights 1, one tensor at a time, so an 8B model never has an fp32 CPU copy written. For
// benchmarks and random-weight starter models (`studio models init`).
void llada_randomize_parameters(LLaDAModelLM& model, const c10::Device& device,
                                c10::ScalarType dtype, uint64_t seed);

// Builds from the component's config.json and loads its weights strictly (fp32; move/cast with
// ->to() afterwards). Throws ConfigError for an unsupported config, WeightsError for names or
// shapes that do not match.
LLaDAModelLM load_llada(const ComponentInfo& component);

}  // namespace studio
