// The CLIP text encoder (transformers' CLIPTextModel) that conditions Stable Diffusion: token and
// position embeddings, pre-LayerNorm transformer layers with a causal mask, final LayerNorm,
// pooled output at the first end-of-text token. Built from config.json; module names equal the
// checkpoint keys (text_model.encoder.layers.N.self_attn.q_proj.weight, ...).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <string>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"

namespace studio {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t max_position_embeddings = 77;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // quick_gelu | gelu
  int64_t eos_token_id = 49407;           // 2 means "legacy": pool at argmax(input_ids)

  static ClipTextConfig from_json(const nlohmann::json& j, const std::string& origin);
};

class ClipAttentionImpl : public torch::nn::Module {
 public:
  explicit ClipAttentionImpl(const ClipTextConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);

 private:
  int64_t heads_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr};
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  explicit ClipMlpImpl(const ClipTextConfig& c);
  at::Tensor forward(const at::Tensor& x);

 private:
  bool quick_gelu_;
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(ClipMlp);

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipTextConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask);

 private:
  ClipAttention self_attn_{nullptr};
  torch::nn::LayerNorm layer_norm1_{nullptr}, layer_norm2_{nullptr};
  ClipMlp mlp_{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

struct ClipTextOutput {
  at::Tensor last_hidden_state;  // [B, L, D] after the final LayerNorm (or the clip-skip layer's)
  at::Tensor pooler_output;      // [B, D]
};

class ClipTextEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipTextEmbeddingsImpl(const ClipTextConfig& c);
  at::Tensor forward(const at::Tensor& input_ids);

 private:
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderImpl(const ClipTextConfig& c);
  // Runs the first `num_layers` layers.
  at::Tensor forward(at::Tensor x, const at::Tensor& mask, int64_t num_layers);

 private:
  torch::nn::ModuleList layers_{nullptr};
};
TORCH_MODULE(ClipEncoder);

// Registered as "text_model" inside ClipTextModel so names match transformers' state dict.
class ClipTextTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipTextTransformerImpl(const ClipTextConfig& c);
  // clip_skip = k > 0 takes the hidden state k layers before the last (then the final LayerNorm),
  // as diffusers' encode_prompt(clip_skip=k) does.
  ClipTextOutput forward(const at::Tensor& input_ids, int clip_skip = 0);

 private:
  ClipTextConfig config_;
  ClipTextEmbeddings embeddings_{nullptr};
  ClipEncoder encoder_{nullptr};
  torch::nn::LayerNorm final_layer_norm_{nullptr};
};
TORCH_MODULE(ClipTextTransformer);

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& c);
  ClipTextOutput forward(const at::Tensor& input_ids, int clip_skip = 0) {
    return text_model_->forward(input_ids, clip_skip);
  }
  const ClipTextConfig& config() const { return config_; }

 private:
  ClipTextConfig config_;
  ClipTextTransformer text_model_{nullptr};
};
TORCH_MODULE(ClipTextModel);

// Builds from the component's config.json and loads its weights strictly.
ClipTextModel load_clip_text_model(const ComponentInfo& component);

}  // namespace studio
