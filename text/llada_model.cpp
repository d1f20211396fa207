#include "text/llada_model.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"
#include "kernels/attention.h"

namespace studio {
namespace {

const char* const kConfigHint =
    "studio implements LLaDA-8B's architecture (block_type \"llama\", silu, RoPE, RMSNorm, no "
    "biases, no weight tying): use a config.json of GSAI-ML/LLaDA-8B-Base/-Instruct";

[[noreturn]] void unsupported(const std::string& key, const nlohmann::json& value,
                              const std::string& expected, const std::string& origin) {
  throw ConfigError(
      "key '" + key + "' = " + value.dump() + " is not supported (expected " + expected + ")",
      origin, kConfigHint);
}

void require_value(const nlohmann::json& j, const std::string& key, const nlohmann::json& expected,
                   const nlohmann::json& fallback, const std::string& origin) {
  const nlohmann::json value = j.contains(key) && !j.at(key).is_null() ? j.at(key) : fallback;
  if (value != expected) unsupported(key, value, expected.dump(), origin);
}

std::string dims(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

}  // namespace

LLaDAConfig LLaDAConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ConfigError("config is not a JSON object", origin, kConfigHint);
  LLaDAConfig c;
  const std::string model_type = json_get<std::string>(j, "model_type", "llada", origin);
  if (model_type != "llada") unsupported("model_type", model_type, "\"llada\"", origin);

  // The architecture switches, with LLaDA's ModelConfig defaults where a key is absent.
  require_value(j, "block_type", "llama", "sequential", origin);
  require_value(j, "activation_type", "silu", "swiglu", origin);
  require_value(j, "layer_norm_type", "rms", "default", origin);
  require_value(j, "alibi", false, false, origin);
  require_value(j, "rope", true, false, origin);
  require_value(j, "yarn", false, false, origin);
  require_value(j, "include_bias", false, true, origin);
  require_value(j, "include_qkv_bias", false, false, origin);
  require_value(j, "weight_tying", false, true, origin);
  require_value(j, "attention_layer_norm", false, false, origin);
  require_value(j, "layer_norm_with_affine", true, true, origin);
  require_value(j, "block_group_size", 1, 1, origin);
  require_value(j, "clip_qkv", nullptr, nullptr, origin);
  // bias_for_layer_norm: null means "as include_bias" (checked false above).
  require_value(j, "bias_for_layer_norm", false, false, origin);

  c.d_model = json_require<int64_t>(j, "d_model", origin);
  c.n_layers = json_require<int64_t>(j, "n_layers", origin);
  c.n_heads = json_require<int64_t>(j, "n_heads", origin);
  const bool has_mqa = j.contains("multi_query_attention") && !j["multi_query_attention"].is_null();
  const bool mqa = json_get<bool>(j, "multi_query_attention", false, origin);
  if (j.contains("n_kv_heads") && !j["n_kv_heads"].is_null()) {
    c.n_kv_heads = json_get<int64_t>(j, "n_kv_heads", c.n_heads, origin);
    if (has_mqa && c.n_kv_heads != (mqa ? 1 : c.n_heads))
      throw ConfigError("keys 'multi_query_attention' and 'n_kv_heads' disagree", origin,
                        "set only n_kv_heads");
  } else {
    c.n_kv_heads = mqa ? 1 : c.n_heads;
  }
  const int64_t mlp_ratio = json_get<int64_t>(j, "mlp_ratio", 4, origin);
  c.mlp_hidden_size = json_get<int64_t>(j, "mlp_hidden_size", mlp_ratio * c.d_model, origin);
  c.vocab_size = json_require<int64_t>(j, "vocab_size", origin);
  c.embedding_size = json_get<int64_t>(j, "embedding_size", c.vocab_size, origin);
  c.max_sequence_length = json_get<int64_t>(j, "max_sequence_length", 1024, origin);
  c.rope_theta = json_get<double>(j, "rope_theta", 10000.0, origin);
  c.rms_norm_eps = json_get<double>(j, "rms_norm_eps", 1e-5, origin);
  c.rope_full_precision = json_get<bool>(j, "rope_full_precision", true, origin);
  c.input_emb_norm = json_get<bool>(j, "input_emb_norm", false, origin);
  c.scale_logits = json_get<bool>(j, "scale_logits", false, origin);
  c.mask_token_id = json_require<int64_t>(j, "mask_token_id", origin);
  c.eos_token_id = json_require<int64_t>(j, "eos_token_id", origin);
  c.pad_token_id = json_get<int64_t>(j, "pad_token_id", c.eos_token_id, origin);

  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0)
      throw ConfigError(
          "key '" + std::string(key) + "' must be positive, found " + std::to_string(v), origin,
          "fix the value in the config file");
  };
  positive("d_model", c.d_model);
  positive("n_layers", c.n_layers);
  positive("n_heads", c.n_heads);
  positive("n_kv_heads", c.n_kv_heads);
  positive("mlp_hidden_size", c.mlp_hidden_size);
  positive("vocab_size", c.vocab_size);
  positive("max_sequence_length", c.max_sequence_length);
  if (c.d_model % c.n_heads != 0 || c.head_dim() % 2 != 0)
    throw ConfigError("key 'd_model' (" + std::to_string(c.d_model) +
                          ") must be a multiple of n_heads (" + std::to_string(c.n_heads) +
                          ") with an even head size for RoPE",
                      origin, "fix d_model or n_heads");
  if (c.n_heads % c.n_kv_heads != 0)
    throw ConfigError("key 'n_kv_heads' (" + std::to_string(c.n_kv_heads) +
                          ") must divide n_heads (" + std::to_string(c.n_heads) + ")",
                      origin, "fix n_kv_heads");
  if (c.embedding_size < c.vocab_size)
    throw ConfigError("key 'embedding_size' (" + std::to_string(c.embedding_size) +
                          ") is smaller than vocab_size (" + std::to_string(c.vocab_size) + ")",
                      origin, "embedding_size must be at least vocab_size");
  if (!(c.rope_theta > 0) || !(c.rms_norm_eps > 0))
    throw ConfigError("keys 'rope_theta' and 'rms_norm_eps' must be positive", origin,
                      "fix the value in the config file");
  for (const auto& [key, id] : {std::pair<const char*, int64_t>{"mask_token_id", c.mask_token_id},
                                {"eos_token_id", c.eos_token_id}}) {
    if (id < 0 || id >= c.embedding_size)
      throw ConfigError("key '" + std::string(key) + "' (" + std::to_string(id) +
                            ") is outside the embedding table of " +
                            std::to_string(c.embedding_size),
                        origin, "fix the value in the config file");
  }
  return c;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> llada_parameter_shapes(
    const LLaDAConfig& c) {
  const std::string t = "model.transformer.";
  const int64_t d = c.d_model, kv = c.n_kv_heads * c.head_dim(), mlp = c.mlp_hidden_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  out.push_back({t + "wte.weight", {c.embedding_size, d}});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = t + "blocks." + std::to_string(i) + ".";
    out.push_back({b + "attn_norm.weight", {d}});
    out.push_back({b + "q_proj.weight", {d, d}});
    out.push_back({b + "k_proj.weight", {kv, d}});
    out.push_back({b + "v_proj.weight", {kv, d}});
    out.push_back({b + "attn_out.weight", {d, d}});
    out.push_back({b + "ff_norm.weight", {d}});
    out.push_back({b + "ff_proj.weight", {mlp, d}});
    out.push_back({b + "up_proj.weight", {mlp, d}});
    out.push_back({b + "ff_out.weight", {d, mlp}});
  }
  out.push_back({t + "ln_f.weight", {d}});
  out.push_back({t + "ff_out.weight", {c.embedding_size, d}});
  return out;
}

int64_t llada_parameter_count(const LLaDAConfig& c) {
  int64_t total = 0;
  for (const auto& [name, shape] : llada_parameter_shapes(c)) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    total += n;
  }
  return total;
}

int64_t LLaDAKVCache::length() const { return keys.empty() ? 0 : keys.front().size(2); }

LLaDAKVCache LLaDAKVCache::slice(int64_t start, int64_t end) const {
  const int64_t n = length();
  if (start < 0 || end < start || end > n)
    throw UsageError("KV cache slice [" + std::to_string(start) + ", " + std::to_string(end) +
                     ") is outside its " + std::to_string(n) + " positions");
  LLaDAKVCache out;
  for (size_t i = 0; i < keys.size(); ++i) {
    out.keys.push_back(keys[i].narrow(2, start, end - start));
    out.values.push_back(values[i].narrow(2, start, end - start));
  }
  return out;
}

LLaDALinearImpl::LLaDALinearImpl(int64_t in_features, int64_t out_features) {
  weight = register_parameter("weight", at::empty({out_features, in_features}), false);
}

at::Tensor LLaDALinearImpl::forward(const at::Tensor& x) { return at::linear(x, weight); }

LLaDAEmbeddingImpl::LLaDAEmbeddingImpl(int64_t num_embeddings, int64_t dim) {
  weight = register_parameter("weight", at::empty({num_embeddings, dim}), false);
}

at::Tensor LLaDAEmbeddingImpl::forward(const at::Tensor& ids) { return at::embedding(weight, ids); }

LLaDARMSNormImpl::LLaDARMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", at::ones({dim}), false);
}

at::Tensor LLaDARMSNormImpl::forward(const at::Tensor& x) {
  // In fp32 whatever the activation dtype, as LLaDA's RMSLayerNorm; the weight applies after.
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * normed.to(x.scalar_type());
}

LLaDARotary::LLaDARotary(int64_t head_dim, double theta, int64_t initial_positions)
    : head_dim_(head_dim), theta_(theta), initial_positions_(initial_positions) {}

std::pair<at::Tensor, at::Tensor> LLaDARotary::get(int64_t start, int64_t count,
                                                   const at::Device& device) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t needed = start + count;
  if (!cos_.defined() || cos_.size(0) < needed) {
    // inv_freq = 1 / theta^(arange(0, hd, 2) / hd); angle = position * inv_freq, all fp32; the
    // table covers max_sequence_length positions (or more when asked), as LLaDA's cache does.
    const int64_t n = std::max(needed, initial_positions_);
    const auto f32 = at::TensorOptions().dtype(at::kFloat);
    const at::Tensor exponent = at::arange(0, head_dim_, 2, f32) / head_dim_;
    const at::Tensor inv_freq = at::reciprocal(at::pow(theta_, exponent));
    const at::Tensor freqs = at::arange(n, f32).unsqueeze(1) * inv_freq.unsqueeze(0);
    const at::Tensor angles = at::cat({freqs, freqs}, -1);
    cos_ = angles.cos().to(device);
    sin_ = angles.sin().to(device);
  } else if (cos_.device() != device) {
    cos_ = cos_.to(device);
    sin_ = sin_.to(device);
  }
  return {cos_.narrow(0, start, count), sin_.narrow(0, start, count)};
}

namespace {

// NeoX layout: rotate_half(t) = cat(-t2, t1) over the two halves of head_dim.
at::Tensor apply_rope(const at::Tensor& t, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = t.size(-1) / 2;
  const at::Tensor rotated = at::cat({-t.narrow(-1, half, half), t.narrow(-1, 0, half)}, -1);
  return t * cos + rotated * sin;
}

}  // namespace

LLaDABlockImpl::LLaDABlockImpl(const LLaDAConfig& c)
    : n_heads_(c.n_heads),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim()),
      rope_full_precision_(c.rope_full_precision) {
  const int64_t d = c.d_model, kv = c.n_kv_heads * c.head_dim(), mlp = c.mlp_hidden_size;
  attn_norm_ = register_module("attn_norm", LLaDARMSNorm(d, c.rms_norm_eps));
  q_proj_ = register_module("q_proj", LLaDALinear(d, d));
  k_proj_ = register_module("k_proj", LLaDALinear(d, kv));
  v_proj_ = register_module("v_proj", LLaDALinear(d, kv));
  attn_out_ = register_module("attn_out", LLaDALinear(d, d));
  ff_norm_ = register_module("ff_norm", LLaDARMSNorm(d, c.rms_norm_eps));
  ff_proj_ = register_module("ff_proj", LLaDALinear(d, mlp));
  up_proj_ = register_module("up_proj", LLaDALinear(d, mlp));
  ff_out_ = register_module("ff_out", LLaDALinear(mlp, d));
}

at::Tensor LLaDABlockImpl::forward(const at::Tensor& x,
                                   const std::pair<at::Tensor, at::Tensor>& q_rope,
                                   const std::pair<at::Tensor, at::Tensor>& k_rope,
                                   const at::Tensor& bias, const at::Tensor& past_k,
                                   const at::Tensor& past_v, int64_t replace_start,
                                   at::Tensor* k_out, at::Tensor* v_out) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2);
  const at::Tensor h = attn_norm_(x);
  at::Tensor q = q_proj_(h).view({b, l, n_heads_, head_dim_}).transpose(1, 2);
  at::Tensor k = k_proj_(h).view({b, l, n_kv_heads_, head_dim_}).transpose(1, 2);
  at::Tensor v = v_proj_(h).view({b, l, n_kv_heads_, head_dim_}).transpose(1, 2);
  if (past_k.defined()) {
    if (replace_start >= 0) {
      const int64_t p = past_k.size(2), rest = p - replace_start - l;
      k = at::cat(
          {past_k.narrow(2, 0, replace_start), k, past_k.narrow(2, replace_start + l, rest)}, 2);
      v = at::cat(
          {past_v.narrow(2, 0, replace_start), v, past_v.narrow(2, replace_start + l, rest)}, 2);
    } else {
      k = at::cat({past_k, k}, 2);
      v = at::cat({past_v, v}, 2);
    }
  }
  if (k_out) *k_out = k;
  if (v_out) *v_out = v;

  // RoPE (fp32 when rope_full_precision), then back to the activation dtype.
  const auto dtype = q.scalar_type();
  const auto rope_dtype = rope_full_precision_ ? at::kFloat : dtype;
  auto rows = [&](const at::Tensor& table) {
    return table.to(rope_dtype).view({1, 1, table.size(0), table.size(1)});
  };
  q = apply_rope(q.to(rope_dtype), rows(q_rope.first), rows(q_rope.second)).to(dtype);
  at::Tensor kr = apply_rope(k.to(rope_dtype), rows(k_rope.first), rows(k_rope.second)).to(dtype);
  at::Tensor vr = v;
  if (n_kv_heads_ != n_heads_) {
    // kv head j serves query heads j*g .. j*g+g-1.
    const int64_t g = n_heads_ / n_kv_heads_;
    kr = kr.repeat_interleave(g, 1);
    vr = vr.repeat_interleave(g, 1);
  }
  const c10::optional<at::Tensor> mask =
      bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt;
  const at::Tensor att = kernels::attention(q, kr, vr, mask, /*causal=*/false);
  at::Tensor out = x + attn_out_(att.transpose(1, 2).reshape({b, l, d}));

  const at::Tensor h2 = ff_norm_(out);
  return out + ff_out_(at::silu(ff_proj_(h2)) * up_proj_(h2));
}

LLaDATransformerImpl::LLaDATransformerImpl(const LLaDAConfig& c)
    : config_(c),
      rotary_(std::make_shared<LLaDARotary>(c.head_dim(), c.rope_theta, c.max_sequence_length)) {
  wte_ = register_module("wte", LLaDAEmbedding(c.embedding_size, c.d_model));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) blocks_->push_back(LLaDABlock(c));
  ln_f_ = register_module("ln_f", LLaDARMSNorm(c.d_model, c.rms_norm_eps));
  ff_out_ = register_module("ff_out", LLaDALinear(c.d_model, c.embedding_size));
}

LLaDAOutput LLaDATransformerImpl::forward(const at::Tensor& input_ids,
                                          const LLaDAForwardOptions& options) {
  if (input_ids.dim() != 2)
    throw UsageError("LLaDA input_ids must be [batch, length], got " + dims(input_ids));
  const int64_t b = input_ids.size(0), l = input_ids.size(1);
  if (b == 0 || l == 0) throw UsageError("LLaDA input_ids " + dims(input_ids) + " is empty");
  const auto dev = wte_->weight.device();
  const auto dtype = wte_->weight.scalar_type();
  const at::Tensor ids = input_ids.to(dev, at::kLong);

  const LLaDAKVCache* past = options.past && !options.past->empty() ? options.past : nullptr;
  const int64_t p = past ? past->length() : 0;
  if (past) {
    if (int64_t(past->keys.size()) != config_.n_layers || past->values.size() != past->keys.size())
      throw UsageError("KV cache has " + std::to_string(past->keys.size()) + " layers, the model " +
                       std::to_string(config_.n_layers));
    const std::vector<int64_t> want = {b, config_.n_kv_heads, p, config_.head_dim()};
    for (size_t i = 0; i < past->keys.size(); ++i)
      if (past->keys[i].sizes() != at::IntArrayRef(want) ||
          past->values[i].sizes() != at::IntArrayRef(want))
        throw UsageError("KV cache layer " + std::to_string(i) + " has keys " +
                         dims(past->keys[i]) + " / values " + dims(past->values[i]) +
                         ", expected [" + std::to_string(b) + ", " +
                         std::to_string(config_.n_kv_heads) + ", " + std::to_string(p) + ", " +
                         std::to_string(config_.head_dim()) + "]");
  }
  int64_t q_start = p, lk = p + l;
  if (options.replace_start >= 0) {
    if (!past) throw UsageError("replace_start needs a KV cache (LLaDAForwardOptions::past)");
    if (options.replace_start + l > p)
      throw UsageError("replace range [" + std::to_string(options.replace_start) + ", " +
                       std::to_string(options.replace_start + l) + ") is outside the cache of " +
                       std::to_string(p) + " positions");
    q_start = options.replace_start;
    lk = p;
  }

  at::Tensor bias;
  if (options.attention_mask) {
    const at::Tensor& m = *options.attention_mask;
    if (m.dim() != 2 || m.size(0) != b || m.size(1) != lk)
      throw UsageError("attention_mask must be [batch, keys] = [" + std::to_string(b) + ", " +
                       std::to_string(lk) + "], got " + dims(m));
    // Padding keys get the dtype's lowest value, as LLaDA's (1 - mask) * finfo.min.
    const double lowest = dtype == at::kHalf       ? -65504.0
                          : dtype == at::kBFloat16 ? -3.3895313892515355e38
                          : dtype == at::kDouble   ? std::numeric_limits<double>::lowest()
                                                   : double(std::numeric_limits<float>::lowest());
    bias = at::zeros({b, 1, 1, lk}, at::TensorOptions().dtype(dtype).device(dev))
               .masked_fill(m.to(dev).eq(0).view({b, 1, 1, lk}), lowest);
  }

  const auto k_rope = rotary_->get(0, lk, dev);
  const std::pair<at::Tensor, at::Tensor> q_rope = {k_rope.first.narrow(0, q_start, l),
                                                    k_rope.second.narrow(0, q_start, l)};

  at::Tensor x = wte_(ids);
  if (config_.input_emb_norm) x = x * std::sqrt(double(config_.d_model));
  LLaDAOutput out;
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    at::Tensor k, v;
    x = blocks_[size_t(i)]->as<LLaDABlock>()->forward(
        x, q_rope, k_rope, bias, past ? past->keys[size_t(i)] : at::Tensor(),
        past ? past->values[size_t(i)] : at::Tensor(), options.replace_start, &k, &v);
    if (options.return_cache) {
      out.cache.keys.push_back(k);
      out.cache.values.push_back(v);
    }
  }
  out.logits = ff_out_(ln_f_(x));
  if (config_.scale_logits) out.logits.mul_(1.0 / std::sqrt(double(config_.d_model)));
  return out;
}

LLaDAModelLMImpl::LLaDAModelLMImpl(const LLaDAConfig& c) : config_(c) {
  // A plain container named "model" so that names read model.transformer.*.
  auto model = register_module("model", std::make_shared<torch::nn::Module>("LLaDAModel"));
  transformer_ = model->register_module("transformer", LLaDATransformer(c));
}

at::Tensor LLaDAModelLMImpl::forward(const at::Tensor& input_ids,
                                     const c10::optional<at::Tensor>& attention_mask) {
  LLaDAForwardOptions options;
  options.attention_mask = attention_mask;
  return transformer_->forward(input_ids, options).logits;
}

LLaDAOutput LLaDAModelLMImpl::forward_with_cache(const at::Tensor& input_ids,
                                                 const LLaDAForwardOptions& options) {
  return transformer_->forward(input_ids, options);
}

void llada_randomize_parameters(LLaDAModelLM& model, const c10::Device& device, c10::ScalarType dtype,
                          uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);  // CPU and every CUDA device's default generator
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  for (auto& p : model->named_parameters(true)) {
    const std::string& name = p.key();
    const bool norm = name.find("norm") != std::string::npos || name.find("ln_f") != std::string::npos;
    at::Tensor t = norm ? at::ones(p.value().sizes(), opts)
                        : at::empty(p.value().sizes(), opts).normal_(0.0, 0.02);
    p.value().set_data(t);
  }
  model->to(device, dtype);  // anything not a parameter (none today) follows
  model->eval();
}

LLaDAModelLM load_llada(const ComponentInfo& component) {
  const std::string origin = (component.dir / "config.json").string();
  const LLaDAConfig config = LLaDAConfig::from_json(component.config, origin);
  const StateDict weights =
      open_weights_for_loading(component.weight_files, component.dir.string());
  LLaDAModelLM model(config);
  load_state_dict_strict(*model, weights, component.dir.string());
  model->eval();
  return model;
}

}  // namespace studio
