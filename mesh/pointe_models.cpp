// Point-E networks: see pointe_models.h.
#include "mesh/pointe_models.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/module_loading.h"

namespace studio::pointe {

namespace {

namespace nn = torch::nn;

nn::Linear linear(int64_t in, int64_t out) { return nn::Linear(nn::LinearOptions(in, out)); }
nn::LayerNorm layer_norm(int64_t width) {
  return nn::LayerNorm(nn::LayerNormOptions({width}).eps(1e-5));
}

// softmax(q·kᵀ) v with q, k each scaled by d^-1/4 (Point-E's order, stable in fp16); q [B,T,H,d],
// k, v [B,S,H,d] -> [B,T,H*d].
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t d = q.size(3);
  const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(d)));
  const at::Tensor qh = (q * scale).permute({0, 2, 1, 3});  // [B,H,T,d]
  const at::Tensor kh = (k * scale).permute({0, 2, 3, 1});  // [B,H,d,S]
  at::Tensor w = at::matmul(qh, kh);
  w = at::softmax(w.to(at::kFloat), -1).to(q.scalar_type());
  const at::Tensor out = at::matmul(w, v.permute({0, 2, 1, 3}));  // [B,H,T,d]
  return out.permute({0, 2, 1, 3}).reshape({q.size(0), q.size(1), -1});
}

void require(bool ok, const std::string& what) {
  if (!ok) throw UsageError(what, "Point-E model", "check the tensor shapes passed to the model");
}

}  // namespace

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ConfigError("model_config is not an object", origin);
  ModelConfig c;
  c.name = j.value("name", "");
  if (c.name == "PointDiffusionTransformer")
    c.kind = ModelKind::PointDiffusion;
  else if (c.name == "CLIPImagePointDiffusionTransformer")
    c.kind = ModelKind::ClipVector;
  else if (c.name == "CLIPImageGridPointDiffusionTransformer")
    c.kind = ModelKind::ClipGrid;
  else if (c.name == "CLIPImageGridUpsamplePointDiffusionTransformer")
    c.kind = ModelKind::ClipGridUpsample;
  else if (c.name == "CrossAttentionPointCloudSDFModel")
    c.kind = ModelKind::CrossAttentionSdf;
  else
    throw ConfigError("unsupported Point-E model class '" + c.name + "'",
                      origin + ": model_config/name",
                      "supported: PointDiffusionTransformer, CLIPImagePointDiffusionTransformer, "
                      "CLIPImageGridPointDiffusionTransformer, "
                      "CLIPImageGridUpsamplePointDiffusionTransformer, "
                      "CrossAttentionPointCloudSDFModel");
  static const char* kCommon[] = {"name", "width", "n_ctx", "init_scale", "device", "dtype"};
  static const char* kDiffusion[] = {"layers",          "heads",           "input_channels",
                                     "output_channels", "time_token_cond", "cond_drop_prob",
                                     "frozen_clip",     "cache_dir"};
  static const char* kSdf[] = {"encoder_layers", "encoder_heads", "decoder_layers",
                               "decoder_heads"};
  std::vector<std::string> allowed(std::begin(kCommon), std::end(kCommon));
  if (c.is_diffusion()) {
    allowed.insert(allowed.end(), std::begin(kDiffusion), std::end(kDiffusion));
    if (c.kind == ModelKind::ClipVector) allowed.push_back("token_cond");
    if (c.kind == ModelKind::ClipGridUpsample) {
      for (const char* k : {"cond_ctx", "channel_scales", "channel_biases", "cond_input_channels"})
        allowed.push_back(k);
    }
  } else {
    allowed.insert(allowed.end(), std::begin(kSdf), std::end(kSdf));
  }
  for (const auto& [key, value] : j.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      throw ConfigError("unknown key '" + key + "' for " + c.name, origin + ": model_config",
                        "remove it or use a config written for Point-E's " + c.name);
  }
  auto get_int = [&](const char* key, int64_t fallback) {
    if (!j.contains(key)) return fallback;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
      throw ConfigError(std::string("'") + key + "' must be a positive integer",
                        origin + ": model_config/" + key);
    return j[key].get<int64_t>();
  };
  c.width = get_int("width", 512);
  c.n_ctx = get_int("n_ctx", c.kind == ModelKind::ClipGridUpsample    ? 3072
                             : c.kind == ModelKind::CrossAttentionSdf ? 4096
                                                                      : 1024);
  if (c.is_diffusion()) {
    c.layers = get_int("layers", 12);
    c.heads = get_int("heads", 8);
    c.input_channels = get_int("input_channels", 3);
    c.output_channels = get_int("output_channels", 3);
    c.time_token_cond = j.value("time_token_cond", false);
    c.token_cond = j.value("token_cond", false);
    c.cond_ctx = get_int("cond_ctx", 1024);
    if (j.contains("cond_input_channels") && !j["cond_input_channels"].is_null() &&
        j["cond_input_channels"].get<int64_t>() != c.input_channels)
      throw ConfigError("cond_input_channels other than input_channels is not supported",
                        origin + ": model_config/cond_input_channels");
    for (auto [key, out] :
         {std::pair<const char*, std::vector<double>*>{"channel_scales", &c.channel_scales},
          {"channel_biases", &c.channel_biases}}) {
      if (!j.contains(key) || j[key].is_null()) continue;
      *out = j[key].get<std::vector<double>>();
      if (static_cast<int64_t>(out->size()) != c.input_channels)
        throw ConfigError(std::string("'") + key + "' needs one value per input channel",
                          origin + ": model_config/" + key);
    }
  } else {
    c.encoder_layers = get_int("encoder_layers", 12);
    c.encoder_heads = get_int("encoder_heads", 8);
    c.decoder_layers = get_int("decoder_layers", 4);
    c.decoder_heads = get_int("decoder_heads", 8);
  }
  const bool heads_ok = c.is_diffusion()
                            ? c.width % c.heads == 0
                            : c.width % c.encoder_heads == 0 && c.width % c.decoder_heads == 0;
  if (!heads_ok)
    throw ConfigError("width must be a multiple of the head count", origin + ": model_config");
  return c;
}

MlpImpl::MlpImpl(int64_t width) {
  c_fc_ = register_module("c_fc", linear(width, 4 * width));
  c_proj_ = register_module("c_proj", linear(4 * width, width));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) { return c_proj_(at::gelu(c_fc_(x))); }

SelfAttentionImpl::SelfAttentionImpl(int64_t width, int64_t heads) : heads_(heads) {
  c_qkv_ = register_module("c_qkv", linear(width, 3 * width));
  c_proj_ = register_module("c_proj", linear(width, width));
}

at::Tensor SelfAttentionImpl::forward(const at::Tensor& x) {
  const at::Tensor qkv = c_qkv_(x);
  const int64_t d = x.size(2) / heads_;
  const at::Tensor per_head = qkv.view({x.size(0), x.size(1), heads_, 3 * d});
  const auto parts = per_head.split(d, -1);
  return c_proj_(attend(parts[0], parts[1], parts[2]));
}

ResidualBlockImpl::ResidualBlockImpl(int64_t width, int64_t heads) {
  attn_ = register_module("attn", SelfAttention(width, heads));
  ln_1_ = register_module("ln_1", layer_norm(width));
  mlp_ = register_module("mlp", Mlp(width));
  ln_2_ = register_module("ln_2", layer_norm(width));
}

at::Tensor ResidualBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = x + attn_(ln_1_(x));
  return h + mlp_(ln_2_(h));
}

TransformerImpl::TransformerImpl(int64_t width, int64_t layers, int64_t heads) {
  auto list = register_module("resblocks", nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    blocks_.push_back(ResidualBlock(width, heads));
    list->push_back(blocks_.back());
  }
}

at::Tensor TransformerImpl::forward(at::Tensor x, Activations* acts, const std::string& prefix) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    x = blocks_[i]->forward(x);
    if (acts) (*acts)[prefix + "resblocks." + std::to_string(i)] = x;
  }
  return x;
}

CrossAttentionImpl::CrossAttentionImpl(int64_t width, int64_t heads) : heads_(heads) {
  c_q_ = register_module("c_q", linear(width, width));
  c_kv_ = register_module("c_kv", linear(width, 2 * width));
  c_proj_ = register_module("c_proj", linear(width, width));
}

at::Tensor CrossAttentionImpl::forward(const at::Tensor& x, const at::Tensor& data) {
  const int64_t d = x.size(2) / heads_;
  const at::Tensor q = c_q_(x).view({x.size(0), x.size(1), heads_, d});
  const at::Tensor kv = c_kv_(data).view({data.size(0), data.size(1), heads_, 2 * d});
  const auto parts = kv.split(d, -1);
  return c_proj_(attend(q, parts[0], parts[1]));
}

CrossBlockImpl::CrossBlockImpl(int64_t width, int64_t heads) {
  attn_ = register_module("attn", CrossAttention(width, heads));
  ln_1_ = register_module("ln_1", layer_norm(width));
  ln_2_ = register_module("ln_2", layer_norm(width));
  mlp_ = register_module("mlp", Mlp(width));
  ln_3_ = register_module("ln_3", layer_norm(width));
}

at::Tensor CrossBlockImpl::forward(const at::Tensor& x, const at::Tensor& data) {
  at::Tensor h = x + attn_(ln_1_(x), ln_2_(data));
  return h + mlp_(ln_3_(h));
}

PerceiverImpl::PerceiverImpl(int64_t width, int64_t layers, int64_t heads) {
  auto list = register_module("resblocks", nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    blocks_.push_back(CrossBlock(width, heads));
    list->push_back(blocks_.back());
  }
}

at::Tensor PerceiverImpl::forward(at::Tensor x, const at::Tensor& data, Activations* acts,
                                  const std::string& prefix) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    x = blocks_[i]->forward(x, data);
    if (acts) (*acts)[prefix + "resblocks." + std::to_string(i)] = x;
  }
  return x;
}

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  const at::Tensor freqs =
      at::exp(-std::log(max_period) * at::arange(0, half, at::TensorOptions(at::kFloat)) /
              static_cast<double>(half))
          .to(t.device());
  // int64 t promotes to fp32 with the fp32 frequencies, as in Point-E.
  const at::Tensor args =
      t.index({at::indexing::Slice(), at::indexing::None}) * freqs.index({at::indexing::None});
  at::Tensor emb = at::cat({at::cos(args), at::sin(args)}, -1);
  if (dim % 2) emb = at::cat({emb, at::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb;
}

PointDiffusionTransformerImpl::PointDiffusionTransformerImpl(const ModelConfig& config)
    : config_(config) {
  if (!config.is_diffusion())
    throw ConfigError("not a point diffusion model: " + config.name, "model_config/name");
  const int64_t w = config.width;
  time_embed_ = register_module("time_embed", Mlp(w));
  ln_pre_ = register_module("ln_pre", layer_norm(w));
  backbone_ = register_module("backbone", Transformer(w, config.layers, config.heads));
  ln_post_ = register_module("ln_post", layer_norm(w));
  input_proj_ = register_module("input_proj", linear(config.input_channels, w));
  output_proj_ = register_module("output_proj", linear(w, config.output_channels));
  if (config.kind == ModelKind::ClipVector) {
    clip_vec_embed_ = register_module("clip_embed", linear(config.clip_feature_dim, w));
  } else if (config.kind == ModelKind::ClipGrid || config.kind == ModelKind::ClipGridUpsample) {
    clip_grid_embed_ =
        register_module("clip_embed", nn::Sequential(layer_norm(config.clip_grid_feature_dim),
                                                     linear(config.clip_grid_feature_dim, w)));
  }
  if (config.kind == ModelKind::ClipGridUpsample) {
    cond_point_proj_ = register_module("cond_point_proj", linear(config.input_channels, w));
    auto opts = at::TensorOptions(at::kFloat);
    if (!config.channel_scales.empty())
      channel_scales_ = register_buffer(
          "channel_scales",
          at::tensor(config.channel_scales, at::TensorOptions(at::kDouble)).to(opts));
    if (!config.channel_biases.empty())
      channel_biases_ = register_buffer(
          "channel_biases",
          at::tensor(config.channel_biases, at::TensorOptions(at::kDouble)).to(opts));
  }
}

at::Tensor PointDiffusionTransformerImpl::embed_clip(const at::Tensor& embeddings, int64_t batch,
                                                     Activations* acts) {
  at::Tensor out;
  if (config_.kind == ModelKind::ClipVector) {
    require(embeddings.defined() && embeddings.dim() == 2 && embeddings.size(0) == batch &&
                embeddings.size(1) == config_.clip_feature_dim,
            "CLIP embeddings must be [B, " + std::to_string(config_.clip_feature_dim) + "]");
    // Point-E rescales the (unit-norm) CLIP vector to unit variance per feature.
    out = clip_vec_embed_(embeddings * std::sqrt(static_cast<double>(embeddings.size(1))));
  } else {
    const int64_t cells = config_.clip_grid_size * config_.clip_grid_size;
    at::Tensor grid = embeddings;
    if (!grid.defined())  // unconditional upsampler: zero grid
      grid =
          at::zeros({batch, config_.clip_grid_feature_dim, cells}, input_proj_->weight.options());
    require(grid.dim() == 3 && grid.size(0) == batch &&
                grid.size(1) == config_.clip_grid_feature_dim && grid.size(2) == cells,
            "CLIP latent grids must be [B, " + std::to_string(config_.clip_grid_feature_dim) +
                ", " + std::to_string(cells) + "]");
    out = clip_grid_embed_->forward(grid.permute({0, 2, 1}));
  }
  if (acts) (*acts)["clip_embed"] = out;
  return out;
}

at::Tensor PointDiffusionTransformerImpl::forward(const at::Tensor& x, const at::Tensor& t,
                                                  const at::Tensor& embeddings,
                                                  const at::Tensor& low_res, Activations* acts) {
  const int64_t batch = x.size(0);
  require(x.dim() == 3 && x.size(1) == config_.input_channels,
          "x must be [B, " + std::to_string(config_.input_channels) + ", N], got " +
              c10::str(x.sizes()));
  require(t.dim() == 1 && t.size(0) == batch, "t must be [B]");
  require(x.size(2) == config_.n_ctx,
          "x has " + std::to_string(x.size(2)) +
              " points; the model takes n_ctx = " + std::to_string(config_.n_ctx));
  const at::Tensor t_in = timestep_embedding(t, config_.width);
  const at::Tensor t_embed = time_embed_(t_in);
  if (acts) {
    (*acts)["timestep_embedding"] = t_in;
    (*acts)["time_embed"] = t_embed;
  }
  // (embedding, as_token) in Point-E's order for each class.
  std::vector<std::pair<at::Tensor, bool>> cond;
  switch (config_.kind) {
    case ModelKind::PointDiffusion:
      cond = {{t_embed, config_.time_token_cond}};
      break;
    case ModelKind::ClipVector:
      cond = {{embed_clip(embeddings, batch, acts), config_.token_cond},
              {t_embed, config_.time_token_cond}};
      break;
    case ModelKind::ClipGrid:
      cond = {{t_embed, config_.time_token_cond}, {embed_clip(embeddings, batch, acts), true}};
      break;
    case ModelKind::ClipGridUpsample: {
      require(low_res.defined() && low_res.dim() == 3 && low_res.size(0) == batch &&
                  low_res.size(1) == config_.input_channels,
              "low_res must be [B, " + std::to_string(config_.input_channels) + ", N']");
      at::Tensor lr = low_res;
      if (channel_scales_.defined()) lr = lr * channel_scales_.view({1, -1, 1});
      if (channel_biases_.defined()) lr = lr + channel_biases_.view({1, -1, 1});
      const at::Tensor lr_embed = cond_point_proj_(lr.permute({0, 2, 1}));
      if (acts) (*acts)["cond_point_proj"] = lr_embed;
      cond = {{t_embed, config_.time_token_cond},
              {embed_clip(embeddings, batch, acts), true},
              {lr_embed, true}};
      break;
    }
    case ModelKind::CrossAttentionSdf:
      break;
  }
  at::Tensor h = input_proj_(x.permute({0, 2, 1}));
  if (acts) (*acts)["input_proj"] = h;
  std::vector<at::Tensor> tokens;
  int64_t n_extra = 0;
  for (const auto& [emb, as_token] : cond) {
    if (!as_token) h = h + emb.unsqueeze(1);
  }
  for (const auto& [emb, as_token] : cond) {
    if (!as_token) continue;
    tokens.push_back(emb.dim() == 2 ? emb.unsqueeze(1) : emb);
    n_extra += tokens.back().size(1);
  }
  tokens.push_back(h);
  h = at::cat(tokens, 1);
  if (acts) (*acts)["tokens_in"] = h;
  h = ln_pre_(h);
  h = backbone_->forward(h, acts, "backbone.");
  h = ln_post_(h);
  if (acts) (*acts)["ln_post"] = h;
  h = output_proj_(h.narrow(1, n_extra, h.size(1) - n_extra));
  if (acts) (*acts)["output_proj"] = h;
  return h.permute({0, 2, 1});
}

PointCloudSdfModelImpl::PointCloudSdfModelImpl(const ModelConfig& config) : config_(config) {
  if (config.kind != ModelKind::CrossAttentionSdf)
    throw ConfigError("not a Point-E SDF model: " + config.name, "model_config/name");
  const int64_t w = config.width;
  encoder_input_proj_ = register_module("encoder_input_proj", linear(3, w));
  encoder_ =
      register_module("encoder", Transformer(w, config.encoder_layers, config.encoder_heads));
  decoder_input_proj_ = register_module("decoder_input_proj", linear(3, w));
  decoder_ = register_module("decoder", Perceiver(w, config.decoder_layers, config.decoder_heads));
  ln_post_ = register_module("ln_post", layer_norm(w));
  output_proj_ = register_module("output_proj", linear(w, 1));
}

at::Tensor PointCloudSdfModelImpl::encode(const at::Tensor& point_clouds, Activations* acts) {
  require(point_clouds.dim() == 3 && point_clouds.size(1) == 3,
          "point clouds must be [B, 3, N], got " + c10::str(point_clouds.sizes()));
  at::Tensor h = encoder_input_proj_(point_clouds.permute({0, 2, 1}));
  if (acts) (*acts)["encoder_input_proj"] = h;
  return encoder_->forward(h, acts, "encoder.");
}

at::Tensor PointCloudSdfModelImpl::predict(const at::Tensor& queries, const at::Tensor& latents,
                                           Activations* acts) {
  require(queries.dim() == 3 && queries.size(1) == 3 && latents.dim() == 3 &&
              latents.size(0) == queries.size(0) && latents.size(2) == config_.width,
          "queries must be [B, 3, M] and latents [B, N, width]");
  at::Tensor h = decoder_input_proj_(queries.permute({0, 2, 1}));
  if (acts) (*acts)["decoder_input_proj"] = h;
  h = decoder_->forward(h, latents, acts, "decoder.");
  h = ln_post_(h);
  if (acts) (*acts)["ln_post"] = h;
  h = output_proj_(h);
  if (acts) (*acts)["output_proj"] = h;
  return h.select(-1, 0);
}

ComponentInfo pointe_component(const std::filesystem::path& dir) {
  const CheckpointInfo info = inspect_checkpoint(dir);
  if (info.components.size() != 1 || info.components[0].kind != CheckpointKind::PointEModel)
    throw ConfigError("not a Point-E model folder", dir.string(),
                      "expected config.json with 'model_config' and model.safetensors");
  return info.components[0];
}

namespace {

template <typename M>
M load_model(const ComponentInfo& component) {
  const std::string origin = (component.dir / "config.json").string();
  if (!component.config.contains("model_config"))
    throw ConfigError("config.json has no 'model_config'", origin);
  const ModelConfig config = ModelConfig::from_json(component.config["model_config"], origin);
  const StateDict weights =
      open_weights_for_loading(component.weight_files, component.dir.string());
  M model(config);
  load_state_dict_strict(*model, weights, component.dir.string());
  model->eval();
  return model;
}

}  // namespace

PointDiffusionTransformer load_diffusion_model(const ComponentInfo& component) {
  return load_model<PointDiffusionTransformer>(component);
}

PointCloudSdfModel load_sdf_model(const ComponentInfo& component) {
  return load_model<PointCloudSdfModel>(component);
}

}  // namespace studio::pointe
