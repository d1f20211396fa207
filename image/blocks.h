// Building blocks shared by the Stable Diffusion VAE and UNet (and later the video UNet): resnet,
// down/up-sampling, attention, transformer blocks and timestep embeddings, with diffusers 0.29
// semantics and module names equal to diffusers' state_dict keys, so checkpoints load by name.
#pragma once

#include <ATen/Tensor.h>
#include <c10/util/Optional.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace studio::image {

// Activations named in diffusers configs (`act_fn`, `time_embedding_act_fn`, ...).
enum class Activation { kSiLU, kGELU, kReLU, kMish };
// "silu"/"swish", "gelu", "relu", "mish"; ConfigError naming `key` and `origin` otherwise.
Activation parse_activation(const std::string& name, const std::string& key,
                            const std::string& origin);
at::Tensor activate(const at::Tensor& x, Activation act);

// ResnetBlock2D: norm1 → act → conv1 (+ time_emb_proj(act(temb))) → norm2 → act → conv2, plus the
// input (through a 1×1 conv_shortcut when the channel count changes), divided by
// output_scale_factor. time_embedding_norm "default" only (scale_shift is not used by SD 1.x/2.x).
struct ResnetBlock2DOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;   // 0: in_channels
  int64_t temb_channels = 0;  // 0: no time embedding input (VAE)
  int64_t groups = 32;
  int64_t groups_out = 0;  // 0: groups
  double eps = 1e-6;
  double output_scale_factor = 1.0;
  Activation act = Activation::kSiLU;
};

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetBlock2DOptions& options);
  // temb [B, temb_channels] or undefined.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {});
  int64_t out_channels() const { return options_.out_channels; }

 private:
  ResnetBlock2DOptions options_;
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv_shortcut_{nullptr};
  torch::nn::Linear time_emb_proj_{nullptr};
};
TORCH_MODULE(ResnetBlock2D);

// Downsample2D with a convolution (stride 2, kernel 3). padding 0 means diffusers' VAE variant:
// pad right and bottom by one, then convolve without padding.
class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, int64_t out_channels, int64_t padding);
  at::Tensor forward(const at::Tensor& x);

 private:
  int64_t padding_;
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(Downsample2D);

// Upsample2D: nearest-neighbour ×2 (or to output_size when given), then a 3×3 convolution.
class Upsample2DImpl : public torch::nn::Module {
 public:
  Upsample2DImpl(int64_t channels, int64_t out_channels);
  at::Tensor forward(const at::Tensor& x, c10::optional<std::vector<int64_t>> output_size = {});

 private:
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(Upsample2D);

// diffusers' Attention (attention_processor.Attention) as SD uses it: to_q/to_k/to_v/to_out.0,
// optional group_norm over channels before the projections (the VAE mid-block), a residual
// connection and rescale_output_factor. Inputs [B, L, C] or [B, C, H, W] (flattened to tokens).
struct AttentionOptions {
  int64_t query_dim = 0;
  int64_t cross_attention_dim = 0;  // 0: keys/values come from the query input's width
  int64_t heads = 8;
  int64_t dim_head = 64;
  bool bias = false;              // on to_q/to_k/to_v
  bool out_bias = true;           // on to_out.0
  bool upcast_attention = false;  // fp16/bf16: compute scores and softmax in fp32
  bool upcast_softmax = false;
  int64_t norm_num_groups = 0;  // > 0: GroupNorm `group_norm` before the projections
  double eps = 1e-5;            // of that GroupNorm
  double rescale_output_factor = 1.0;
  bool residual_connection = false;
  // Older diffusers VAE checkpoints name the projections query/key/value/proj_attn.
  bool legacy_names = false;
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  // context [B, Lk, cross_attention_dim] or undefined (self-attention). mask: additive bias or
  // bool keep-mask broadcastable to [B, heads, Lq, Lk], or undefined.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context = {},
                     const at::Tensor& mask = {});
  const AttentionOptions& options() const { return options_; }

 private:
  AttentionOptions options_;
  torch::nn::GroupNorm group_norm_{nullptr};
  torch::nn::Linear to_q_{nullptr}, to_k_{nullptr}, to_v_{nullptr}, to_out_{nullptr};
};
TORCH_MODULE(Attention);

// The feed-forward of BasicTransformerBlock: net.0 (GEGLU or GELU projection), net.1 (dropout, no
// parameters), net.2 (Linear back to dim).
enum class FeedForwardActivation { kGEGLU, kGELU, kGELUTanh };
FeedForwardActivation parse_feed_forward_activation(const std::string& name, const std::string& key,
                                                    const std::string& origin);

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t inner_dim, FeedForwardActivation act, bool bias = true);
  at::Tensor forward(const at::Tensor& x);

 private:
  FeedForwardActivation act_;
  torch::nn::Linear proj_{nullptr};  // net.0.proj
  torch::nn::Linear out_{nullptr};   // net.2
};
TORCH_MODULE(FeedForward);

// BasicTransformerBlock (norm_type "layer_norm"): x += attn1(norm1(x)); x += attn2(norm2(x),
// context); x += ff(norm3(x)). Without cross_attention_dim there is no norm2/attn2.
struct BasicTransformerBlockOptions {
  int64_t dim = 0;
  int64_t heads = 8;
  int64_t dim_head = 64;
  int64_t cross_attention_dim = 0;  // 0: no cross-attention
  bool attention_bias = false;
  bool upcast_attention = false;
  double norm_eps = 1e-5;
  FeedForwardActivation ff_activation = FeedForwardActivation::kGEGLU;
  int64_t ff_inner_dim = 0;  // 0: 4 * dim
};

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  explicit BasicTransformerBlockImpl(const BasicTransformerBlockOptions& options);
  // x [B, L, dim]; context [B, Lk, cross_attention_dim]; context_mask additive bias for attn2.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context = {},
                     const at::Tensor& context_mask = {});

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr}, norm3_{nullptr};
  Attention attn1_{nullptr}, attn2_{nullptr};
  FeedForward ff_{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

// Transformer2DModel over continuous [B, C, H, W] input: GroupNorm (eps 1e-6) → proj_in (1×1
// conv, or Linear on tokens with use_linear_projection) → transformer_blocks → proj_out → + input.
struct Transformer2DOptions {
  int64_t in_channels = 0;
  int64_t heads = 8;
  int64_t dim_head = 64;
  int64_t num_layers = 1;
  int64_t norm_num_groups = 32;
  int64_t cross_attention_dim = 0;
  bool use_linear_projection = false;
  bool upcast_attention = false;
  bool attention_bias = false;
};

class Transformer2DModelImpl : public torch::nn::Module {
 public:
  explicit Transformer2DModelImpl(const Transformer2DOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context = {},
                     const at::Tensor& context_mask = {});

 private:
  Transformer2DOptions options_;
  int64_t inner_dim_;
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d proj_in_conv_{nullptr}, proj_out_conv_{nullptr};
  torch::nn::Linear proj_in_linear_{nullptr}, proj_out_linear_{nullptr};
  std::vector<BasicTransformerBlock> blocks_;
};
TORCH_MODULE(Transformer2DModel);

// Sinusoidal timestep embedding exactly as diffusers' get_timestep_embedding: timesteps [N] (any
// dtype) → float32 [N, dim]; exponent = -ln(max_period) · i / (dim/2 - freq_shift).
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                              double freq_shift, double scale = 1.0, double max_period = 10000.0);

// TimestepEmbedding: linear_1 → act → linear_2 (→ post_act), with an optional cond_proj added to
// the input first (time_cond_proj_dim, used by LCM-distilled UNets).
struct TimestepEmbeddingOptions {
  int64_t in_channels = 0;
  int64_t time_embed_dim = 0;
  Activation act = Activation::kSiLU;
  bool has_post_act = false;
  Activation post_act = Activation::kSiLU;
  int64_t cond_proj_dim = 0;  // 0: none
};

class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  explicit TimestepEmbeddingImpl(const TimestepEmbeddingOptions& options);
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& condition = {});

 private:
  TimestepEmbeddingOptions options_;
  torch::nn::Linear linear_1_{nullptr}, linear_2_{nullptr}, cond_proj_{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

// UNetMidBlock2D: resnets.0, then per layer (attentions.i, resnets.i+1). The attention is the VAE's
// single-head-per-attention_head_dim self-attention with group_norm, residual and upcast softmax.
struct UNetMidBlock2DOptions {
  int64_t in_channels = 0;
  int64_t temb_channels = 0;
  int64_t num_layers = 1;
  double eps = 1e-6;
  int64_t groups = 32;
  Activation act = Activation::kSiLU;
  bool add_attention = true;
  int64_t attention_head_dim = 0;  // 0: in_channels (one head)
  double output_scale_factor = 1.0;
  bool legacy_attention_names = false;
};

class UNetMidBlock2DImpl : public torch::nn::Module {
 public:
  explicit UNetMidBlock2DImpl(const UNetMidBlock2DOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {});

 private:
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Attention> attentions_;
};
TORCH_MODULE(UNetMidBlock2D);

// Total number of parameter elements of a module (what diffusers' num_parameters() returns).
int64_t parameter_count(const torch::nn::Module& module);

}  // namespace studio::image
