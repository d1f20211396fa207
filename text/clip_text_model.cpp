#include "text/clip_text_model.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"
#include "kernels/attention.h"

namespace studio {

ClipTextConfig ClipTextConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  ClipTextConfig c;
  // CLIPConfig (text+vision) nests the text part under text_config.
  const nlohmann::json& t = j.contains("text_config") && j["text_config"].is_object()
                                ? j["text_config"]
                                : j;
  c.vocab_size = json_get<int64_t>(t, "vocab_size", c.vocab_size, origin);
  c.hidden_size = json_get<int64_t>(t, "hidden_size", c.hidden_size, origin);
  c.intermediate_size = json_get<int64_t>(t, "intermediate_size", c.intermediate_size, origin);
  c.num_hidden_layers = json_get<int64_t>(t, "num_hidden_layers", c.num_hidden_layers, origin);
  c.num_attention_heads =
      json_get<int64_t>(t, "num_attention_heads", c.num_attention_heads, origin);
  c.max_position_embeddings =
      json_get<int64_t>(t, "max_position_embeddings", c.max_position_embeddings, origin);
  c.layer_norm_eps = json_get<double>(t, "layer_norm_eps", c.layer_norm_eps, origin);
  c.hidden_act = json_get<std::string>(t, "hidden_act", c.hidden_act, origin);
  c.eos_token_id = json_get<int64_t>(t, "eos_token_id", c.eos_token_id, origin);
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
    throw ConfigError("hidden_act '" + c.hidden_act + "' is not supported", origin,
                      "CLIP text encoders use quick_gelu or gelu");
  if (c.hidden_size <= 0 || c.num_attention_heads <= 0 ||
      c.hidden_size % c.num_attention_heads != 0)
    throw ConfigError("hidden_size " + std::to_string(c.hidden_size) +
                          " is not divisible by num_attention_heads " +
                          std::to_string(c.num_attention_heads),
                      origin);
  if (c.num_hidden_layers <= 0 || c.vocab_size <= 0 || c.max_position_embeddings <= 0 ||
      c.intermediate_size <= 0)
    throw ConfigError("sizes must be positive", origin);
  return c;
}

ClipAttentionImpl::ClipAttentionImpl(const ClipTextConfig& c) : heads_(c.num_attention_heads) {
  const int64_t d = c.hidden_size;
  k_proj_ = register_module("k_proj", torch::nn::Linear(d, d));
  v_proj_ = register_module("v_proj", torch::nn::Linear(d, d));
  q_proj_ = register_module("q_proj", torch::nn::Linear(d, d));
  out_proj_ = register_module("out_proj", torch::nn::Linear(d, d));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads_;
  auto split = [&](const at::Tensor& t) { return t.view({b, l, heads_, hd}).transpose(1, 2); };
  at::Tensor o = kernels::attention(split(q_proj_(x)), split(k_proj_(x)), split(v_proj_(x)), mask);
  return out_proj_(o.transpose(1, 2).reshape({b, l, d}));
}

ClipMlpImpl::ClipMlpImpl(const ClipTextConfig& c) : quick_gelu_(c.hidden_act == "quick_gelu") {
  fc1_ = register_module("fc1", torch::nn::Linear(c.hidden_size, c.intermediate_size));
  fc2_ = register_module("fc2", torch::nn::Linear(c.intermediate_size, c.hidden_size));
}

at::Tensor ClipMlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = fc1_(x);
  h = quick_gelu_ ? h * at::sigmoid(1.702 * h) : at::gelu(h);
  return fc2_(h);
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipTextConfig& c) {
  auto ln = [&] {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
  };
  self_attn_ = register_module("self_attn", ClipAttention(c));
  layer_norm1_ = register_module("layer_norm1", ln());
  mlp_ = register_module("mlp", ClipMlp(c));
  layer_norm2_ = register_module("layer_norm2", ln());
}

at::Tensor ClipEncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& mask) {
  at::Tensor h = x + self_attn_(layer_norm1_(x), mask);
  return h + mlp_(layer_norm2_(h));
}

ClipTextEmbeddingsImpl::ClipTextEmbeddingsImpl(const ClipTextConfig& c) {
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  position_embedding_ = register_module(
      "position_embedding", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
}

at::Tensor ClipTextEmbeddingsImpl::forward(const at::Tensor& input_ids) {
  const at::Tensor positions = at::arange(input_ids.size(1), input_ids.options());
  return token_embedding_(input_ids) + position_embedding_(positions).unsqueeze(0);
}

ClipEncoderImpl::ClipEncoderImpl(const ClipTextConfig& c) {
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_->push_back(ClipEncoderLayer(c));
}

at::Tensor ClipEncoderImpl::forward(at::Tensor x, const at::Tensor& mask, int64_t num_layers) {
  for (int64_t i = 0; i < num_layers; ++i) x = layers_[i]->as<ClipEncoderLayer>()->forward(x, mask);
  return x;
}

ClipTextTransformerImpl::ClipTextTransformerImpl(const ClipTextConfig& c) : config_(c) {
  embeddings_ = register_module("embeddings", ClipTextEmbeddings(c));
  encoder_ = register_module("encoder", ClipEncoder(c));
  final_layer_norm_ = register_module(
      "final_layer_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

ClipTextOutput ClipTextTransformerImpl::forward(const at::Tensor& input_ids, int clip_skip) {
  if (input_ids.dim() != 2)
    throw UsageError("CLIP input_ids must be [batch, length], got " +
                     std::to_string(input_ids.dim()) + " dims");
  const int64_t b = input_ids.size(0), l = input_ids.size(1);
  if (l > config_.max_position_embeddings)
    throw UsageError("sequence of " + std::to_string(l) + " tokens exceeds the encoder's " +
                     std::to_string(config_.max_position_embeddings) + " positions");
  if (clip_skip < 0 || clip_skip >= config_.num_hidden_layers)
    throw UsageError("clip_skip must be in [0, " + std::to_string(config_.num_hidden_layers) + ")");
  const auto dev = final_layer_norm_->weight.device();
  const at::Tensor ids = input_ids.to(dev, at::kLong);
  const at::Tensor causal =
      at::ones({l, l}, at::TensorOptions().dtype(at::kBool).device(dev)).tril();
  at::Tensor h = encoder_(embeddings_(ids), causal, config_.num_hidden_layers - clip_skip);
  h = final_layer_norm_(h);

  // Pool at the first end-of-text token (legacy configs with eos id 2: at argmax of the ids).
  const at::Tensor idx = config_.eos_token_id == 2
                             ? ids.argmax(-1)
                             : (ids == config_.eos_token_id).to(at::kInt).argmax(-1);
  const at::Tensor pooled = h.index({at::arange(b, idx.options()), idx});
  return {h, pooled};
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& c) : config_(c) {
  text_model_ = register_module("text_model", ClipTextTransformer(c));
}

ClipTextModel load_clip_text_model(const ComponentInfo& component) {
  const std::string origin = (component.dir / "config.json").string();
  const ClipTextConfig config = ClipTextConfig::from_json(component.config, origin);
  const StateDict weights =
      open_weights_for_loading(component.weight_files, component.dir.string());
  ClipTextModel model(config);
  load_state_dict_strict(*model, weights, component.dir.string());
  model->eval();
  return model;
}

}  // namespace studio
