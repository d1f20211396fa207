#include "text/text_model.h"

#include <torch/torch.h>

#include "core/checkpoint.h"
#include "core/device.h"
#include "core/error.h"
#include "core/json_file.h"

namespace fs = std::filesystem;

namespace studio {

TextModel::TextModel(LLaDAModelLM model, BpeTokenizer tokenizer)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)) {}

TextModel TextModel::load(const fs::path& dir, const std::string& device,
                          const std::string& dtype, ChatMode chat) {
  const CheckpointInfo info = inspect_checkpoint(dir);
  const ComponentInfo* llada = nullptr;
  for (const auto& c : info.components)
    if (c.class_name == "LLaDAModelLM") llada = &c;
  if (!llada)
    throw ConfigError("not a LLaDA model folder (found " +
                          (info.class_name.empty() ? std::string("no model") : info.class_name) +
                          ")",
                      dir.string(),
                      "give the folder of a LLaDA checkpoint in transformers layout (config.json "
                      "with architectures [\"LLaDAModelLM\"], safetensors weights, tokenizer.json)");
  const fs::path tok_file = llada->dir / "tokenizer.json";
  if (!fs::is_regular_file(tok_file))
    throw IoError("the model folder has no tokenizer.json", llada->dir.string(),
                  "copy the checkpoint's tokenizer.json (and tokenizer_config.json) next to its "
                  "config.json");
  BpeTokenizer tokenizer = BpeTokenizer::load(tok_file);
  LLaDAModelLM model = load_llada(*llada);
  const LLaDAConfig& c = model->config();
  if (int64_t(tokenizer.vocab_size()) > c.embedding_size)
    throw ConfigError("the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                          " tokens, more than the model's embedding table (" +
                          std::to_string(c.embedding_size) + ")",
                      tok_file.string(), "use the tokenizer that belongs to this checkpoint");
  const int64_t mask = tokenizer.token_to_id("<|mdm_mask|>");
  if (mask >= 0 && mask != c.mask_token_id)
    throw ConfigError("the tokenizer's <|mdm_mask|> is id " + std::to_string(mask) +
                          " but config.json says mask_token_id " +
                          std::to_string(c.mask_token_id),
                      tok_file.string(), "use the tokenizer that belongs to this checkpoint");

  TextModel m(std::move(model), std::move(tokenizer));
  m.dir_ = llada->dir;
  m.weight_file_ = llada->weight_files.empty() ? fs::path() : llada->weight_files.front();
  m.device_ = select_device(device);
  m.dtype_ = dtype.empty() || dtype == "auto"
                 ? (m.device_.is_cuda() ? c10::kBFloat16 : c10::kFloat)
                 : select_dtype(dtype, m.device_);
  m.model_->to(m.device_, m.dtype_);

  bool template_declared = false;
  const fs::path tok_config = llada->dir / "tokenizer_config.json";
  if (fs::is_regular_file(tok_config)) {
    const nlohmann::json tc = read_json_file(tok_config);
    template_declared = tc.contains("chat_template") && !tc["chat_template"].is_null();
  }
  const auto& t = m.tokenizer_;
  const bool has_tokens = t.token_to_id("<|start_header_id|>") >= 0 &&
                          t.token_to_id("<|end_header_id|>") >= 0 &&
                          t.token_to_id("<|eot_id|>") >= 0;
  m.chat_ = chat == ChatMode::kOn || (chat == ChatMode::kAuto && template_declared && has_tokens);
  const std::string bos = t.token_to_id("<|startoftext|>") >= 0 ? "<|startoftext|>" : "";
  if (m.chat_) m.chat_ids_ = ChatTemplateIds::from_tokenizer(t, bos);  // ConfigError if missing
  if (!bos.empty()) m.bos_ = t.token_to_id(bos);
  return m;
}

std::vector<int64_t> TextModel::prompt_ids(const std::string& user_text) const {
  if (chat_) return build_chat_ids(tokenizer_, {{"user", user_text}}, chat_ids_, true);
  std::vector<int64_t> ids;
  if (bos_ >= 0) ids.push_back(bos_);
  const auto body = tokenizer_.encode(user_text, false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

namespace {
std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}
}  // namespace

std::string TextModel::decode_generated(const std::vector<int64_t>& ids) const {
  std::vector<int64_t> kept;
  for (int64_t id : ids) {
    if (id == config().eos_token_id || (chat_ids_.eot >= 0 && id == chat_ids_.eot)) break;
    if (id == mask_id()) continue;
    // Ids of the embedding table that the tokenizer does not use (LLaDA-8B has ~100 of them
    // beyond its vocabulary): shown as U+FFFD rather than failing the whole text.
    kept.push_back(tokenizer_.has_id(id) ? id : -1);
  }
  return trim(decode_lenient(kept));
}

std::string TextModel::decode_lenient(const std::vector<int64_t>& ids) const {
  std::string out;
  std::vector<int64_t> run;
  for (int64_t id : ids) {
    if (id >= 0 && tokenizer_.has_id(id)) {
      run.push_back(id);
      continue;
    }
    out += tokenizer_.decode(run, true);
    run.clear();
    out += "\xEF\xBF\xBD";  // U+FFFD
  }
  return out + tokenizer_.decode(run, true);
}

std::string TextModel::render(const std::vector<int64_t>& ids,
                              const std::string& mask_glyph) const {
  std::string out;
  std::vector<int64_t> run;
  auto flush = [&] {
    if (!run.empty()) out += decode_lenient(run);
    run.clear();
  };
  for (int64_t id : ids) {
    if (id == mask_id()) {
      flush();
      out += mask_glyph;
    } else {
      run.push_back(id);
    }
  }
  flush();
  return out;
}

TextGeneration generate_text(TextModel& model, const std::vector<std::string>& user_texts,
                             const LLaDASamplerOptions& options,
                             const TextStepCallback& on_step) {
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& t : user_texts) prompts.push_back(model.prompt_ids(t));
  LLaDASamplerOptions o = options;
  if (o.sampler == LLaDASampler::kLLaDA && o.confidence_eos_eot_inf && o.eot_token_id < 0)
    o.eot_token_id = model.eot_id();
  if (on_step) {
    o.on_step = [&](const LLaDAStepInfo& info) {
      const int64_t width = info.canvas->size(1);
      const int64_t start = width - o.gen_length;
      std::vector<std::string> rows;
      for (int64_t b = 0; b < info.canvas->size(0); ++b) {
        const at::Tensor row = (*info.canvas)[b].narrow(0, start, o.gen_length).contiguous();
        const int64_t* d = row.data_ptr<int64_t>();
        rows.push_back(model.render(std::vector<int64_t>(d, d + o.gen_length), "_"));
      }
      return on_step(info.step, rows);
    };
  }
  TextGeneration g;
  g.sampling = llada_generate(model.model(), prompts, o);
  for (const auto& ids : g.sampling.generated_ids) g.texts.push_back(model.decode_generated(ids));
  return g;
}

}  // namespace studio
