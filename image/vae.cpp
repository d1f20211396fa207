#include "image/vae.h"

#include <torch/torch.h>

#include <algorithm>
#include <functional>

#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"
#include "core/random.h"
#include "image/config_util.h"

namespace studio::image {

namespace nn = torch::nn;
using detail::require_default;
using detail::unsupported;

// ---- Config --------------------------------------------------------------------------------

AutoencoderKLConfig AutoencoderKLConfig::from_json(const nlohmann::json& j,
                                                   const std::string& origin) {
  if (!j.is_object()) throw ConfigError("the VAE config is not a JSON object", origin);
  AutoencoderKLConfig c;
  c.in_channels = json_get<int64_t>(j, "in_channels", 3, origin);
  c.out_channels = json_get<int64_t>(j, "out_channels", 3, origin);
  c.block_out_channels = detail::int_list(j, "block_out_channels", origin);
  const std::size_t n = c.block_out_channels.size();
  const auto down = j.contains("down_block_types")
                        ? detail::string_list(j, "down_block_types", origin)
                        : std::vector<std::string>{"DownEncoderBlock2D"};
  const auto up = j.contains("up_block_types") ? detail::string_list(j, "up_block_types", origin)
                                               : std::vector<std::string>{"UpDecoderBlock2D"};
  for (const auto& t : down)
    if (t != "DownEncoderBlock2D")
      unsupported("down_block_types", j.at("down_block_types"), origin,
                  "block type \"" + t + "\" is not implemented; supported: DownEncoderBlock2D");
  for (const auto& t : up)
    if (t != "UpDecoderBlock2D")
      unsupported("up_block_types", j.at("up_block_types"), origin,
                  "block type \"" + t + "\" is not implemented; supported: UpDecoderBlock2D");
  if (down.size() != n || up.size() != n)
    throw ConfigError(
        "down_block_types, up_block_types and block_out_channels must have the "
        "same length",
        origin);
  c.layers_per_block = json_get<int64_t>(j, "layers_per_block", 1, origin);
  if (c.layers_per_block <= 0) throw ConfigError("layers_per_block must be positive", origin);
  c.act_fn = parse_activation(json_get<std::string>(j, "act_fn", "silu", origin), "act_fn", origin);
  c.latent_channels = json_get<int64_t>(j, "latent_channels", 4, origin);
  c.norm_num_groups = json_get<int64_t>(j, "norm_num_groups", 32, origin);
  for (std::size_t i = 0; i < n; ++i)
    if (c.block_out_channels[i] % c.norm_num_groups != 0)
      throw ConfigError(
          "block_out_channels[" + std::to_string(i) + "] is not divisible by norm_num_groups",
          origin);
  if (auto it = j.find("sample_size"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer())
      c.sample_size = it->get<int64_t>();
    else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer())
      c.sample_size = (*it)[0].get<int64_t>();
    else
      throw ConfigError("key 'sample_size' must be an integer or a list of integers", origin);
  }
  c.scaling_factor = detail::number(j, "scaling_factor", 0.18215, origin);
  if (auto it = j.find("shift_factor"); it != j.end() && !it->is_null()) {
    c.has_shift_factor = true;
    c.shift_factor = detail::number(j, "shift_factor", 0.0, origin);
  }
  // Per-channel latent statistics (SDXL-era extras) change how pipelines scale latents.
  require_default(j, "latents_mean", nullptr, origin);
  require_default(j, "latents_std", nullptr, origin);
  require_default(j, "mid_block_add_attention", true, origin);
  c.force_upcast = json_get<bool>(j, "force_upcast", true, origin);
  c.use_quant_conv = json_get<bool>(j, "use_quant_conv", true, origin);
  c.use_post_quant_conv = json_get<bool>(j, "use_post_quant_conv", true, origin);
  return c;
}

// ---- Posterior -----------------------------------------------------------------------------

DiagonalGaussian::DiagonalGaussian(const at::Tensor& moments) {
  auto parts = moments.chunk(2, 1);
  mean = parts[0];
  logvar = at::clamp(parts[1], -30.0, 20.0);
  std = at::exp(0.5 * logvar);
  var = at::exp(logvar);
}

at::Tensor DiagonalGaussian::sample(at::Generator& generator) const {
  at::Tensor noise = seeded_randn(mean.sizes(), generator,
                                  at::TensorOptions().device(mean.device()).dtype(mean.dtype()));
  return mean + std * noise;
}

// ---- Encoder / decoder ---------------------------------------------------------------------

namespace {

ResnetBlock2DOptions vae_resnet(const AutoencoderKLConfig& c, int64_t in, int64_t out) {
  ResnetBlock2DOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.groups = c.norm_num_groups;
  r.eps = 1e-6;
  r.act = c.act_fn;
  return r;
}

UNetMidBlock2DOptions vae_mid(const AutoencoderKLConfig& c) {
  UNetMidBlock2DOptions m;
  m.in_channels = c.block_out_channels.back();
  m.num_layers = 1;
  m.eps = 1e-6;
  m.groups = c.norm_num_groups;
  m.act = c.act_fn;
  m.attention_head_dim = c.block_out_channels.back();
  m.legacy_attention_names = c.legacy_attention_names;
  return m;
}

}  // namespace

VaeEncoderImpl::VaeEncoderImpl(const AutoencoderKLConfig& c) : act_(c.act_fn) {
  const auto& boc = c.block_out_channels;
  conv_in_ = register_module("conv_in",
                             nn::Conv2d(nn::Conv2dOptions(c.in_channels, boc[0], 3).padding(1)));
  nn::ModuleList blocks;
  for (std::size_t i = 0; i < boc.size(); ++i) {
    const int64_t in = i == 0 ? boc[0] : boc[i - 1], out = boc[i];
    auto block = std::make_shared<nn::Module>();
    nn::ModuleList resnets;
    for (int64_t l = 0; l < c.layers_per_block; ++l) {
      resnets_.emplace_back(vae_resnet(c, l == 0 ? in : out, out));
      resnets->push_back(resnets_.back());
    }
    block->register_module("resnets", resnets);
    resnets_per_block_.push_back(static_cast<std::size_t>(c.layers_per_block));
    if (i + 1 < boc.size()) {
      downsamplers_.emplace_back(out, out, 0);
      nn::ModuleList ds;
      ds->push_back(downsamplers_.back());
      block->register_module("downsamplers", ds);
    } else {
      downsamplers_.emplace_back(nullptr);
    }
    blocks->push_back(block);
  }
  register_module("down_blocks", blocks);
  mid_block_ = register_module("mid_block", UNetMidBlock2D(vae_mid(c)));
  conv_norm_out_ =
      register_module("conv_norm_out",
                      nn::GroupNorm(nn::GroupNormOptions(c.norm_num_groups, boc.back()).eps(1e-6)));
  conv_out_ = register_module(
      "conv_out", nn::Conv2d(nn::Conv2dOptions(boc.back(), 2 * c.latent_channels, 3).padding(1)));
}

at::Tensor VaeEncoderImpl::forward(const at::Tensor& x) {
  at::Tensor h = conv_in_(x);
  std::size_t r = 0;
  for (std::size_t i = 0; i < resnets_per_block_.size(); ++i) {
    for (std::size_t l = 0; l < resnets_per_block_[i]; ++l) h = resnets_[r++](h);
    if (downsamplers_[i]) h = downsamplers_[i](h);
  }
  h = mid_block_(h);
  h = activate(conv_norm_out_(h), act_);
  return conv_out_(h);
}

VaeDecoderImpl::VaeDecoderImpl(const AutoencoderKLConfig& c) : act_(c.act_fn) {
  std::vector<int64_t> rev(c.block_out_channels.rbegin(), c.block_out_channels.rend());
  conv_in_ = register_module(
      "conv_in", nn::Conv2d(nn::Conv2dOptions(c.latent_channels, rev[0], 3).padding(1)));
  mid_block_ = register_module("mid_block", UNetMidBlock2D(vae_mid(c)));
  nn::ModuleList blocks;
  for (std::size_t i = 0; i < rev.size(); ++i) {
    const int64_t prev = i == 0 ? rev[0] : rev[i - 1], out = rev[i];
    auto block = std::make_shared<nn::Module>();
    nn::ModuleList resnets;
    for (int64_t l = 0; l < c.layers_per_block + 1; ++l) {
      resnets_.emplace_back(vae_resnet(c, l == 0 ? prev : out, out));
      resnets->push_back(resnets_.back());
    }
    block->register_module("resnets", resnets);
    resnets_per_block_.push_back(static_cast<std::size_t>(c.layers_per_block + 1));
    if (i + 1 < rev.size()) {
      upsamplers_.emplace_back(out, out);
      nn::ModuleList us;
      us->push_back(upsamplers_.back());
      block->register_module("upsamplers", us);
    } else {
      upsamplers_.emplace_back(nullptr);
    }
    blocks->push_back(block);
  }
  register_module("up_blocks", blocks);
  conv_norm_out_ =
      register_module("conv_norm_out",
                      nn::GroupNorm(nn::GroupNormOptions(c.norm_num_groups, rev.back()).eps(1e-6)));
  conv_out_ = register_module(
      "conv_out", nn::Conv2d(nn::Conv2dOptions(rev.back(), c.out_channels, 3).padding(1)));
}

at::Tensor VaeDecoderImpl::forward(const at::Tensor& z) {
  at::Tensor h = conv_in_(z);
  h = mid_block_(h);
  std::size_t r = 0;
  for (std::size_t i = 0; i < resnets_per_block_.size(); ++i) {
    for (std::size_t l = 0; l < resnets_per_block_[i]; ++l) h = resnets_[r++](h);
    if (upsamplers_[i]) h = upsamplers_[i](h);
  }
  h = activate(conv_norm_out_(h), act_);
  return conv_out_(h);
}

// ---- AutoencoderKL -------------------------------------------------------------------------

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLConfig& config) : config_(config) {
  build();
}

AutoencoderKLImpl::AutoencoderKLImpl(const nlohmann::json& config, const std::string& origin)
    : config_(AutoencoderKLConfig::from_json(config, origin)) {
  build();
}

void AutoencoderKLImpl::build() {
  const auto& c = config_;
  encoder_ = register_module("encoder", VaeEncoder(c));
  decoder_ = register_module("decoder", VaeDecoder(c));
  const int64_t lc = c.latent_channels;
  if (c.use_quant_conv)
    quant_conv_ = register_module("quant_conv", nn::Conv2d(nn::Conv2dOptions(2 * lc, 2 * lc, 1)));
  if (c.use_post_quant_conv)
    post_quant_conv_ = register_module("post_quant_conv", nn::Conv2d(nn::Conv2dOptions(lc, lc, 1)));
  tile_sample_min_size_ = c.sample_size;
  tile_latent_min_size_ = static_cast<int64_t>(static_cast<double>(c.sample_size) /
                                               static_cast<double>(c.downscale_factor()));
}

void AutoencoderKLImpl::set_tile_sizes(int64_t sample_tile, int64_t latent_tile) {
  if (sample_tile <= 0 || latent_tile <= 0)
    throw UsageError("tile sizes must be positive", "AutoencoderKL::set_tile_sizes");
  tile_sample_min_size_ = sample_tile;
  tile_latent_min_size_ = latent_tile;
}

at::Tensor AutoencoderKLImpl::encode_moments(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != config_.in_channels)
    throw UsageError("VAE input must be [B, " + std::to_string(config_.in_channels) + ", H, W]",
                     "AutoencoderKL::encode");
  if (tiling_ && (x.size(-1) > tile_sample_min_size_ || x.size(-2) > tile_sample_min_size_))
    return tiled_encode_moments(x);
  at::Tensor h;
  if (slicing_ && x.size(0) > 1) {
    std::vector<at::Tensor> parts;
    for (const auto& s : x.split(1)) parts.push_back(encoder_(s));
    h = at::cat(parts);
  } else {
    h = encoder_(x);
  }
  return quant_conv_ ? quant_conv_(h) : h;
}

DiagonalGaussian AutoencoderKLImpl::encode(const at::Tensor& x) {
  return DiagonalGaussian(encode_moments(x));
}

at::Tensor AutoencoderKLImpl::decode_one(const at::Tensor& z) {
  if (tiling_ && (z.size(-1) > tile_latent_min_size_ || z.size(-2) > tile_latent_min_size_))
    return tiled_decode(z);
  return decoder_(post_quant_conv_ ? post_quant_conv_(z) : z);
}

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& z) {
  if (z.dim() != 4 || z.size(1) != config_.latent_channels)
    throw UsageError("latents must be [B, " + std::to_string(config_.latent_channels) + ", h, w]",
                     "AutoencoderKL::decode");
  if (slicing_ && z.size(0) > 1) {
    std::vector<at::Tensor> parts;
    for (const auto& s : z.split(1)) parts.push_back(decode_one(s));
    return at::cat(parts);
  }
  return decode_one(z);
}

at::Tensor AutoencoderKLImpl::scale_latents(const at::Tensor& raw) const {
  return config_.has_shift_factor ? (raw - config_.shift_factor) * config_.scaling_factor
                                  : raw * config_.scaling_factor;
}

at::Tensor AutoencoderKLImpl::unscale_latents(const at::Tensor& scaled) const {
  return config_.has_shift_factor ? scaled / config_.scaling_factor + config_.shift_factor
                                  : scaled / config_.scaling_factor;
}

namespace {

// diffusers' blend_v / blend_h: the first `extent` rows (columns) of b fade in from the last
// `extent` rows (columns) of a, in place: b[y] = a[-extent + y] * (1 - y/extent) + b[y] * y/extent.
void blend(const at::Tensor& a, at::Tensor& b, int64_t extent, int64_t dim) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  if (extent <= 0) return;
  std::vector<double> w(static_cast<std::size_t>(extent));
  for (int64_t y = 0; y < extent; ++y) w[y] = static_cast<double>(y) / static_cast<double>(extent);
  std::vector<int64_t> shape(static_cast<std::size_t>(b.dim()), 1);
  shape[static_cast<std::size_t>(dim)] = extent;
  at::Tensor wb = at::tensor(w, at::TensorOptions().dtype(at::kDouble))
                      .to(b.device(), b.scalar_type())
                      .view(shape);
  std::vector<double> w1(w.size());
  for (std::size_t y = 0; y < w.size(); ++y) w1[y] = 1.0 - w[y];
  at::Tensor wa = at::tensor(w1, at::TensorOptions().dtype(at::kDouble))
                      .to(b.device(), b.scalar_type())
                      .view(shape);
  at::Tensor tail = a.narrow(dim, a.size(dim) - extent, extent);
  at::Tensor head = b.narrow(dim, 0, extent);
  head.copy_(tail * wa + head * wb);
}

// Splits `in` into tiles of `tile` with stride `stride`, maps each, blends neighbours over
// `blend_extent` and crops each to `row_limit` before concatenating (diffusers' tiled_* loops).
at::Tensor tiled_apply(const at::Tensor& in, int64_t tile, int64_t stride, int64_t blend_extent,
                       int64_t row_limit, const std::function<at::Tensor(const at::Tensor&)>& f) {
  std::vector<std::vector<at::Tensor>> rows;
  for (int64_t i = 0; i < in.size(2); i += stride) {
    std::vector<at::Tensor> row;
    for (int64_t j = 0; j < in.size(3); j += stride) {
      at::Tensor t = in.slice(2, i, i + tile).slice(3, j, j + tile);
      row.push_back(f(t).contiguous());
    }
    rows.push_back(std::move(row));
  }
  std::vector<at::Tensor> result_rows;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::vector<at::Tensor> result_row;
    for (std::size_t j = 0; j < rows[i].size(); ++j) {
      at::Tensor& t = rows[i][j];
      if (i > 0) blend(rows[i - 1][j], t, blend_extent, 2);
      if (j > 0) blend(rows[i][j - 1], t, blend_extent, 3);
      result_row.push_back(t.slice(2, 0, row_limit).slice(3, 0, row_limit));
    }
    result_rows.push_back(at::cat(result_row, 3));
  }
  return at::cat(result_rows, 2);
}

}  // namespace

at::Tensor AutoencoderKLImpl::tiled_encode_moments(const at::Tensor& x) {
  const auto overlap =
      static_cast<int64_t>(static_cast<double>(tile_sample_min_size_) * (1 - tile_overlap_factor_));
  const auto blend_extent =
      static_cast<int64_t>(static_cast<double>(tile_latent_min_size_) * tile_overlap_factor_);
  const int64_t row_limit = tile_latent_min_size_ - blend_extent;
  return tiled_apply(x, tile_sample_min_size_, overlap, blend_extent, row_limit,
                     [this](const at::Tensor& t) {
                       at::Tensor h = encoder_(t);
                       return quant_conv_ ? quant_conv_(h) : h;
                     });
}

at::Tensor AutoencoderKLImpl::tiled_decode(const at::Tensor& z) {
  const auto overlap =
      static_cast<int64_t>(static_cast<double>(tile_latent_min_size_) * (1 - tile_overlap_factor_));
  const auto blend_extent =
      static_cast<int64_t>(static_cast<double>(tile_sample_min_size_) * tile_overlap_factor_);
  const int64_t row_limit = tile_sample_min_size_ - blend_extent;
  return tiled_apply(
      z, tile_latent_min_size_, overlap, blend_extent, row_limit,
      [this](const at::Tensor& t) { return decoder_(post_quant_conv_ ? post_quant_conv_(t) : t); });
}

// ---- Loading -------------------------------------------------------------------------------

AutoencoderKL load_vae(const ComponentInfo& component) {
  const std::string origin = (component.dir / "config.json").string();
  if (component.class_name != "AutoencoderKL")
    throw ConfigError("component '" + component.name + "' is a " + component.class_name +
                          ", not an AutoencoderKL",
                      origin, "point the model at a Stable Diffusion vae/ folder");
  if (component.weight_files.empty())
    throw WeightsError("the VAE folder has no weights", component.dir.string(),
                       "expected diffusion_pytorch_model.safetensors");
  const StateDict weights =
      open_weights_for_loading(component.weight_files, component.dir.string());
  AutoencoderKLConfig config = AutoencoderKLConfig::from_json(component.config, origin);
  config.legacy_attention_names = weights.contains("encoder.mid_block.attentions.0.query.weight");
  AutoencoderKL model(config);
  load_state_dict_strict(*model, weights, component.dir.string());
  return model;
}

}  // namespace studio::image
