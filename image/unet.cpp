#include "image/unet.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"
#include "image/config_util.h"

namespace studio::image {

namespace nn = torch::nn;
using detail::int_per_block;
using detail::require_default;
using detail::unsupported;

namespace {

std::string strip_unet_res(const std::string& type) {
  return type.rfind("UNetRes", 0) == 0 ? type.substr(7) : type;
}

bool is_cross_attn(const std::string& type) {
  return type == "CrossAttnDownBlock2D" || type == "CrossAttnUpBlock2D";
}

// diffusers applies "x if x is not None else default" to these optional activations.
void optional_activation(const nlohmann::json& j, const std::string& key, bool& has,
                         Activation& act, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  has = true;
  act = parse_activation(json_get<std::string>(j, key, "", origin), key, origin);
}

ResnetBlock2DOptions resnet_options(const UNet2DConditionConfig& c, int64_t in, int64_t out) {
  ResnetBlock2DOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.temb_channels = c.time_embedding_dim;
  r.groups = c.norm_num_groups;
  r.eps = c.norm_eps;
  r.act = c.act_fn;
  return r;
}

Transformer2DOptions transformer_options(const UNet2DConditionConfig& c, int64_t channels,
                                         int64_t heads, int64_t layers, int64_t cross_dim) {
  Transformer2DOptions t;
  t.in_channels = channels;
  t.heads = heads;
  t.dim_head = channels / heads;
  t.num_layers = layers;
  t.norm_num_groups = c.norm_num_groups;
  t.cross_attention_dim = cross_dim;
  t.use_linear_projection = c.use_linear_projection;
  t.upcast_attention = c.upcast_attention;
  return t;
}

}  // namespace

// ---- Config --------------------------------------------------------------------------------

UNet2DConditionConfig UNet2DConditionConfig::from_json(const nlohmann::json& j,
                                                       const std::string& origin) {
  if (!j.is_object()) throw ConfigError("the UNet config is not a JSON object", origin);
  UNet2DConditionConfig c;

  // Features of UNet2DConditionModel that SD 1.x/2.x do not use and this port does not implement.
  require_default(j, "class_embed_type", nullptr, origin);
  require_default(j, "num_class_embeds", nullptr, origin);
  require_default(j, "class_embeddings_concat", false, origin);
  require_default(j, "addition_embed_type", nullptr, origin,
                  "SDXL-style added text/time embeddings are not implemented yet; SD 1.x/2.x "
                  "UNets have addition_embed_type null");
  require_default(j, "encoder_hid_dim", nullptr, origin);
  require_default(j, "encoder_hid_dim_type", nullptr, origin);
  require_default(j, "dual_cross_attention", false, origin);
  require_default(j, "attention_type", "default", origin);
  require_default(j, "cross_attention_norm", nullptr, origin);
  require_default(j, "resnet_time_scale_shift", "default", origin);
  require_default(j, "resnet_skip_time_act", false, origin);
  require_default(j, "time_embedding_type", "positional", origin);
  require_default(j, "reverse_transformer_layers_per_block", nullptr, origin);
  if (auto it = j.find("only_cross_attention"); it != j.end() && !it->is_null()) {
    bool any = false;
    if (it->is_boolean())
      any = it->get<bool>();
    else if (it->is_array())
      for (const auto& v : *it) any = any || (v.is_boolean() && v.get<bool>());
    else
      unsupported("only_cross_attention", *it, origin);
    if (any) unsupported("only_cross_attention", *it, origin);
  }

  c.in_channels = json_get<int64_t>(j, "in_channels", 4, origin);
  c.out_channels = json_get<int64_t>(j, "out_channels", 4, origin);
  c.center_input_sample = json_get<bool>(j, "center_input_sample", false, origin);
  c.flip_sin_to_cos = json_get<bool>(j, "flip_sin_to_cos", true, origin);
  c.freq_shift = detail::number(j, "freq_shift", 0.0, origin);
  c.block_out_channels = detail::int_list(j, "block_out_channels", origin);
  const std::size_t n = c.block_out_channels.size();

  for (const auto& t : detail::string_list(j, "down_block_types", origin)) {
    const std::string s = strip_unet_res(t);
    if (s != "DownBlock2D" && s != "CrossAttnDownBlock2D")
      unsupported("down_block_types", j.at("down_block_types"), origin,
                  "block type \"" + t +
                      "\" is not implemented; supported: DownBlock2D, "
                      "CrossAttnDownBlock2D");
    c.down_block_types.push_back(s);
  }
  for (const auto& t : detail::string_list(j, "up_block_types", origin)) {
    const std::string s = strip_unet_res(t);
    if (s != "UpBlock2D" && s != "CrossAttnUpBlock2D")
      unsupported("up_block_types", j.at("up_block_types"), origin,
                  "block type \"" + t +
                      "\" is not implemented; supported: UpBlock2D, "
                      "CrossAttnUpBlock2D");
    c.up_block_types.push_back(s);
  }
  if (c.down_block_types.size() != n || c.up_block_types.size() != n)
    throw ConfigError("down_block_types (" + std::to_string(c.down_block_types.size()) +
                          "), up_block_types (" + std::to_string(c.up_block_types.size()) +
                          ") and block_out_channels (" + std::to_string(n) +
                          ") must have the same length",
                      origin);
  if (auto it = j.find("mid_block_type"); it == j.end()) {
    c.mid_block_type = "UNetMidBlock2DCrossAttn";
  } else if (!it->is_null()) {
    c.mid_block_type = json_get<std::string>(j, "mid_block_type", "", origin);
    if (c.mid_block_type != "UNetMidBlock2DCrossAttn" && c.mid_block_type != "UNetMidBlock2D")
      unsupported("mid_block_type", *it, origin,
                  "supported: UNetMidBlock2DCrossAttn, UNetMidBlock2D, null");
  }

  c.layers_per_block = int_per_block(j, "layers_per_block", n, 2, origin);
  c.downsample_padding = json_get<int64_t>(j, "downsample_padding", 1, origin);
  c.mid_block_scale_factor = detail::number(j, "mid_block_scale_factor", 1.0, origin);
  c.act_fn = parse_activation(json_get<std::string>(j, "act_fn", "silu", origin), "act_fn", origin);
  if (auto it = j.find("norm_num_groups"); it != j.end() && it->is_null())
    unsupported("norm_num_groups", *it, origin, "UNets without GroupNorm are not implemented");
  c.norm_num_groups = json_get<int64_t>(j, "norm_num_groups", 32, origin);
  c.norm_eps = detail::number(j, "norm_eps", 1e-5, origin);
  c.cross_attention_dim = int_per_block(j, "cross_attention_dim", n, 1280, origin);
  c.transformer_layers_per_block = int_per_block(j, "transformer_layers_per_block", n, 1, origin);
  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (legacy naming).
  const bool has_heads =
      j.contains("num_attention_heads") && !j.at("num_attention_heads").is_null();
  c.num_attention_heads = has_heads ? int_per_block(j, "num_attention_heads", n, 8, origin)
                                    : int_per_block(j, "attention_head_dim", n, 8, origin);
  const std::string heads_key = has_heads ? "num_attention_heads" : "attention_head_dim";
  c.use_linear_projection = json_get<bool>(j, "use_linear_projection", false, origin);
  c.upcast_attention = json_get<bool>(j, "upcast_attention", false, origin);
  c.time_embedding_dim = json_get<int64_t>(j, "time_embedding_dim", 0, origin);
  if (c.time_embedding_dim == 0) c.time_embedding_dim = 4 * c.block_out_channels[0];
  optional_activation(j, "time_embedding_act_fn", c.has_time_embedding_act, c.time_embedding_act,
                      origin);
  optional_activation(j, "timestep_post_act", c.has_timestep_post_act, c.timestep_post_act, origin);
  c.time_cond_proj_dim = json_get<int64_t>(j, "time_cond_proj_dim", 0, origin);
  c.conv_in_kernel = json_get<int64_t>(j, "conv_in_kernel", 3, origin);
  c.conv_out_kernel = json_get<int64_t>(j, "conv_out_kernel", 3, origin);
  if (auto it = j.find("sample_size"); it != j.end() && it->is_number_integer())
    c.sample_size = it->get<int64_t>();

  for (std::size_t i = 0; i < n; ++i) {
    const int64_t ch = c.block_out_channels[i];
    if (ch % c.norm_num_groups != 0)
      throw ConfigError(
          "block_out_channels[" + std::to_string(i) + "] = " + std::to_string(ch) +
              " is not divisible by norm_num_groups = " + std::to_string(c.norm_num_groups),
          origin);
    const bool attn = is_cross_attn(c.down_block_types[i]) ||
                      is_cross_attn(c.up_block_types[n - 1 - i]) ||
                      (i + 1 == n && c.mid_block_type == "UNetMidBlock2DCrossAttn");
    if (!attn) continue;
    const int64_t heads = c.num_attention_heads[i];
    if (heads <= 0 || ch % heads != 0)
      throw ConfigError(heads_key + " gives " + std::to_string(heads) + " heads for block " +
                            std::to_string(i) + " of " + std::to_string(ch) +
                            " channels, which does not divide them",
                        origin);
    if (c.cross_attention_dim[i] <= 0)
      throw ConfigError("cross_attention_dim must be positive for cross-attention blocks", origin);
    if (c.transformer_layers_per_block[i] <= 0)
      throw ConfigError("transformer_layers_per_block must be positive", origin);
  }
  for (std::size_t i = 0; i < n; ++i)
    if (c.layers_per_block[i] <= 0) throw ConfigError("layers_per_block must be positive", origin);
  if (c.conv_in_kernel % 2 == 0 || c.conv_out_kernel % 2 == 0)
    throw ConfigError("conv_in_kernel and conv_out_kernel must be odd", origin);
  return c;
}

// ---- Blocks --------------------------------------------------------------------------------

UNetDownBlockImpl::UNetDownBlockImpl(const UNet2DConditionConfig& c, std::size_t i) {
  const std::size_t n = c.block_out_channels.size();
  const int64_t out = c.block_out_channels[i];
  const int64_t in = i == 0 ? c.block_out_channels[0] : c.block_out_channels[i - 1];
  const bool attn = c.down_block_types[i] == "CrossAttnDownBlock2D";
  nn::ModuleList resnets, attentions;
  for (int64_t l = 0; l < c.layers_per_block[i]; ++l) {
    resnets_.emplace_back(resnet_options(c, l == 0 ? in : out, out));
    resnets->push_back(resnets_.back());
    if (attn) {
      attentions_.emplace_back(transformer_options(c, out, c.num_attention_heads[i],
                                                   c.transformer_layers_per_block[i],
                                                   c.cross_attention_dim[i]));
      attentions->push_back(attentions_.back());
    }
  }
  if (attn) register_module("attentions", attentions);
  register_module("resnets", resnets);
  if (i + 1 < n) {
    downsampler_ = Downsample2D(out, out, c.downsample_padding);
    nn::ModuleList down;
    down->push_back(downsampler_);
    register_module("downsamplers", down);
  }
}

at::Tensor UNetDownBlockImpl::forward(const at::Tensor& x, const at::Tensor& temb,
                                      const at::Tensor& context, const at::Tensor& context_mask,
                                      std::vector<at::Tensor>& skips, const UNetLayerHook& hook,
                                      std::size_t index) {
  at::Tensor h = x;
  for (std::size_t l = 0; l < resnets_.size(); ++l) {
    h = resnets_[l](h, temb);
    if (!attentions_.empty()) h = attentions_[l](h, context, context_mask);
    if (hook) h = hook(UNetLayerSite{UNetPart::kDown, index, l}, h);
    skips.push_back(h);
  }
  if (downsampler_) {
    h = downsampler_(h);
    skips.push_back(h);
  }
  return h;
}

UNetUpBlockImpl::UNetUpBlockImpl(const UNet2DConditionConfig& c, std::size_t i) {
  const std::size_t n = c.block_out_channels.size();
  const std::size_t r = n - 1 - i;  // the matching down block
  const int64_t out = c.block_out_channels[r];
  const int64_t prev = i == 0 ? c.block_out_channels[n - 1] : c.block_out_channels[r + 1];
  const int64_t in = c.block_out_channels[r == 0 ? 0 : r - 1];
  const int64_t layers = c.layers_per_block[r] + 1;
  const bool attn = c.up_block_types[i] == "CrossAttnUpBlock2D";
  nn::ModuleList resnets, attentions;
  for (int64_t l = 0; l < layers; ++l) {
    const int64_t skip = l == layers - 1 ? in : out;
    const int64_t res_in = l == 0 ? prev : out;
    resnets_.emplace_back(resnet_options(c, res_in + skip, out));
    resnets->push_back(resnets_.back());
    if (attn) {
      attentions_.emplace_back(transformer_options(c, out, c.num_attention_heads[r],
                                                   c.transformer_layers_per_block[r],
                                                   c.cross_attention_dim[r]));
      attentions->push_back(attentions_.back());
    }
  }
  if (attn) register_module("attentions", attentions);
  register_module("resnets", resnets);
  if (i + 1 < n) {
    upsampler_ = Upsample2D(out, out);
    nn::ModuleList up;
    up->push_back(upsampler_);
    register_module("upsamplers", up);
  }
}

at::Tensor UNetUpBlockImpl::forward(const at::Tensor& x, const at::Tensor& temb,
                                    const at::Tensor& context, const at::Tensor& context_mask,
                                    std::vector<at::Tensor>& skips,
                                    c10::optional<std::vector<int64_t>> upsample_size,
                                    const UNetLayerHook& hook, std::size_t index) {
  at::Tensor h = x;
  for (std::size_t l = 0; l < resnets_.size(); ++l) {
    if (skips.empty()) throw UsageError("the UNet ran out of skip connections", "UNetUpBlock");
    h = at::cat({h, skips.back()}, 1);
    skips.pop_back();
    h = resnets_[l](h, temb);
    if (!attentions_.empty()) h = attentions_[l](h, context, context_mask);
    if (hook) h = hook(UNetLayerSite{UNetPart::kUp, index, l}, h);
  }
  if (upsampler_) h = upsampler_(h, std::move(upsample_size));
  return h;
}

UNetMidBlock2DCrossAttnImpl::UNetMidBlock2DCrossAttnImpl(const UNet2DConditionConfig& c) {
  const std::size_t last = c.block_out_channels.size() - 1;
  const int64_t ch = c.block_out_channels[last];
  auto r = resnet_options(c, ch, ch);
  r.output_scale_factor = c.mid_block_scale_factor;
  nn::ModuleList resnets, attentions;
  resnets_.emplace_back(r);
  resnets->push_back(resnets_.back());
  attentions_.emplace_back(transformer_options(c, ch, c.num_attention_heads[last],
                                               c.transformer_layers_per_block[last],
                                               c.cross_attention_dim[last]));
  attentions->push_back(attentions_.back());
  resnets_.emplace_back(r);
  resnets->push_back(resnets_.back());
  register_module("attentions", attentions);
  register_module("resnets", resnets);
}

at::Tensor UNetMidBlock2DCrossAttnImpl::forward(const at::Tensor& x, const at::Tensor& temb,
                                                const at::Tensor& context,
                                                const at::Tensor& context_mask,
                                                const UNetLayerHook& hook) {
  at::Tensor h = resnets_[0](x, temb);
  for (std::size_t l = 0; l < attentions_.size(); ++l) {
    h = attentions_[l](h, context, context_mask);
    if (hook) h = hook(UNetLayerSite{UNetPart::kMid, 0, l}, h);
    h = resnets_[l + 1](h, temb);
  }
  return h;
}

// ---- The model -----------------------------------------------------------------------------

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNet2DConditionConfig& config)
    : config_(config) {
  build();
}

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const nlohmann::json& config,
                                                   const std::string& origin)
    : config_(UNet2DConditionConfig::from_json(config, origin)) {
  build();
}

void UNet2DConditionModelImpl::build() {
  const auto& c = config_;
  const std::size_t n = c.block_out_channels.size();
  const int64_t ch0 = c.block_out_channels[0];
  conv_in_ =
      register_module("conv_in", nn::Conv2d(nn::Conv2dOptions(c.in_channels, ch0, c.conv_in_kernel)
                                                .padding((c.conv_in_kernel - 1) / 2)));
  TimestepEmbeddingOptions t;
  t.in_channels = ch0;
  t.time_embed_dim = c.time_embedding_dim;
  t.act = c.act_fn;
  t.has_post_act = c.has_timestep_post_act;
  t.post_act = c.timestep_post_act;
  t.cond_proj_dim = c.time_cond_proj_dim;
  time_embedding_ = register_module("time_embedding", TimestepEmbedding(t));

  nn::ModuleList down;
  for (std::size_t i = 0; i < n; ++i) {
    down_blocks_.emplace_back(c, i);
    down->push_back(down_blocks_.back());
  }
  register_module("down_blocks", down);

  if (c.mid_block_type == "UNetMidBlock2DCrossAttn") {
    mid_cross_ = register_module("mid_block", UNetMidBlock2DCrossAttn(c));
  } else if (c.mid_block_type == "UNetMidBlock2D") {
    UNetMidBlock2DOptions m;
    m.in_channels = c.block_out_channels[n - 1];
    m.temb_channels = c.time_embedding_dim;
    m.num_layers = 0;
    m.eps = c.norm_eps;
    m.groups = c.norm_num_groups;
    m.act = c.act_fn;
    m.add_attention = false;
    m.output_scale_factor = c.mid_block_scale_factor;
    mid_plain_ = register_module("mid_block", UNetMidBlock2D(m));
  }

  nn::ModuleList up;
  for (std::size_t i = 0; i < n; ++i) {
    up_blocks_.emplace_back(c, i);
    up->push_back(up_blocks_.back());
  }
  register_module("up_blocks", up);

  conv_norm_out_ = register_module(
      "conv_norm_out", nn::GroupNorm(nn::GroupNormOptions(c.norm_num_groups, ch0).eps(c.norm_eps)));
  conv_out_ = register_module("conv_out",
                              nn::Conv2d(nn::Conv2dOptions(ch0, c.out_channels, c.conv_out_kernel)
                                             .padding((c.conv_out_kernel - 1) / 2)));
}

at::Tensor UNet2DConditionModelImpl::time_embed(const at::Tensor& sample,
                                                const at::Tensor& timestep,
                                                const at::Tensor& timestep_cond) {
  at::Tensor ts = timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep;
  if (ts.dim() != 1)
    throw UsageError("timestep must be a scalar or a 1-d tensor", "UNet2DConditionModel");
  ts = ts.to(sample.device()).expand({sample.size(0)});
  at::Tensor t_emb = timestep_embedding(ts, config_.block_out_channels[0], config_.flip_sin_to_cos,
                                        config_.freq_shift)
                         .to(sample.scalar_type());
  return time_embedding_(t_emb, timestep_cond);
}

at::Tensor UNet2DConditionModelImpl::forward(const at::Tensor& sample, double timestep,
                                             const at::Tensor& encoder_hidden_states,
                                             const UNetExtraInputs& extra) {
  at::Tensor t = at::full({1}, timestep, sample.options().dtype(at::kDouble));
  return forward(sample, t, encoder_hidden_states, extra);
}

at::Tensor UNet2DConditionModelImpl::forward(const at::Tensor& sample, const at::Tensor& timestep,
                                             const at::Tensor& encoder_hidden_states,
                                             const UNetExtraInputs& extra) {
  const auto& c = config_;
  if (sample.dim() != 4 || sample.size(1) != c.in_channels)
    throw UsageError("sample must be [B, " + std::to_string(c.in_channels) + ", H, W]",
                     "UNet2DConditionModel");
  // Sizes that do not divide by 2^(number of upsamplers) make each upsampler match its skip.
  const int64_t factor = int64_t{1} << (c.block_out_channels.size() - 1);
  const bool forward_upsample_size = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;

  at::Tensor context_mask;
  if (extra.encoder_attention_mask.defined()) {
    // [B, Lk] keep-mask → additive bias [B, 1, 1, Lk] over [B, heads, Lq, Lk] scores.
    context_mask = (1 - extra.encoder_attention_mask.to(sample.scalar_type())) * -10000.0;
    context_mask = context_mask.unsqueeze(1).unsqueeze(1);
  }

  at::Tensor x = c.center_input_sample ? 2 * sample - 1.0 : sample;
  at::Tensor emb = time_embed(x, timestep, extra.timestep_cond);
  if (c.has_time_embedding_act) emb = activate(emb, c.time_embedding_act);

  at::Tensor h = conv_in_(x);
  std::vector<at::Tensor> skips{h};
  for (std::size_t i = 0; i < down_blocks_.size(); ++i)
    h = down_blocks_[i]->forward(h, emb, encoder_hidden_states, context_mask, skips,
                                 extra.after_layer, i);

  if (!extra.down_block_additional_residuals.empty()) {
    if (extra.down_block_additional_residuals.size() != skips.size())
      throw UsageError("down_block_additional_residuals has " +
                           std::to_string(extra.down_block_additional_residuals.size()) +
                           " tensors, the UNet has " + std::to_string(skips.size()) +
                           " skip connections",
                       "UNet2DConditionModel");
    for (std::size_t i = 0; i < skips.size(); ++i)
      skips[i] = skips[i] + extra.down_block_additional_residuals[i];
  }

  if (mid_cross_)
    h = mid_cross_->forward(h, emb, encoder_hidden_states, context_mask, extra.after_layer);
  else if (mid_plain_)
    h = mid_plain_->forward(h, emb);
  if (extra.mid_block_additional_residual.defined()) h = h + extra.mid_block_additional_residual;

  for (std::size_t i = 0; i < up_blocks_.size(); ++i) {
    auto& block = up_blocks_[i];
    c10::optional<std::vector<int64_t>> upsample_size;
    if (block->has_upsampler() && forward_upsample_size) {
      const std::size_t left = skips.size() - block->num_layers();
      upsample_size = skips[left - 1].sizes().slice(2).vec();
    }
    h = block->forward(h, emb, encoder_hidden_states, context_mask, skips, upsample_size,
                       extra.after_layer, i);
  }

  h = activate(conv_norm_out_(h), c.act_fn);
  return conv_out_(h);
}

// ---- Loading -------------------------------------------------------------------------------

UNet2DConditionModel load_unet(const ComponentInfo& component) {
  const std::string origin = (component.dir / "config.json").string();
  if (component.class_name != "UNet2DConditionModel")
    throw ConfigError("component '" + component.name + "' is a " + component.class_name +
                          ", not a UNet2DConditionModel",
                      origin, "point the model at a Stable Diffusion unet/ folder");
  if (component.weight_files.empty())
    throw WeightsError("the UNet folder has no weights", component.dir.string(),
                       "expected diffusion_pytorch_model.safetensors");
  const StateDict weights =
      open_weights_for_loading(component.weight_files, component.dir.string());
  UNet2DConditionModel model(component.config, origin);
  load_state_dict_strict(*model, weights, component.dir.string());
  return model;
}

}  // namespace studio::image
