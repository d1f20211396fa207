// CLIP text embedding with projection: see clip_text_projection.h.
#include "text/clip_text_projection.h"

#include <torch/torch.h>

#include <algorithm>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/module_loading.h"

namespace fs = std::filesystem;

namespace studio {

ClipTextModelWithProjectionImpl::ClipTextModelWithProjectionImpl(const ClipTextConfig& config,
                                                                 int64_t projection_dim)
    : config_(config), projection_dim_(projection_dim) {
  if (projection_dim <= 0) throw ConfigError("projection_dim must be positive");
  text_model_ = register_module("text_model", ClipTextTransformer(config));
  text_projection_ = register_module(
      "text_projection",
      torch::nn::Linear(torch::nn::LinearOptions(config.hidden_size, projection_dim).bias(false)));
}

ClipTextOutput ClipTextModelWithProjectionImpl::encode(const at::Tensor& input_ids) {
  return text_model_->forward(input_ids);
}

at::Tensor ClipTextModelWithProjectionImpl::forward(const at::Tensor& input_ids) {
  return text_projection_(encode(input_ids).pooler_output);
}

int64_t clip_projection_dim(const nlohmann::json& config) {
  if (config.contains("projection_dim") && config["projection_dim"].is_number_integer())
    return config["projection_dim"].get<int64_t>();
  if (config.contains("text_config") && config["text_config"].is_object() &&
      config["text_config"].contains("projection_dim") &&
      config["text_config"]["projection_dim"].is_number_integer())
    return config["text_config"]["projection_dim"].get<int64_t>();
  return 768;
}

bool is_clip_text_tensor(const std::string& name) {
  return (name.rfind("text_model.", 0) == 0 || name.rfind("text_projection.", 0) == 0) &&
         name != "text_model.embeddings.position_ids";
}

ClipTextModelWithProjection load_clip_text_with_projection(const fs::path& dir) {
  const fs::path cfg_path = dir / "config.json";
  if (!fs::is_regular_file(cfg_path))
    throw IoError("no config.json in the CLIP folder", dir.string(),
                  "--clip takes a transformers CLIPModel or CLIPTextModelWithProjection folder "
                  "(e.g. openai/clip-vit-large-patch14 with model.safetensors)");
  const nlohmann::json cfg = read_json_file(cfg_path);
  const std::vector<fs::path> files = find_weight_files(dir);
  if (files.empty())
    throw IoError("no model.safetensors in the CLIP folder", dir.string(),
                  "convert pytorch_model.bin to safetensors (see docs/pointe.md)");
  const StateDict weights = StateDict::open(files);
  ClipTextModelWithProjection model(ClipTextConfig::from_json(cfg, cfg_path.string()),
                                    clip_projection_dim(cfg));
  LoadReport report = check_state_dict(*model, weights);
  report.unexpected.erase(
      std::remove_if(report.unexpected.begin(), report.unexpected.end(),
                     [](const std::string& n) { return !is_clip_text_tensor(n); }),
      report.unexpected.end());
  if (!report.ok())
    throw WeightsError("the CLIP text weights do not match config.json:" + report.describe(),
                       dir.string(),
                       "the folder must hold a CLIPModel or CLIPTextModelWithProjection "
                       "(text_model.* and text_projection.weight) matching its config.json");
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters(true))
      p.value().copy_(weights.tensor(p.key()).to(p.value().scalar_type()));
    for (auto& b : model->named_buffers(true))
      b.value().copy_(weights.tensor(b.key()).to(b.value().scalar_type()));
  }
  model->eval();
  return model;
}

ClipTokenizer load_clip_folder_tokenizer(const fs::path& dir) {
  if (fs::is_regular_file(dir / "vocab.json")) return ClipTokenizer::load(dir);
  if (fs::is_regular_file(dir / "tokenizer" / "vocab.json"))
    return ClipTokenizer::load(dir / "tokenizer");
  throw IoError("no tokenizer (vocab.json, merges.txt) in the CLIP folder", dir.string(),
                "download the tokenizer files of the CLIP model next to config.json");
}

at::Tensor clip_text_embedding(ClipTextModelWithProjection& model, const ClipTokenizer& tokenizer,
                               const std::string& prompt) {
  torch::NoGradGuard no_grad;
  const size_t length =
      static_cast<size_t>(std::min<int64_t>(model->config().max_position_embeddings, 77));
  const ClipEncoding enc = tokenizer.encode_padded(prompt, length);
  const at::Tensor ids = at::tensor(enc.input_ids, at::TensorOptions(at::kLong)).reshape({1, -1});
  const at::Tensor e = model->forward(ids).to(at::kCPU, at::kFloat);
  return e / e.norm(2, {-1}, true);
}

}  // namespace studio
