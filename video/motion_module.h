// AnimateDiff motion modules (diffusers 0.29 MotionAdapter / TransformerTemporalModel): temporal
// transformers that mix the frames of video latents folded into the batch, with module names equal
// to diffusers' state_dict keys; original AnimateDiff (mm_*.ckpt) names load through a mapping.
#pragma once

#include <ATen/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "image/blocks.h"

namespace studio::video {

// MotionAdapter's config.json (diffusers 0.29 keys; motion_transformer_layers_per_block from later
// releases is accepted as an int).
struct MotionAdapterConfig {
  std::vector<int64_t> block_out_channels;
  int64_t motion_layers_per_block = 2;  // per down block; up blocks have one more
  int64_t motion_mid_block_layers_per_block = 1;
  int64_t motion_num_attention_heads = 8;
  int64_t motion_norm_num_groups = 32;
  int64_t motion_max_seq_length = 32;
  int64_t motion_transformer_layers_per_block = 1;
  bool use_motion_mid_block = true;

  // ConfigError naming the key and `origin` for invalid or unsupported values (e.g. PIA's
  // conv_in_channels).
  static MotionAdapterConfig from_json(const nlohmann::json& config, const std::string& origin);
};

// diffusers' SinusoidalPositionalEmbedding table [1, max_seq_length, dim]: pe[p, 2i] =
// sin(p · exp(-2i · ln(10000) / dim)), pe[p, 2i+1] = cos(same). dim must be even.
at::Tensor sinusoidal_position_table(int64_t max_seq_length, int64_t dim);

// BasicTransformerBlock as TransformerTemporalModel builds it (double self-attention, sinusoidal
// positional embeddings, GEGLU): x += attn1(pe(norm1(x))); x += attn2(pe(norm2(x)));
// x += ff(norm3(x)). Input [N, F, dim]: a sequence over frames per pixel.
class TemporalTransformerBlockImpl : public torch::nn::Module {
 public:
  TemporalTransformerBlockImpl(int64_t dim, int64_t heads, int64_t max_seq_length);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
  image::Attention attn1_{nullptr}, attn2_{nullptr};
  image::FeedForward ff_{nullptr};
  std::shared_ptr<torch::nn::Module> pos_embed_;  // holds the buffer `pe` [1, max_seq_length, dim]
  at::Tensor pe_;
};
TORCH_MODULE(TemporalTransformerBlock);

// One motion module (TransformerTemporalModel): GroupNorm (eps 1e-6) over [B, C, F, H, W]
// (statistics over all frames), per pixel proj_in → transformer_blocks → proj_out, plus the input.
class MotionModuleImpl : public torch::nn::Module {
 public:
  MotionModuleImpl(int64_t channels, int64_t heads, int64_t groups, int64_t max_seq_length,
                   int64_t num_layers = 1);
  // x [B·F, C, H, W], frames b-major (row b·F + f). Returns the same shape.
  at::Tensor forward(const at::Tensor& x, int64_t num_frames);
  int64_t channels() const { return channels_; }
  int64_t max_seq_length() const { return max_seq_length_; }

 private:
  int64_t channels_, max_seq_length_;
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Linear proj_in_{nullptr}, proj_out_{nullptr};
  std::vector<TemporalTransformerBlock> blocks_;
};
TORCH_MODULE(MotionModule);

// The adapter: down_blocks.N.motion_modules.M (motion_layers_per_block per down block),
// mid_block.motion_modules.M (when use_motion_mid_block), up_blocks.N.motion_modules.M
// (motion_layers_per_block + 1 each; up block N has the channels of down block n-1-N).
class MotionAdapterImpl : public torch::nn::Module {
 public:
  explicit MotionAdapterImpl(const MotionAdapterConfig& config);
  const MotionAdapterConfig& config() const { return config_; }
  // The module after layer `layer` of down/up block `block`, or of the mid block (nullptr there
  // without a motion mid block). UsageError when out of range.
  MotionModule& down(std::size_t block, std::size_t layer);
  MotionModule& up(std::size_t block, std::size_t layer);
  MotionModule* mid(std::size_t layer);

 private:
  MotionAdapterConfig config_;
  std::vector<std::vector<MotionModule>> down_, up_;
  std::vector<MotionModule> mid_;
};
TORCH_MODULE(MotionAdapter);

// diffusers' name for an original AnimateDiff motion-module name (mm_sd_v15*.ckpt converted to
// safetensors): `.temporal_transformer` dropped, attention_blocks.0/1 → attn1/attn2, norms.0/1 →
// norm1/norm2, ff_norm → norm3, attention_blocks.0.pos_encoder.pe → pos_embed.pe. Names that are
// already diffusers' pass through unchanged. std::nullopt for a name diffusers drops (the second
// attention block's copy of the position table, which diffusers shares in pos_embed).
std::optional<std::string> diffusers_motion_name(const std::string& name);

// Loads `weights` into `adapter` strictly, names mapped by diffusers_motion_name (so both layouts
// load): WeightsError naming `origin` and listing missing, unexpected and mis-shaped names.
void load_motion_adapter_weights(MotionAdapterImpl& adapter, const StateDict& weights,
                                 const std::string& origin);

// Builds from `dir`/config.json (a MotionAdapter folder: config.json +
// diffusion_pytorch_model.safetensors) and loads strictly. fp32 on the CPU.
MotionAdapter load_motion_adapter(const std::filesystem::path& dir);

}  // namespace studio::video
