#include "video/motion_module.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"

namespace studio::video {

namespace nn = torch::nn;

// ---- Config --------------------------------------------------------------------------------

MotionAdapterConfig MotionAdapterConfig::from_json(const nlohmann::json& j,
                                                   const std::string& origin) {
  if (!j.is_object()) throw ConfigError("the MotionAdapter config is not a JSON object", origin);
  const std::string cls = json_get<std::string>(j, "_class_name", "MotionAdapter", origin);
  if (cls != "MotionAdapter")
    throw ConfigError("the config describes a " + cls + ", not a MotionAdapter", origin,
                      "point at a diffusers MotionAdapter folder (config.json + weights)");
  auto conv_in = j.find("conv_in_channels");
  if (conv_in != j.end() && !conv_in->is_null())
    throw ConfigError("key 'conv_in_channels' = " + conv_in->dump() + " is not supported yet",
                      origin,
                      "PIA-style adapters with their own conv_in are not implemented; "
                      "AnimateDiff adapters have conv_in_channels null");
  MotionAdapterConfig c;
  auto channels = j.find("block_out_channels");
  if (channels == j.end() || !channels->is_array() || channels->empty())
    throw ConfigError("key 'block_out_channels' must be a non-empty list of channel counts",
                      origin);
  for (const auto& v : *channels) {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw ConfigError("block_out_channels must hold positive integers, found " + v.dump(),
                        origin);
    c.block_out_channels.push_back(v.get<int64_t>());
  }
  c.motion_layers_per_block = json_get<int64_t>(j, "motion_layers_per_block", 2, origin);
  c.motion_mid_block_layers_per_block =
      json_get<int64_t>(j, "motion_mid_block_layers_per_block", 1, origin);
  c.motion_num_attention_heads = json_get<int64_t>(j, "motion_num_attention_heads", 8, origin);
  c.motion_norm_num_groups = json_get<int64_t>(j, "motion_norm_num_groups", 32, origin);
  c.motion_max_seq_length = json_get<int64_t>(j, "motion_max_seq_length", 32, origin);
  c.use_motion_mid_block = json_get<bool>(j, "use_motion_mid_block", true, origin);
  auto it = j.find("motion_transformer_layers_per_block");
  if (it != j.end() && !it->is_null()) {
    if (!it->is_number_integer())
      throw ConfigError(
          "key 'motion_transformer_layers_per_block' = " + it->dump() + " is not supported yet",
          origin, "only one int for every block is implemented");
    c.motion_transformer_layers_per_block = it->get<int64_t>();
  }
  if (c.motion_layers_per_block < 1 || c.motion_mid_block_layers_per_block < 1 ||
      c.motion_transformer_layers_per_block < 1)
    throw ConfigError("motion layer counts must be at least 1", origin);
  if (c.motion_num_attention_heads < 1 || c.motion_norm_num_groups < 1 ||
      c.motion_max_seq_length < 1)
    throw ConfigError(
        "motion_num_attention_heads, motion_norm_num_groups and motion_max_seq_length must be "
        "positive",
        origin);
  for (int64_t ch : c.block_out_channels) {
    if (ch % c.motion_num_attention_heads != 0 || (ch / c.motion_num_attention_heads) % 2 != 0)
      throw ConfigError(std::to_string(c.motion_num_attention_heads) +
                            " motion attention heads do not split " + std::to_string(ch) +
                            " channels into heads of even width",
                        origin);
    if (ch % c.motion_norm_num_groups != 0)
      throw ConfigError("motion_norm_num_groups " + std::to_string(c.motion_norm_num_groups) +
                            " does not divide " + std::to_string(ch) + " channels",
                        origin);
  }
  return c;
}

// ---- Position encoding ---------------------------------------------------------------------

at::Tensor sinusoidal_position_table(int64_t max_seq_length, int64_t dim) {
  if (dim <= 0 || dim % 2 != 0 || max_seq_length <= 0)
    throw UsageError("the sinusoidal position table needs an even width and a positive length",
                     "sinusoidal_position_table");
  // The same float32 operations as diffusers (arange, exp, product, sin/cos).
  const at::Tensor position = at::arange(max_seq_length, at::kLong).unsqueeze(1);
  const at::Tensor div_term = at::exp(at::arange(0, dim, 2, at::kLong).to(at::kFloat) *
                                      static_cast<float>(-std::log(10000.0) / dim));
  const at::Tensor angles = position * div_term;  // [L, dim/2] float32
  at::Tensor pe = at::zeros({1, max_seq_length, dim}, at::kFloat);
  using torch::indexing::None;
  using torch::indexing::Slice;
  pe.index_put_({0, Slice(), Slice(0, None, 2)}, at::sin(angles));
  pe.index_put_({0, Slice(), Slice(1, None, 2)}, at::cos(angles));
  return pe;
}

// ---- Temporal transformer block ------------------------------------------------------------

TemporalTransformerBlockImpl::TemporalTransformerBlockImpl(int64_t dim, int64_t heads,
                                                           int64_t max_seq_length) {
  auto layer_norm = [&](const char* name) {
    return register_module(
        name, nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-5).elementwise_affine(true)));
  };
  image::AttentionOptions a;
  a.query_dim = dim;
  a.heads = heads;
  a.dim_head = dim / heads;
  a.bias = false;
  a.out_bias = true;
  norm1_ = layer_norm("norm1");
  attn1_ = register_module("attn1", image::Attention(a));
  norm2_ = layer_norm("norm2");
  attn2_ = register_module("attn2", image::Attention(a));
  norm3_ = layer_norm("norm3");
  ff_ =
      register_module("ff", image::FeedForward(dim, 4 * dim, image::FeedForwardActivation::kGEGLU));
  pos_embed_ = register_module("pos_embed", std::make_shared<nn::Module>());
  pe_ = pos_embed_->register_buffer("pe", sinusoidal_position_table(max_seq_length, dim));
}

at::Tensor TemporalTransformerBlockImpl::forward(const at::Tensor& x) {
  const int64_t frames = x.size(1);
  if (frames > pe_.size(1))
    throw UsageError(std::to_string(frames) +
                         " frames exceed the motion module's position table (" +
                         std::to_string(pe_.size(1)) + ")",
                     "MotionModule", "generate at most motion_max_seq_length frames");
  // Loading copies into the buffer and ->to() swaps its data in place, so pe_ stays current.
  const at::Tensor pe = pe_.narrow(1, 0, frames);
  at::Tensor h = x + attn1_(norm1_(x) + pe);
  h = h + attn2_(norm2_(h) + pe);
  return h + ff_(norm3_(h));
}

// ---- Motion module -------------------------------------------------------------------------

MotionModuleImpl::MotionModuleImpl(int64_t channels, int64_t heads, int64_t groups,
                                   int64_t max_seq_length, int64_t num_layers)
    : channels_(channels), max_seq_length_(max_seq_length) {
  norm_ = register_module(
      "norm", nn::GroupNorm(nn::GroupNormOptions(groups, channels).eps(1e-6).affine(true)));
  proj_in_ = register_module("proj_in", nn::Linear(channels, channels));
  nn::ModuleList blocks;
  for (int64_t i = 0; i < num_layers; ++i) {
    blocks_.emplace_back(channels, heads, max_seq_length);
    blocks->push_back(blocks_.back());
  }
  register_module("transformer_blocks", blocks);
  proj_out_ = register_module("proj_out", nn::Linear(channels, channels));
}

at::Tensor MotionModuleImpl::forward(const at::Tensor& x, int64_t num_frames) {
  if (x.dim() != 4 || x.size(1) != channels_ || num_frames < 1 || x.size(0) % num_frames != 0)
    throw UsageError("a motion module expects [B*F, " + std::to_string(channels_) +
                         ", H, W] with the batch a multiple of " + std::to_string(num_frames) +
                         " frames",
                     "MotionModule");
  const int64_t bf = x.size(0), c = channels_, hgt = x.size(2), wid = x.size(3);
  const int64_t b = bf / num_frames;
  // [B·F, C, H, W] → [B, C, F, H, W] for the GroupNorm (statistics over all frames).
  at::Tensor h = x.reshape({b, num_frames, c, hgt, wid}).permute({0, 2, 1, 3, 4});
  h = norm_(h);
  // → per pixel a sequence over frames: [B·H·W, F, C].
  h = h.permute({0, 3, 4, 2, 1}).reshape({b * hgt * wid, num_frames, c});
  h = proj_in_(h);
  for (auto& block : blocks_) h = block(h);
  h = proj_out_(h);
  h = h.reshape({b, hgt, wid, num_frames, c}).permute({0, 3, 4, 1, 2}).reshape({bf, c, hgt, wid});
  return h + x;
}

// ---- Adapter -------------------------------------------------------------------------------

MotionAdapterImpl::MotionAdapterImpl(const MotionAdapterConfig& c) : config_(c) {
  auto make_block = [&](int64_t channels, int64_t layers) {
    auto holder = std::make_shared<nn::Module>();
    nn::ModuleList list;
    std::vector<MotionModule> modules;
    for (int64_t l = 0; l < layers; ++l) {
      modules.emplace_back(channels, c.motion_num_attention_heads, c.motion_norm_num_groups,
                           c.motion_max_seq_length, c.motion_transformer_layers_per_block);
      list->push_back(modules.back());
    }
    holder->register_module("motion_modules", list);
    return std::make_pair(holder, modules);
  };
  const std::size_t n = c.block_out_channels.size();
  nn::ModuleList down, up;
  for (std::size_t i = 0; i < n; ++i) {
    auto [holder, modules] = make_block(c.block_out_channels[i], c.motion_layers_per_block);
    down->push_back(holder);
    down_.push_back(modules);
  }
  for (std::size_t i = 0; i < n; ++i) {
    auto [holder, modules] =
        make_block(c.block_out_channels[n - 1 - i], c.motion_layers_per_block + 1);
    up->push_back(holder);
    up_.push_back(modules);
  }
  register_module("down_blocks", down);
  if (c.use_motion_mid_block) {
    auto [holder, modules] =
        make_block(c.block_out_channels[n - 1], c.motion_mid_block_layers_per_block);
    register_module("mid_block", holder);
    mid_ = modules;
  }
  register_module("up_blocks", up);
}

MotionModule& MotionAdapterImpl::down(std::size_t block, std::size_t layer) {
  if (block >= down_.size() || layer >= down_[block].size())
    throw UsageError("no motion module down_blocks." + std::to_string(block) + ".motion_modules." +
                         std::to_string(layer),
                     "MotionAdapter");
  return down_[block][layer];
}

MotionModule& MotionAdapterImpl::up(std::size_t block, std::size_t layer) {
  if (block >= up_.size() || layer >= up_[block].size())
    throw UsageError("no motion module up_blocks." + std::to_string(block) + ".motion_modules." +
                         std::to_string(layer),
                     "MotionAdapter");
  return up_[block][layer];
}

MotionModule* MotionAdapterImpl::mid(std::size_t layer) {
  if (mid_.empty()) return nullptr;
  if (layer >= mid_.size())
    throw UsageError("no motion module mid_block.motion_modules." + std::to_string(layer),
                     "MotionAdapter");
  return &mid_[layer];
}

// ---- Names and loading ---------------------------------------------------------------------

namespace {

bool replace_all(std::string& s, const std::string& from, const std::string& to) {
  bool any = false;
  for (std::size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos)) {
    s.replace(pos, from.size(), to);
    pos += to.size();
    any = true;
  }
  return any;
}

}  // namespace

std::optional<std::string> diffusers_motion_name(const std::string& name) {
  std::string s = name;
  // One position table per transformer block in diffusers (shared by attn1 and attn2).
  if (s.find(".attention_blocks.1.pos_encoder.") != std::string::npos) return std::nullopt;
  replace_all(s, ".attention_blocks.0.pos_encoder.pe", ".pos_embed.pe");
  replace_all(s, ".temporal_transformer.", ".");
  replace_all(s, ".attention_blocks.0.", ".attn1.");
  replace_all(s, ".attention_blocks.1.", ".attn2.");
  replace_all(s, ".norms.0.", ".norm1.");
  replace_all(s, ".norms.1.", ".norm2.");
  replace_all(s, ".ff_norm.", ".norm3.");
  return s;
}

void load_motion_adapter_weights(MotionAdapterImpl& adapter, const StateDict& weights,
                                 const std::string& origin) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& item : adapter.named_parameters(true)) targets[item.key()] = item.value();
  for (const auto& item : adapter.named_buffers(true)) targets[item.key()] = item.value();

  LoadReport report;
  std::map<std::string, std::string> source_of;  // diffusers name → checkpoint name
  for (const std::string& name : weights.names()) {
    const std::optional<std::string> mapped = diffusers_motion_name(name);
    if (!mapped) continue;
    auto it = targets.find(*mapped);
    if (it == targets.end() || source_of.count(*mapped)) {
      report.unexpected.push_back(name);
      continue;
    }
    source_of[*mapped] = name;
    const std::vector<int64_t> want = it->second.sizes().vec();
    const std::vector<int64_t>& have = weights.info(name).shape;
    if (have != want) {
      auto dims = [](const std::vector<int64_t>& v) {
        std::string s = "[";
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
        return s + "]";
      };
      report.mismatched.push_back(name + ": checkpoint " + dims(have) + " vs model " + dims(want));
    }
  }
  for (const auto& [name, tensor] : targets)
    if (!source_of.count(name)) report.missing.push_back(name);
  if (!report.ok())
    throw WeightsError(
        "the motion adapter weights do not match its config: " + report.describe(), origin,
        "use a diffusers MotionAdapter (or original AnimateDiff mm_* names converted "
        "to safetensors) whose config.json matches the weights");
  torch::NoGradGuard no_grad;
  for (const auto& [name, source] : source_of) {
    at::Tensor& dst = targets[name];
    dst.copy_(weights.tensor(source).to(dst.scalar_type()));
  }
}

MotionAdapter load_motion_adapter(const std::filesystem::path& dir) {
  const std::filesystem::path config_path = dir / "config.json";
  if (!std::filesystem::is_regular_file(config_path))
    throw ConfigError("no config.json in the motion adapter folder", dir.string(),
                      "point at a MotionAdapter folder, e.g. a download of "
                      "guoyww/animatediff-motion-adapter-v1-5-2");
  const nlohmann::json config = read_json_file(config_path);
  const MotionAdapterConfig adapter_config =
      MotionAdapterConfig::from_json(config, config_path.string());
  const auto files = find_weight_files(dir);
  if (files.empty())
    throw WeightsError("the motion adapter folder has no weights", dir.string(),
                       "expected diffusion_pytorch_model.safetensors");
  const StateDict weights = open_weights_for_loading(files, dir.string());
  MotionAdapter adapter(adapter_config);
  load_motion_adapter_weights(*adapter, weights, dir.string());
  adapter->eval();
  return adapter;
}

}  // namespace studio::video
