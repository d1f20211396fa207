// OpenAI Point-E's networks (github.com/openai/point-e, point_e/models): the point diffusion
// transformers (base text-vector / image-grid, upsampler) and the cross-attention SDF model, built
// from Point-E's `model_config` and loaded strictly; module names equal the state_dict keys.
#pragma once

#include <ATen/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"

namespace studio::pointe {

// Which of Point-E's classes a config names.
enum class ModelKind {
  PointDiffusion,     // PointDiffusionTransformer (unconditional)
  ClipVector,         // CLIPImagePointDiffusionTransformer (CLIP vector, token_cond or added)
  ClipGrid,           // CLIPImageGridPointDiffusionTransformer (CLIP latent grid tokens)
  ClipGridUpsample,   // CLIPImageGridUpsamplePointDiffusionTransformer (+ low-res points)
  CrossAttentionSdf,  // CrossAttentionPointCloudSDFModel
};

// Point-E's `model_config` dict (point_e/models/configs.py MODEL_CONFIGS). CLIP sizes are those of
// ViT-L/14, hard-wired in Point-E (vector 768, grid 1024 x 16x16).
struct ModelConfig {
  ModelKind kind = ModelKind::PointDiffusion;
  std::string name;
  int64_t width = 512;
  int64_t layers = 12;
  int64_t heads = 8;
  int64_t n_ctx = 1024;
  int64_t input_channels = 3;
  int64_t output_channels = 3;
  bool time_token_cond = false;
  bool token_cond = false;  // ClipVector: the CLIP vector is a token (else added to every point)
  int64_t cond_ctx = 1024;  // upsampler: number of low-res points
  std::vector<double> channel_scales, channel_biases;  // upsampler low-res scaling (may be empty)
  int64_t clip_feature_dim = 768;
  int64_t clip_grid_feature_dim = 1024;
  int64_t clip_grid_size = 16;
  // CrossAttentionSdf
  int64_t encoder_layers = 12, encoder_heads = 8, decoder_layers = 4, decoder_heads = 8;

  // Reads `model_config`; unknown class names / keys are a ConfigError naming `origin`.
  static ModelConfig from_json(const nlohmann::json& model_config, const std::string& origin);
  bool is_diffusion() const { return kind != ModelKind::CrossAttentionSdf; }
};

// Named intermediate outputs for parity tests ("time_embed", "backbone.resblocks.0", ...).
using Activations = std::map<std::string, at::Tensor>;

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(int64_t width);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Linear c_fc_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE(Mlp);

// Self-attention with Point-E's per-head interleaved q|k|v layout.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x);

 private:
  int64_t heads_;
  torch::nn::Linear c_qkv_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE(SelfAttention);

class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x);

 private:
  SelfAttention attn_{nullptr};
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(ResidualBlock);

// `Transformer`: a stack of residual self-attention blocks under `resblocks`.
class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(int64_t width, int64_t layers, int64_t heads);
  // Records each block's output as "<prefix>resblocks.<i>" when `acts` is given.
  at::Tensor forward(at::Tensor x, Activations* acts = nullptr, const std::string& prefix = "");

 private:
  std::vector<ResidualBlock> blocks_;
};
TORCH_MODULE(Transformer);

// Cross-attention of queries x onto data (c_q, c_kv with per-head interleaved k|v, c_proj).
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& data);

 private:
  int64_t heads_;
  torch::nn::Linear c_q_{nullptr}, c_kv_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE(CrossAttention);

class CrossBlockImpl : public torch::nn::Module {
 public:
  CrossBlockImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& data);

 private:
  CrossAttention attn_{nullptr};
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr}, ln_3_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(CrossBlock);

// `SimplePerceiver`: cross-attention blocks only.
class PerceiverImpl : public torch::nn::Module {
 public:
  PerceiverImpl(int64_t width, int64_t layers, int64_t heads);
  at::Tensor forward(at::Tensor x, const at::Tensor& data, Activations* acts = nullptr,
                     const std::string& prefix = "");

 private:
  std::vector<CrossBlock> blocks_;
};
TORCH_MODULE(Perceiver);

// Point-E's sinusoidal timestep embedding ([cos, sin], fp32 frequencies), [B] -> [B, dim].
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period = 10000.0);

// The point diffusion transformers. Inputs: x [B, C, N] (scaled space), t [B] int64;
// `embeddings` the CLIP vector [B, 768] (ClipVector) or latent grid [B, 1024, 256] (ClipGrid*;
// undefined = zeros, Point-E's unconditional upsampler); `low_res` [B, C, cond_ctx] unscaled
// points (upsampler). Returns [B, output_channels, N].
class PointDiffusionTransformerImpl : public torch::nn::Module {
 public:
  explicit PointDiffusionTransformerImpl(const ModelConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& embeddings = {},
                     const at::Tensor& low_res = {}, Activations* acts = nullptr);
  const ModelConfig& config() const { return config_; }

 private:
  at::Tensor embed_clip(const at::Tensor& embeddings, int64_t batch, Activations* acts);

  ModelConfig config_;
  Mlp time_embed_{nullptr};
  torch::nn::LayerNorm ln_pre_{nullptr}, ln_post_{nullptr};
  Transformer backbone_{nullptr};
  torch::nn::Linear input_proj_{nullptr}, output_proj_{nullptr};
  torch::nn::Linear clip_vec_embed_{nullptr};       // ClipVector: clip_embed
  torch::nn::Sequential clip_grid_embed_{nullptr};  // ClipGrid*: clip_embed.{0: LN, 1: Linear}
  torch::nn::Linear cond_point_proj_{nullptr};      // upsampler
  at::Tensor channel_scales_, channel_biases_;      // upsampler buffers (may be undefined)
};
TORCH_MODULE(PointDiffusionTransformer);

// CrossAttentionPointCloudSDFModel: a transformer encodes the cloud [B, 3, N] into latents
// [B, N, W]; query points [B, 3, M] cross-attend to them; returns the SDF [B, M].
class PointCloudSdfModelImpl : public torch::nn::Module {
 public:
  explicit PointCloudSdfModelImpl(const ModelConfig& config);
  at::Tensor encode(const at::Tensor& point_clouds, Activations* acts = nullptr);
  at::Tensor predict(const at::Tensor& queries, const at::Tensor& latents,
                     Activations* acts = nullptr);
  at::Tensor forward(const at::Tensor& queries, const at::Tensor& point_clouds) {
    return predict(queries, encode(point_clouds));
  }
  const ModelConfig& config() const { return config_; }

 private:
  ModelConfig config_;
  torch::nn::Linear encoder_input_proj_{nullptr}, decoder_input_proj_{nullptr};
  Transformer encoder_{nullptr};
  Perceiver decoder_{nullptr};
  torch::nn::LayerNorm ln_post_{nullptr};
  torch::nn::Linear output_proj_{nullptr};
};
TORCH_MODULE(PointCloudSdfModel);

// Loads a Point-E model folder (config.json with `model_config` + model.safetensors) strictly
// (every name and shape must match), in eval mode, fp32 CPU. ConfigError if it is the other kind.
PointDiffusionTransformer load_diffusion_model(const ComponentInfo& component);
PointCloudSdfModel load_sdf_model(const ComponentInfo& component);
// The single component of a Point-E model folder.
ComponentInfo pointe_component(const std::filesystem::path& dir);

}  // namespace studio::pointe
