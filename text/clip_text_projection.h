// CLIP's text embedding as Point-E conditions on it (point_e/models/pretrained_clip.py embed_text):
// the text encoder's pooled output (final-LayerNorm state at the end-of-text token) through
// `text_projection`, L2-normalised. Loads the text half of a transformers CLIPModel or a
// CLIPTextModelWithProjection folder; the vision tower in the same file is ignored.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <filesystem>
#include <string>
#include <vector>

#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"

namespace studio {

// transformers' CLIPTextModelWithProjection: `text_model` (ClipTextTransformer) and
// `text_projection` (Linear hidden -> projection_dim, no bias), names as in the checkpoint.
class ClipTextModelWithProjectionImpl : public torch::nn::Module {
 public:
  ClipTextModelWithProjectionImpl(const ClipTextConfig& config, int64_t projection_dim);
  // Encoder outputs (last_hidden_state, pooler_output) for input_ids [B, L].
  ClipTextOutput encode(const at::Tensor& input_ids);
  // text_embeds: text_projection(pooler_output), [B, projection_dim], not normalised.
  at::Tensor forward(const at::Tensor& input_ids);
  const ClipTextConfig& config() const { return config_; }
  int64_t projection_dim() const { return projection_dim_; }

 private:
  ClipTextConfig config_;
  int64_t projection_dim_;
  ClipTextTransformer text_model_{nullptr};
  torch::nn::Linear text_projection_{nullptr};
};
TORCH_MODULE(ClipTextModelWithProjection);

// projection_dim of a CLIPModel / CLIPTextModelWithProjection config.json (top level, else
// text_config's; 768 = ViT-L/14 when neither has it).
int64_t clip_projection_dim(const nlohmann::json& config);

// Which checkpoint names the text embedding uses: text_model.* and text_projection.*.
bool is_clip_text_tensor(const std::string& name);

// Loads `dir` (config.json + model.safetensors, sharded or not): every text_model.* /
// text_projection.* tensor the module has must be present with its shape, and every such tensor
// in the file must be used; vision_model.*, visual_projection.*, logit_scale and the legacy
// text_model.embeddings.position_ids buffer are ignored. WeightsError lists the missing,
// unexpected and mis-shaped names of that subset. Eval mode, fp32 CPU.
ClipTextModelWithProjection load_clip_text_with_projection(const std::filesystem::path& dir);

// The tokenizer of a CLIP folder: `dir` itself (transformers keeps vocab.json / merges.txt next
// to the model) or dir/tokenizer.
ClipTokenizer load_clip_folder_tokenizer(const std::filesystem::path& dir);

// Point-E's embed_text: tokens (bos, text cut to 75 tokens, eos, padding to the encoder's
// length), text_embeds, divided by its L2 norm. Returns [1, projection_dim] fp32 on the CPU.
at::Tensor clip_text_embedding(ClipTextModelWithProjection& model, const ClipTokenizer& tokenizer,
                               const std::string& prompt);

}  // namespace studio
