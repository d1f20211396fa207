// A text diffusion LM ready to prompt: the LLaDA model and its byte-level BPE tokenizer loaded
// from one transformers folder (config.json, weights, tokenizer.json), with the chat template,
// the end-of-text ids and rendering of a half-denoised canvas for streaming.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "text/bpe_tokenizer.h"
#include "text/llada_model.h"
#include "text/llada_sampler.h"

namespace studio {

enum class ChatMode { kAuto, kOn, kOff };

class TextModel {
 public:
  // Loads `dir`: a LLaDA transformers folder (single or sharded safetensors) that also holds the
  // tokenizer.json. device "auto|cpu|cuda[:N]"; dtype "auto" = fp32 on the CPU, bf16 on CUDA.
  // chat kAuto: the chat template is used when tokenizer_config.json has a "chat_template"
  // (LLaDA-8B-Instruct) and the tokenizer has its control tokens. ConfigError when the
  // tokenizer and the model disagree (mask id, vocabulary larger than the embedding table).
  static TextModel load(const std::filesystem::path& dir, const std::string& device = "auto",
                        const std::string& dtype = "auto", ChatMode chat = ChatMode::kAuto);

  LLaDAModelLM& model() { return model_; }
  const LLaDAConfig& config() const { return model_->config(); }
  const BpeTokenizer& tokenizer() const { return tokenizer_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& weight_file() const { return weight_file_; }  // the first shard
  c10::Device device() const { return device_; }
  c10::ScalarType dtype() const { return dtype_; }
  bool chat() const { return chat_; }
  int64_t eot_id() const { return chat_ids_.eot; }  // -1 without a chat template
  int64_t mask_id() const { return config().mask_token_id; }

  // Prompt ids for user text (never parsed for control tokens): the chat template with a
  // generation prompt when chat(), else the plain text after the BOS token if the tokenizer has
  // one.
  std::vector<int64_t> prompt_ids(const std::string& user_text) const;

  // Generated text: cut at the first EOS / EoT id, special tokens dropped, invalid UTF-8
  // replaced (U+FFFD), surrounding whitespace trimmed.
  std::string decode_generated(const std::vector<int64_t>& ids) const;

  // decode(ids, skip special) with ids the tokenizer lacks shown as U+FFFD instead of an error.
  std::string decode_lenient(const std::vector<int64_t>& ids) const;

  // A canvas for display: masks shown as `mask_glyph`, special tokens dropped.
  std::string render(const std::vector<int64_t>& ids, const std::string& mask_glyph) const;

 private:
  TextModel(LLaDAModelLM model, BpeTokenizer tokenizer);

  LLaDAModelLM model_;
  BpeTokenizer tokenizer_;
  std::filesystem::path dir_, weight_file_;
  c10::Device device_ = c10::kCPU;
  c10::ScalarType dtype_ = c10::kFloat;
  bool chat_ = false;
  ChatTemplateIds chat_ids_;
  int64_t bos_ = -1;
};

// After each denoising step: the step (1-based) and each row's answer as it stands (masks shown
// as "_"). Return false to cancel.
using TextStepCallback = std::function<bool(int64_t step, const std::vector<std::string>& rows)>;

struct TextGeneration {
  std::vector<std::string> texts;  // per prompt
  LLaDASamplerResult sampling;     // ids, NFE, TTFT, total time
};

// Generates an answer to each user text (one batch; prompts of different lengths are padded).
TextGeneration generate_text(TextModel& model, const std::vector<std::string>& user_texts,
                             const LLaDASamplerOptions& options,
                             const TextStepCallback& on_step = nullptr);

}  // namespace studio
