// CLIP vision tower for Point-E's latent grid: see clip_vision_model.h.
#include "text/clip_vision_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"

namespace fs = std::filesystem;

namespace studio {

namespace {

// The text encoder's layers are CLIP's encoder layers; only their sizes differ.
ClipTextConfig encoder_config(const ClipVisionConfig& v) {
  ClipTextConfig c;
  c.hidden_size = v.hidden_size;
  c.intermediate_size = v.intermediate_size;
  c.num_hidden_layers = v.num_hidden_layers;
  c.num_attention_heads = v.num_attention_heads;
  c.layer_norm_eps = v.layer_norm_eps;
  c.hidden_act = v.hidden_act;
  return c;
}

}  // namespace

ClipVisionConfig ClipVisionConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  const nlohmann::json& v =
      j.contains("vision_config") && j["vision_config"].is_object() ? j["vision_config"] : j;
  ClipVisionConfig c;
  c.hidden_size = json_get<int64_t>(v, "hidden_size", c.hidden_size, origin);
  c.intermediate_size = json_get<int64_t>(v, "intermediate_size", c.intermediate_size, origin);
  c.num_hidden_layers = json_get<int64_t>(v, "num_hidden_layers", c.num_hidden_layers, origin);
  c.num_attention_heads =
      json_get<int64_t>(v, "num_attention_heads", c.num_attention_heads, origin);
  c.image_size = json_get<int64_t>(v, "image_size", c.image_size, origin);
  c.patch_size = json_get<int64_t>(v, "patch_size", c.patch_size, origin);
  c.num_channels = json_get<int64_t>(v, "num_channels", c.num_channels, origin);
  c.layer_norm_eps = json_get<double>(v, "layer_norm_eps", c.layer_norm_eps, origin);
  c.hidden_act = json_get<std::string>(v, "hidden_act", c.hidden_act, origin);
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
    throw ConfigError("hidden_act '" + c.hidden_act + "' is not supported", origin);
  if (c.hidden_size <= 0 || c.num_attention_heads <= 0 ||
      c.hidden_size % c.num_attention_heads != 0 || c.patch_size <= 0 ||
      c.image_size % c.patch_size != 0 || c.num_hidden_layers <= 0)
    throw ConfigError("invalid CLIP vision sizes (hidden/heads, image/patch)", origin);
  return c;
}

ClipVisionEmbeddingsImpl::ClipVisionEmbeddingsImpl(const ClipVisionConfig& c) {
  class_embedding_ = register_parameter("class_embedding", torch::randn({c.hidden_size}));
  patch_embedding_ = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size)
                            .stride(c.patch_size)
                            .bias(false)));
  position_embedding_ = register_module("position_embedding",
                                        torch::nn::Embedding(c.grid_tokens() + 1, c.hidden_size));
}

at::Tensor ClipVisionEmbeddingsImpl::forward(const at::Tensor& pixels) {
  const at::Tensor patches = patch_embedding_(pixels).flatten(2).transpose(1, 2);  // [B, N, D]
  const at::Tensor cls = class_embedding_.view({1, 1, -1}).expand({patches.size(0), 1, -1});
  const at::Tensor x = at::cat({cls, patches}, 1);
  return x + position_embedding_->weight.unsqueeze(0);
}

ClipVisionTransformerImpl::ClipVisionTransformerImpl(const ClipVisionConfig& c) : config_(c) {
  auto ln = [&] {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
  };
  embeddings_ = register_module("embeddings", ClipVisionEmbeddings(c));
  pre_layrnorm_ = register_module("pre_layrnorm", ln());
  encoder_ = register_module("encoder", ClipEncoder(encoder_config(c)));
  post_layernorm_ = register_module("post_layernorm", ln());
}

at::Tensor ClipVisionTransformerImpl::forward(const at::Tensor& pixels) {
  if (pixels.dim() != 4 || pixels.size(1) != config_.num_channels ||
      pixels.size(2) != config_.image_size || pixels.size(3) != config_.image_size)
    throw UsageError("CLIP vision input must be [B, " + std::to_string(config_.num_channels) +
                     ", " + std::to_string(config_.image_size) + ", " +
                     std::to_string(config_.image_size) + "], got " + c10::str(pixels.sizes()));
  const auto w = pre_layrnorm_->weight;
  at::Tensor x = pre_layrnorm_(embeddings_(pixels.to(w.device(), w.scalar_type())));
  const int64_t l = x.size(1);
  // No causal mask: every token attends to every token.
  const at::Tensor all = at::ones({l, l}, at::TensorOptions().dtype(at::kBool).device(w.device()));
  return encoder_(x, all, config_.num_hidden_layers);
}

ClipVisionModelImpl::ClipVisionModelImpl(const ClipVisionConfig& c) : config_(c) {
  vision_model_ = register_module("vision_model", ClipVisionTransformer(c));
}

at::Tensor ClipVisionModelImpl::grid(const at::Tensor& pixels) {
  // x.permute(1, 2, 0)[..., 1:] in Point-E's LND layout: [B, D, 1 + N] without the class token.
  return vision_model_->forward(pixels)
      .transpose(1, 2)
      .narrow(2, 1, config_.grid_tokens())
      .contiguous();
}

ClipVisionModel load_clip_vision_model(const fs::path& dir) {
  const fs::path cfg_path = dir / "config.json";
  if (!fs::is_regular_file(cfg_path))
    throw IoError("no config.json in the CLIP folder", dir.string(),
                  "--clip takes a transformers CLIPModel folder (openai/clip-vit-large-patch14)");
  const nlohmann::json cfg = read_json_file(cfg_path);
  const std::vector<fs::path> files = find_weight_files(dir);
  if (files.empty())
    throw IoError("no model.safetensors in the CLIP folder", dir.string(),
                  "convert pytorch_model.bin to safetensors (see docs/pointe.md)");
  const StateDict weights = StateDict::open(files);
  ClipVisionModel model(ClipVisionConfig::from_json(cfg, cfg_path.string()));
  LoadReport report = check_state_dict(*model, weights);
  report.unexpected.erase(std::remove_if(report.unexpected.begin(), report.unexpected.end(),
                                         [](const std::string& n) {
                                           return n.rfind("vision_model.", 0) != 0 ||
                                                  n == "vision_model.embeddings.position_ids";
                                         }),
                          report.unexpected.end());
  if (!report.ok())
    throw WeightsError("the CLIP vision weights do not match config.json:" + report.describe(),
                       dir.string(),
                       "the folder must hold a CLIPModel or CLIPVisionModel (vision_model.*) "
                       "matching its config.json");
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters(true))
      p.value().copy_(weights.tensor(p.key()).to(p.value().scalar_type()));
  }
  model->eval();
  return model;
}

at::Tensor clip_preprocess(const at::Tensor& rgb_u8, int64_t size) {
  if (rgb_u8.dim() != 3 || (rgb_u8.size(2) != 3 && rgb_u8.size(2) != 4) ||
      rgb_u8.scalar_type() != at::kByte || rgb_u8.size(0) < 1 || rgb_u8.size(1) < 1)
    throw UsageError("CLIP preprocessing takes an 8-bit [H, W, 3|4] image, got " +
                     c10::str(rgb_u8.sizes()));
  at::Tensor x = rgb_u8.narrow(2, 0, 3).permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
  const int64_t h = x.size(2), w = x.size(3);
  // torchvision Resize(size): the short side becomes `size`, the long one int(size * long / short).
  const int64_t nh = h <= w ? size : static_cast<int64_t>(static_cast<double>(size) * h / w);
  const int64_t nw = h <= w ? static_cast<int64_t>(static_cast<double>(size) * w / h) : size;
  x = at::_upsample_bicubic2d_aa(x, {nh, nw}, false).clamp(0, 255).round();
  // CenterCrop: int(round((dim - size) / 2)), Python's half-to-even rounding.
  const int64_t top = static_cast<int64_t>(std::nearbyint((nh - size) / 2.0));
  const int64_t left = static_cast<int64_t>(std::nearbyint((nw - size) / 2.0));
  x = x.narrow(2, top, size).narrow(3, left, size) / 255.0;
  const at::Tensor mean = at::tensor({0.48145466f, 0.4578275f, 0.40821073f}).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.26862954f, 0.26130258f, 0.27577711f}).view({1, 3, 1, 1});
  return ((x - mean) / std).contiguous();
}

}  // namespace studio
