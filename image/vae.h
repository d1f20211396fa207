// AutoencoderKL (diffusers 0.29 semantics): the Stable Diffusion VAE that maps images in [-1, 1]
// to latents (a diagonal Gaussian) and latents back to images, built only from its config.json,
// with module names equal to diffusers' state_dict keys. Optional tiled encode/decode (overlapping
// tiles blended linearly, as diffusers does) bounds memory for large outputs.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "image/blocks.h"

namespace studio::image {

struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<int64_t> block_out_channels;  // one DownEncoderBlock2D / UpDecoderBlock2D each
  int64_t layers_per_block = 1;
  Activation act_fn = Activation::kSiLU;
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 32;  // pixel tile size of tiled encode/decode
  double scaling_factor = 0.18215;
  bool has_shift_factor = false;
  double shift_factor = 0.0;
  bool force_upcast = true;  // the pipeline should run this VAE in fp32
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  // Older diffusers checkpoints name the mid-block attention query/key/value/proj_attn.
  bool legacy_attention_names = false;

  // Pixels per latent along each side: 2^(number of blocks - 1).
  int64_t downscale_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
  // ConfigError naming the key and `origin` for invalid or unsupported values.
  static AutoencoderKLConfig from_json(const nlohmann::json& config, const std::string& origin);
};

// The encoder's posterior: mean and log-variance (clamped to [-30, 20]), as diffusers'
// DiagonalGaussianDistribution.
struct DiagonalGaussian {
  at::Tensor mean, logvar, std, var;
  explicit DiagonalGaussian(const at::Tensor& moments);
  // mean + std * randn(mean.shape) drawn from `generator` (a CPU generator, fp32, as diffusers'
  // randn_tensor draws it), moved to mean's device and dtype.
  at::Tensor sample(at::Generator& generator) const;
  at::Tensor mode() const { return mean; }
};

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const AutoencoderKLConfig& config);
  at::Tensor forward(const at::Tensor& x);  // → [B, 2 * latent_channels, h, w]

 private:
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  std::vector<ResnetBlock2D> resnets_;  // all down blocks' resnets, in order
  std::vector<std::size_t> resnets_per_block_;
  std::vector<Downsample2D> downsamplers_;  // nullptr for the last block
  UNetMidBlock2D mid_block_{nullptr};
  torch::nn::GroupNorm conv_norm_out_{nullptr};
  Activation act_;
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const AutoencoderKLConfig& config);
  at::Tensor forward(const at::Tensor& z);  // → [B, out_channels, H, W]

 private:
  torch::nn::Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  UNetMidBlock2D mid_block_{nullptr};
  std::vector<ResnetBlock2D> resnets_;
  std::vector<std::size_t> resnets_per_block_;
  std::vector<Upsample2D> upsamplers_;
  torch::nn::GroupNorm conv_norm_out_{nullptr};
  Activation act_;
};
TORCH_MODULE(VaeDecoder);

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const AutoencoderKLConfig& config);
  AutoencoderKLImpl(const nlohmann::json& config, const std::string& origin);

  // x [B, in_channels, H, W] in [-1, 1] → posterior over [B, latent_channels, H/f, W/f].
  DiagonalGaussian encode(const at::Tensor& x);
  // Raw latents (already divided by scaling_factor) → images, not clamped.
  at::Tensor decode(const at::Tensor& z);
  // Convenience for pipelines: latents * scaling_factor (minus shift) and back.
  at::Tensor scale_latents(const at::Tensor& raw) const;
  at::Tensor unscale_latents(const at::Tensor& scaled) const;

  // Tiling (diffusers' enable_tiling): encode/decode inputs larger than one tile are processed in
  // overlapping tiles (overlap 1/4) blended linearly. Tile sizes default to the config's
  // sample_size in pixels and sample_size / downscale_factor in latents.
  void enable_tiling(bool on = true) { tiling_ = on; }
  bool tiling() const { return tiling_; }
  void set_tile_sizes(int64_t sample_tile, int64_t latent_tile);
  int64_t tile_sample_min_size() const { return tile_sample_min_size_; }
  int64_t tile_latent_min_size() const { return tile_latent_min_size_; }
  // Slicing (diffusers' enable_slicing): batches are encoded/decoded one image at a time.
  void enable_slicing(bool on = true) { slicing_ = on; }

  at::Tensor tiled_decode(const at::Tensor& z);
  at::Tensor tiled_encode_moments(const at::Tensor& x);

  const AutoencoderKLConfig& config() const { return config_; }
  double scaling_factor() const { return config_.scaling_factor; }

 private:
  void build();
  at::Tensor encode_moments(const at::Tensor& x);
  at::Tensor decode_one(const at::Tensor& z);

  AutoencoderKLConfig config_;
  VaeEncoder encoder_{nullptr};
  VaeDecoder decoder_{nullptr};
  torch::nn::Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
  bool tiling_ = false;
  bool slicing_ = false;
  double tile_overlap_factor_ = 0.25;
  int64_t tile_sample_min_size_ = 0;
  int64_t tile_latent_min_size_ = 0;
};
TORCH_MODULE(AutoencoderKL);

// Builds from the component's config.json and loads its weights strictly. Checkpoints with the
// older mid-block attention names (query/key/value/proj_attn) are recognised and load as they are.
// fp32 on the CPU; move with ->to(device, dtype).
AutoencoderKL load_vae(const ComponentInfo& component);

}  // namespace studio::image
