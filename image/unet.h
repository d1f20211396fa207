// UNet2DConditionModel (diffusers 0.29 semantics) for Stable Diffusion 1.x/2.x-style checkpoints:
// built only from the component's config.json, module names equal to diffusers' state_dict keys so
// diffusion_pytorch_model.safetensors loads strictly by name. Config values this port does not
// implement (SDXL's addition embeddings, class embeddings, other block types) are a ConfigError
// that names the key, never a silently different network.
#pragma once

#include <ATen/Tensor.h>
#include <c10/util/Optional.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "image/blocks.h"

namespace studio::image {

// The subset of diffusers' UNet2DConditionModel config this port supports, with per-block lists
// already expanded (an int in the JSON becomes one value per down block).
struct UNet2DConditionConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  std::vector<std::string> down_block_types;  // DownBlock2D | CrossAttnDownBlock2D
  std::string mid_block_type;                 // UNetMidBlock2DCrossAttn | UNetMidBlock2D | ""
  std::vector<std::string> up_block_types;    // UpBlock2D | CrossAttnUpBlock2D
  std::vector<int64_t> block_out_channels;
  std::vector<int64_t> layers_per_block;  // per down block
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  Activation act_fn = Activation::kSiLU;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  std::vector<int64_t> cross_attention_dim;           // per down block
  std::vector<int64_t> transformer_layers_per_block;  // per down block
  // Heads per down block: num_attention_heads, else the legacy attention_head_dim (which in
  // diffusers' UNet2DConditionModel means the number of heads). Head width = channels / heads.
  std::vector<int64_t> num_attention_heads;
  bool use_linear_projection = false;
  bool upcast_attention = false;
  int64_t time_embedding_dim = 0;  // resolved: time_embedding_dim or 4 * block_out_channels[0]
  bool has_time_embedding_act = false;
  Activation time_embedding_act = Activation::kSiLU;
  bool has_timestep_post_act = false;
  Activation timestep_post_act = Activation::kSiLU;
  int64_t time_cond_proj_dim = 0;  // 0: none
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;
  int64_t sample_size = 0;  // informative (latent size the model was trained at)

  // ConfigError naming the key and `origin` (the config file) for invalid or unsupported values.
  static UNet2DConditionConfig from_json(const nlohmann::json& config, const std::string& origin);
};

// Where UNetExtraInputs::after_layer runs: after layer `layer` (its resnet, then its attention when
// the block has one) of down or up block `block`, before the skip is kept; in the cross-attention
// mid block after attention `layer`, before the next resnet (block 0). This is where AnimateDiff's
// UNetMotionModel puts its motion modules (video/unet_motion.h).
enum class UNetPart { kDown, kMid, kUp };
struct UNetLayerSite {
  UNetPart part = UNetPart::kDown;
  std::size_t block = 0;
  std::size_t layer = 0;
};
// Returns the hidden states that continue through the UNet (the input unchanged for a no-op).
using UNetLayerHook = std::function<at::Tensor(const UNetLayerSite&, const at::Tensor&)>;

// Optional inputs of the UNet forward beyond (sample, timestep, text embeddings).
struct UNetExtraInputs {
  // [B, Lk]: 1 keeps a text token, 0 drops it (turned into a -10000 bias as diffusers does).
  at::Tensor encoder_attention_mask;
  // [B, time_cond_proj_dim], only for UNets with time_cond_proj_dim (LCM-distilled).
  at::Tensor timestep_cond;
  // ControlNet residuals: one per skip connection (added to them), and one for the mid block.
  std::vector<at::Tensor> down_block_additional_residuals;
  at::Tensor mid_block_additional_residual;
  // Called at every UNetLayerSite when set (none: the plain 2-D UNet).
  UNetLayerHook after_layer;
};

// DownBlock2D / CrossAttnDownBlock2D (with `attentions` when cross-attention is on).
class UNetDownBlockImpl : public torch::nn::Module {
 public:
  UNetDownBlockImpl(const UNet2DConditionConfig& config, std::size_t index);
  // Returns the output and appends every skip tensor (after each layer and the downsampler).
  // `hook` (may be empty) runs after each layer, at site {kDown, index, layer}.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context,
                     const at::Tensor& context_mask, std::vector<at::Tensor>& skips,
                     const UNetLayerHook& hook = {}, std::size_t index = 0);
  bool has_cross_attention() const { return !attentions_.empty(); }

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2DModel> attentions_;
  Downsample2D downsampler_{nullptr};
};
TORCH_MODULE(UNetDownBlock);

// UpBlock2D / CrossAttnUpBlock2D: each layer concatenates the last remaining skip tensor.
class UNetUpBlockImpl : public torch::nn::Module {
 public:
  UNetUpBlockImpl(const UNet2DConditionConfig& config, std::size_t index);
  // Consumes num_layers() tensors from the back of `skips`.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context,
                     const at::Tensor& context_mask, std::vector<at::Tensor>& skips,
                     c10::optional<std::vector<int64_t>> upsample_size,
                     const UNetLayerHook& hook = {}, std::size_t index = 0);
  std::size_t num_layers() const { return resnets_.size(); }
  bool has_upsampler() const { return static_cast<bool>(upsampler_); }

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2DModel> attentions_;
  Upsample2D upsampler_{nullptr};
};
TORCH_MODULE(UNetUpBlock);

// UNetMidBlock2DCrossAttn: resnets.0, then per layer (attentions.i, resnets.i+1).
class UNetMidBlock2DCrossAttnImpl : public torch::nn::Module {
 public:
  explicit UNetMidBlock2DCrossAttnImpl(const UNet2DConditionConfig& config);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb, const at::Tensor& context,
                     const at::Tensor& context_mask, const UNetLayerHook& hook = {});

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2DModel> attentions_;
};
TORCH_MODULE(UNetMidBlock2DCrossAttn);

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  explicit UNet2DConditionModelImpl(const UNet2DConditionConfig& config);
  // Parses config.json content (ConfigError naming the key and `origin`) and builds.
  UNet2DConditionModelImpl(const nlohmann::json& config, const std::string& origin);

  // sample [B, in_channels, H, W]; timestep a 0-d or [B] (or [1]) tensor of any numeric dtype;
  // encoder_hidden_states [B, L, cross_attention_dim]. Returns the prediction [B, out, H, W].
  // Gradients flow when enabled (callers doing inference should hold torch::NoGradGuard).
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep,
                     const at::Tensor& encoder_hidden_states, const UNetExtraInputs& extra = {});
  // A Python-number timestep (diffusers makes it a float64 tensor).
  at::Tensor forward(const at::Tensor& sample, double timestep,
                     const at::Tensor& encoder_hidden_states, const UNetExtraInputs& extra = {});

  const UNet2DConditionConfig& config() const { return config_; }
  // Whether the mid block is UNetMidBlock2DCrossAttn (the only one with a kMid hook site).
  bool has_cross_attention_mid_block() const { return static_cast<bool>(mid_cross_); }
  // The time embedding fed to every resnet: time_embedding(time_proj(t)) [B, time_embed_dim].
  at::Tensor time_embed(const at::Tensor& sample, const at::Tensor& timestep,
                        const at::Tensor& timestep_cond = {});

 private:
  void build();

  UNet2DConditionConfig config_;
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  TimestepEmbedding time_embedding_{nullptr};
  std::vector<UNetDownBlock> down_blocks_;
  UNetMidBlock2DCrossAttn mid_cross_{nullptr};
  UNetMidBlock2D mid_plain_{nullptr};
  std::vector<UNetUpBlock> up_blocks_;
  torch::nn::GroupNorm conv_norm_out_{nullptr};
};
TORCH_MODULE(UNet2DConditionModel);

// Builds from the component's config.json and loads its weights strictly (WeightsError listing
// missing / unexpected / mis-shaped names). ConfigError when the component is not a
// UNet2DConditionModel or its config is unsupported. The model is fp32 on the CPU; move it with
// ->to(device, dtype).
UNet2DConditionModel load_unet(const ComponentInfo& component);

}  // namespace studio::image
