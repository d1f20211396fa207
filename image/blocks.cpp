#include "image/blocks.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "image/attention_control.h"
#include "kernels/attention.h"

namespace studio::image {

namespace nn = torch::nn;

namespace {
thread_local AttentionController* t_attention_controller = nullptr;
}  // namespace

ScopedAttentionController::ScopedAttentionController(AttentionController* controller)
    : previous_(t_attention_controller) {
  t_attention_controller = controller;
}
ScopedAttentionController::~ScopedAttentionController() { t_attention_controller = previous_; }
AttentionController* current_attention_controller() { return t_attention_controller; }

Activation parse_activation(const std::string& name, const std::string& key,
                            const std::string& origin) {
  if (name == "silu" || name == "swish") return Activation::kSiLU;
  if (name == "gelu") return Activation::kGELU;
  if (name == "relu") return Activation::kReLU;
  if (name == "mish") return Activation::kMish;
  throw ConfigError("key '" + key + "' = \"" + name + "\" is not a known activation", origin,
                    "use one of silu, swish, gelu, relu, mish");
}

at::Tensor activate(const at::Tensor& x, Activation act) {
  switch (act) {
    case Activation::kSiLU:
      return at::silu(x);
    case Activation::kGELU:
      return at::gelu(x);
    case Activation::kReLU:
      return at::relu(x);
    case Activation::kMish:
      return at::mish(x);
  }
  return x;
}

int64_t parameter_count(const nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) n += p.numel();
  return n;
}

// ---- ResnetBlock2D -------------------------------------------------------------------------

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetBlock2DOptions& options) : options_(options) {
  auto& o = options_;
  if (o.out_channels == 0) o.out_channels = o.in_channels;
  if (o.groups_out == 0) o.groups_out = o.groups;
  norm1_ = register_module("norm1",
                           nn::GroupNorm(nn::GroupNormOptions(o.groups, o.in_channels).eps(o.eps)));
  conv1_ = register_module(
      "conv1", nn::Conv2d(nn::Conv2dOptions(o.in_channels, o.out_channels, 3).padding(1)));
  if (o.temb_channels > 0)
    time_emb_proj_ = register_module("time_emb_proj", nn::Linear(o.temb_channels, o.out_channels));
  norm2_ = register_module(
      "norm2", nn::GroupNorm(nn::GroupNormOptions(o.groups_out, o.out_channels).eps(o.eps)));
  conv2_ = register_module(
      "conv2", nn::Conv2d(nn::Conv2dOptions(o.out_channels, o.out_channels, 3).padding(1)));
  if (o.in_channels != o.out_channels)
    conv_shortcut_ = register_module(
        "conv_shortcut", nn::Conv2d(nn::Conv2dOptions(o.in_channels, o.out_channels, 1)));
}

at::Tensor ResnetBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb) {
  at::Tensor h = activate(norm1_(x), options_.act);
  h = conv1_(h);
  if (time_emb_proj_ && temb.defined()) {
    at::Tensor t = time_emb_proj_(activate(temb, options_.act));
    h = h + t.unsqueeze(-1).unsqueeze(-1);
  }
  h = activate(norm2_(h), options_.act);
  h = conv2_(h);
  at::Tensor shortcut = conv_shortcut_ ? conv_shortcut_(x) : x;
  at::Tensor out = shortcut + h;
  if (options_.output_scale_factor != 1.0) out = out / options_.output_scale_factor;
  return out;
}

// ---- Down / up sampling --------------------------------------------------------------------

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t out_channels, int64_t padding)
    : padding_(padding) {
  conv_ = register_module(
      "conv", nn::Conv2d(nn::Conv2dOptions(channels, out_channels, 3).stride(2).padding(padding)));
}

at::Tensor Downsample2DImpl::forward(const at::Tensor& x) {
  if (padding_ == 0) return conv_(at::constant_pad_nd(x, {0, 1, 0, 1}, 0));
  return conv_(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels, int64_t out_channels) {
  conv_ =
      register_module("conv", nn::Conv2d(nn::Conv2dOptions(channels, out_channels, 3).padding(1)));
}

at::Tensor Upsample2DImpl::forward(const at::Tensor& x,
                                   c10::optional<std::vector<int64_t>> output_size) {
  namespace F = torch::nn::functional;
  at::Tensor in = x;
  const auto dtype = x.scalar_type();
  // Nearest upsampling lacks bf16 kernels on some builds; diffusers goes through fp32 too.
  if (dtype == at::kBFloat16) in = in.to(at::kFloat);
  at::Tensor up;
  if (output_size)
    up = F::interpolate(in, F::InterpolateFuncOptions().size(*output_size).mode(torch::kNearest));
  else
    up = F::interpolate(in, F::InterpolateFuncOptions()
                                .scale_factor(std::vector<double>{2.0, 2.0})
                                .mode(torch::kNearest));
  if (dtype == at::kBFloat16) up = up.to(dtype);
  return conv_(up);
}

// ---- Attention -----------------------------------------------------------------------------

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  const auto& o = options_;
  const int64_t inner = o.heads * o.dim_head;
  const int64_t kv_dim = o.cross_attention_dim > 0 ? o.cross_attention_dim : o.query_dim;
  if (o.norm_num_groups > 0)
    group_norm_ = register_module(
        "group_norm",
        nn::GroupNorm(nn::GroupNormOptions(o.norm_num_groups, o.query_dim).eps(o.eps)));
  const char* q_name = o.legacy_names ? "query" : "to_q";
  const char* k_name = o.legacy_names ? "key" : "to_k";
  const char* v_name = o.legacy_names ? "value" : "to_v";
  to_q_ = register_module(q_name, nn::Linear(nn::LinearOptions(o.query_dim, inner).bias(o.bias)));
  to_k_ = register_module(k_name, nn::Linear(nn::LinearOptions(kv_dim, inner).bias(o.bias)));
  to_v_ = register_module(v_name, nn::Linear(nn::LinearOptions(kv_dim, inner).bias(o.bias)));
  to_out_ = nn::Linear(nn::LinearOptions(inner, o.query_dim).bias(o.out_bias));
  if (o.legacy_names) {
    register_module("proj_attn", to_out_);
  } else {
    nn::ModuleList out;
    out->push_back(to_out_);  // to_out.1 is a parameterless dropout
    register_module("to_out", out);
  }
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& context,
                                  const at::Tensor& mask) {
  const auto& o = options_;
  const bool spatial = x.dim() == 4;
  at::Tensor h = x;
  int64_t channels = 0, height = 0, width = 0;
  if (spatial) {
    channels = x.size(1);
    height = x.size(2);
    width = x.size(3);
    h = x.view({x.size(0), channels, height * width}).transpose(1, 2);
  }
  if (group_norm_) h = group_norm_(h.transpose(1, 2)).transpose(1, 2);
  const at::Tensor& kv_in = context.defined() ? context : h;
  at::Tensor q = to_q_(h), k = to_k_(kv_in), v = to_v_(kv_in);
  const int64_t b = q.size(0), lq = q.size(1), lk = k.size(1);
  q = q.view({b, lq, o.heads, o.dim_head}).transpose(1, 2);
  k = k.view({b, lk, o.heads, o.dim_head}).transpose(1, 2);
  v = v.view({b, lk, o.heads, o.dim_head}).transpose(1, 2);
  const auto dtype = q.scalar_type();
  const bool upcast =
      (o.upcast_attention || o.upcast_softmax) && dtype != at::kFloat && dtype != at::kDouble;
  c10::optional<at::Tensor> m;
  if (mask.defined()) m = upcast && mask.is_floating_point() ? mask.to(at::kFloat) : mask;
  at::Tensor out;
  if (AttentionController* control = t_attention_controller) {
    // Explicit probabilities for the controller (as diffusers' AttnProcessor computes them).
    const at::Tensor qf = upcast ? q.to(at::kFloat) : q, kf = upcast ? k.to(at::kFloat) : k;
    at::Tensor scores = at::matmul(qf, kf.transpose(-1, -2)) / std::sqrt(double(o.dim_head));
    if (m)
      scores = m->scalar_type() == at::kBool
                   ? scores.masked_fill(m->logical_not(), -std::numeric_limits<float>::infinity())
                   : scores + *m;
    at::Tensor probs = control->on_attention(scores.softmax(-1), context.defined());
    out = at::matmul(probs.to(v.scalar_type()), v);
  } else if (upcast) {
    out = kernels::attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), m).to(dtype);
  } else {
    out = kernels::attention(q, k, v, m);
  }
  out = out.transpose(1, 2).reshape({b, lq, o.heads * o.dim_head});
  out = to_out_(out);
  if (spatial) out = out.transpose(-1, -2).reshape({b, channels, height, width});
  if (o.residual_connection) out = out + x;
  if (o.rescale_output_factor != 1.0) out = out / o.rescale_output_factor;
  return out;
}

// ---- Feed-forward and transformer blocks ---------------------------------------------------

FeedForwardActivation parse_feed_forward_activation(const std::string& name, const std::string& key,
                                                    const std::string& origin) {
  if (name == "geglu") return FeedForwardActivation::kGEGLU;
  if (name == "gelu") return FeedForwardActivation::kGELU;
  if (name == "gelu-approximate") return FeedForwardActivation::kGELUTanh;
  throw ConfigError("key '" + key + "' = \"" + name + "\" is not supported yet", origin,
                    "supported: geglu, gelu, gelu-approximate");
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t inner_dim, FeedForwardActivation act,
                                 bool bias)
    : act_(act) {
  const int64_t proj_out = act == FeedForwardActivation::kGEGLU ? 2 * inner_dim : inner_dim;
  auto act_module = std::make_shared<nn::Module>();
  proj_ =
      act_module->register_module("proj", nn::Linear(nn::LinearOptions(dim, proj_out).bias(bias)));
  out_ = nn::Linear(nn::LinearOptions(inner_dim, dim).bias(bias));
  nn::ModuleList net;
  net->push_back(act_module);
  net->push_back(nn::Dropout(0.0));
  net->push_back(out_);
  register_module("net", net);
}

at::Tensor FeedForwardImpl::forward(const at::Tensor& x) {
  at::Tensor h = proj_(x);
  switch (act_) {
    case FeedForwardActivation::kGEGLU: {
      auto parts = h.chunk(2, -1);
      h = parts[0] * at::gelu(parts[1]);
      break;
    }
    case FeedForwardActivation::kGELU:
      h = at::gelu(h);
      break;
    case FeedForwardActivation::kGELUTanh:
      h = at::gelu(h, "tanh");
      break;
  }
  return out_(h);
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(const BasicTransformerBlockOptions& o) {
  auto layer_norm = [&](const char* name) {
    return register_module(
        name,
        nn::LayerNorm(nn::LayerNormOptions({o.dim}).eps(o.norm_eps).elementwise_affine(true)));
  };
  AttentionOptions a;
  a.query_dim = o.dim;
  a.heads = o.heads;
  a.dim_head = o.dim_head;
  a.bias = o.attention_bias;
  a.upcast_attention = o.upcast_attention;
  norm1_ = layer_norm("norm1");
  attn1_ = register_module("attn1", Attention(a));
  if (o.cross_attention_dim > 0) {
    norm2_ = layer_norm("norm2");
    a.cross_attention_dim = o.cross_attention_dim;
    attn2_ = register_module("attn2", Attention(a));
  }
  norm3_ = layer_norm("norm3");
  ff_ = register_module(
      "ff", FeedForward(o.dim, o.ff_inner_dim > 0 ? o.ff_inner_dim : 4 * o.dim, o.ff_activation));
}

at::Tensor BasicTransformerBlockImpl::forward(const at::Tensor& x, const at::Tensor& context,
                                              const at::Tensor& context_mask) {
  at::Tensor h = attn1_(norm1_(x)) + x;
  if (attn2_) h = attn2_(norm2_(h), context, context_mask) + h;
  return ff_(norm3_(h)) + h;
}

Transformer2DModelImpl::Transformer2DModelImpl(const Transformer2DOptions& options)
    : options_(options), inner_dim_(options.heads * options.dim_head) {
  const auto& o = options_;
  norm_ = register_module(
      "norm", nn::GroupNorm(nn::GroupNormOptions(o.norm_num_groups, o.in_channels).eps(1e-6)));
  if (o.use_linear_projection)
    proj_in_linear_ = register_module("proj_in", nn::Linear(o.in_channels, inner_dim_));
  else
    proj_in_conv_ =
        register_module("proj_in", nn::Conv2d(nn::Conv2dOptions(o.in_channels, inner_dim_, 1)));
  nn::ModuleList blocks;
  BasicTransformerBlockOptions b;
  b.dim = inner_dim_;
  b.heads = o.heads;
  b.dim_head = o.dim_head;
  b.cross_attention_dim = o.cross_attention_dim;
  b.attention_bias = o.attention_bias;
  b.upcast_attention = o.upcast_attention;
  for (int64_t i = 0; i < o.num_layers; ++i) {
    blocks_.emplace_back(b);
    blocks->push_back(blocks_.back());
  }
  register_module("transformer_blocks", blocks);
  if (o.use_linear_projection)
    proj_out_linear_ = register_module("proj_out", nn::Linear(inner_dim_, o.in_channels));
  else
    proj_out_conv_ =
        register_module("proj_out", nn::Conv2d(nn::Conv2dOptions(inner_dim_, o.in_channels, 1)));
}

at::Tensor Transformer2DModelImpl::forward(const at::Tensor& x, const at::Tensor& context,
                                           const at::Tensor& context_mask) {
  const int64_t b = x.size(0), c = x.size(1), height = x.size(2), width = x.size(3);
  at::Tensor h = norm_(x);
  if (proj_in_conv_) {
    h = proj_in_conv_(h);
    h = h.permute({0, 2, 3, 1}).reshape({b, height * width, inner_dim_});
  } else {
    h = h.permute({0, 2, 3, 1}).reshape({b, height * width, c});
    h = proj_in_linear_(h);
  }
  for (auto& block : blocks_) h = block(h, context, context_mask);
  if (proj_out_conv_) {
    h = h.reshape({b, height, width, inner_dim_}).permute({0, 3, 1, 2}).contiguous();
    h = proj_out_conv_(h);
  } else {
    h = proj_out_linear_(h);
    h = h.reshape({b, height, width, c}).permute({0, 3, 1, 2}).contiguous();
  }
  return h + x;
}

// ---- Timestep embeddings -------------------------------------------------------------------

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                              double freq_shift, double scale, double max_period) {
  if (timesteps.dim() != 1)
    throw UsageError(
        "timesteps must be a 1-d tensor, got " + std::to_string(timesteps.dim()) + " dimensions",
        "timestep_embedding");
  const int64_t half = dim / 2;
  at::Tensor exponent =
      at::arange(0, half, timesteps.options().dtype(at::kFloat)) * (-std::log(max_period));
  exponent = exponent / (static_cast<double>(half) - freq_shift);
  at::Tensor emb = timesteps.unsqueeze(1).to(at::kFloat) * at::exp(exponent).unsqueeze(0);
  if (scale != 1.0) emb = emb * scale;
  emb = at::cat({at::sin(emb), at::cos(emb)}, -1);
  if (flip_sin_to_cos) emb = at::cat({emb.slice(1, half), emb.slice(1, 0, half)}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1, 0, 0}, 0);
  return emb;
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(const TimestepEmbeddingOptions& options)
    : options_(options) {
  const auto& o = options_;
  linear_1_ = register_module("linear_1", nn::Linear(o.in_channels, o.time_embed_dim));
  if (o.cond_proj_dim > 0)
    cond_proj_ = register_module(
        "cond_proj", nn::Linear(nn::LinearOptions(o.cond_proj_dim, o.in_channels).bias(false)));
  linear_2_ = register_module("linear_2", nn::Linear(o.time_embed_dim, o.time_embed_dim));
}

at::Tensor TimestepEmbeddingImpl::forward(const at::Tensor& sample, const at::Tensor& condition) {
  at::Tensor h = sample;
  if (condition.defined()) {
    if (!cond_proj_)
      throw UsageError("a timestep condition was given but the model has no cond_proj",
                       "TimestepEmbedding", "set time_cond_proj_dim in the UNet config");
    h = h + cond_proj_(condition);
  }
  h = linear_2_(activate(linear_1_(h), options_.act));
  if (options_.has_post_act) h = activate(h, options_.post_act);
  return h;
}

// ---- UNetMidBlock2D ------------------------------------------------------------------------

UNetMidBlock2DImpl::UNetMidBlock2DImpl(const UNetMidBlock2DOptions& o) {
  ResnetBlock2DOptions r;
  r.in_channels = o.in_channels;
  r.out_channels = o.in_channels;
  r.temb_channels = o.temb_channels;
  r.groups = o.groups;
  r.eps = o.eps;
  r.output_scale_factor = o.output_scale_factor;
  r.act = o.act;
  nn::ModuleList resnets, attentions;
  resnets_.emplace_back(r);
  resnets->push_back(resnets_.back());
  const int64_t head_dim = o.attention_head_dim > 0 ? o.attention_head_dim : o.in_channels;
  for (int64_t i = 0; i < o.num_layers; ++i) {
    if (o.add_attention) {
      AttentionOptions a;
      a.query_dim = o.in_channels;
      a.heads = o.in_channels / head_dim;
      a.dim_head = head_dim;
      a.bias = true;
      a.upcast_softmax = true;
      a.norm_num_groups = o.groups;
      a.eps = o.eps;
      a.rescale_output_factor = o.output_scale_factor;
      a.residual_connection = true;
      a.legacy_names = o.legacy_attention_names;
      attentions_.emplace_back(a);
      attentions->push_back(attentions_.back());
    }
    resnets_.emplace_back(r);
    resnets->push_back(resnets_.back());
  }
  if (o.add_attention && o.num_layers > 0) register_module("attentions", attentions);
  register_module("resnets", resnets);
}

at::Tensor UNetMidBlock2DImpl::forward(const at::Tensor& x, const at::Tensor& temb) {
  at::Tensor h = resnets_[0](x, temb);
  for (std::size_t i = 1; i < resnets_.size(); ++i) {
    if (!attentions_.empty()) h = attentions_[i - 1](h);
    h = resnets_[i](h, temb);
  }
  return h;
}

}  // namespace studio::image
