// The CLIP vision tower (transformers' CLIPVisionModel, under `vision_model.*` of a CLIPModel)
// as Point-E's ImageCLIP.embed_images_grid uses it: patch embedding, class + position
// embeddings, pre-LayerNorm, the encoder, and the last layer's patch tokens as a latent grid
// [B, hidden, (image/patch)^2] (no post-LayerNorm, no projection). Plus CLIP's preprocessing.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "text/clip_text_model.h"

namespace studio {

struct ClipVisionConfig {
  int64_t hidden_size = 1024;  // ViT-L/14
  int64_t intermediate_size = 4096;
  int64_t num_hidden_layers = 24;
  int64_t num_attention_heads = 16;
  int64_t image_size = 224;
  int64_t patch_size = 14;
  int64_t num_channels = 3;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";

  // Reads a CLIPVisionConfig, or a CLIPConfig's `vision_config`.
  static ClipVisionConfig from_json(const nlohmann::json& j, const std::string& origin);
  int64_t grid_tokens() const { return (image_size / patch_size) * (image_size / patch_size); }
};

class ClipVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipVisionEmbeddingsImpl(const ClipVisionConfig& c);
  at::Tensor forward(const at::Tensor& pixels);  // [B, 3, S, S] -> [B, 1 + N, D]

 private:
  at::Tensor class_embedding_;
  torch::nn::Conv2d patch_embedding_{nullptr};
  torch::nn::Embedding position_embedding_{nullptr};
};
TORCH_MODULE(ClipVisionEmbeddings);

// Registered as "vision_model" in ClipVisionModel so names match transformers' state dict.
// (HF spells the pre-encoder norm "pre_layrnorm".)
class ClipVisionTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipVisionTransformerImpl(const ClipVisionConfig& c);
  // The encoder's last hidden state [B, 1 + N, D] (class token first), before post_layernorm.
  at::Tensor forward(const at::Tensor& pixels);

 private:
  ClipVisionConfig config_;
  ClipVisionEmbeddings embeddings_{nullptr};
  torch::nn::LayerNorm pre_layrnorm_{nullptr}, post_layernorm_{nullptr};
  ClipEncoder encoder_{nullptr};
};
TORCH_MODULE(ClipVisionTransformer);

class ClipVisionModelImpl : public torch::nn::Module {
 public:
  explicit ClipVisionModelImpl(const ClipVisionConfig& c);
  // Point-E's embed_images_grid: the last layer's patch tokens, [B, D, N] (N = 256 for ViT-L/14).
  at::Tensor grid(const at::Tensor& pixels);
  const ClipVisionConfig& config() const { return config_; }

 private:
  ClipVisionConfig config_;
  ClipVisionTransformer vision_model_{nullptr};
};
TORCH_MODULE(ClipVisionModel);

// Loads the vision_model.* tensors of a CLIPModel / CLIPVisionModel folder strictly (text tower,
// projections and logit_scale ignored); WeightsError lists the subset's missing, unexpected and
// mis-shaped names. Eval mode, fp32 CPU.
ClipVisionModel load_clip_vision_model(const std::filesystem::path& dir);

// CLIP's preprocessing of one RGB(A) 8-bit image [H, W, 3|4] (uint8, row-major, top row first):
// resize the short side to `size` (bicubic, antialiased), centre crop size x size, scale to
// [0, 1], normalise with CLIP's mean / std. Returns [1, 3, size, size] fp32.
at::Tensor clip_preprocess(const at::Tensor& rgb_u8, int64_t size = 224);

}  // namespace studio
