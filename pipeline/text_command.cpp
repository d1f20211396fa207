// `studio text` (generate), `studio text edit` (Instant Edit) and `studio copy` (the
// draft-and-verify copywriter) with a LLaDA folder. The text goes to stdout (or --out, written
// atomically with a sidecar JSON); metrics (NFE, TTFT, TPOT, tokens/s) go to stderr and --json.
#include <fmt/format.h>

#include <iostream>
#include <regex>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json_file.h"
#include "core/limits.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/presets.h"
#include "pipeline/text_stream.h"
#include "text/copywriter.h"
#include "text/instant_edit.h"
#include "text/text_model.h"

namespace fs = std::filesystem;

namespace studio {

namespace {

struct SamplingFlags {
  std::string sampler = "auto";
  int64_t gen_length = 128;
  int64_t steps = 0;         // 0: gen_length (text) / 32 (edit)
  int64_t block_length = 0;  // 0: min(32, gen_length)
  double threshold = 0;      // 0: none
  int64_t tokens_per_step = 0;
  std::string cache = "none";
  double temperature = 0;
  double cfg = 0;
  std::string remasking = "low-confidence";
  uint64_t seed = 0;
};

struct TextOptions {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  std::string chat = "auto";
  std::string device = "auto";
  std::string dtype = "auto";
  bool stream = false;
  std::string json_out;
  std::string out;
  SamplingFlags s;
  // edit
  std::string text;
  std::string text_file;
  std::vector<std::string> spans;
  std::string regex;
  int64_t regex_tokens = -1;
  std::string instruction;
  // copy
  std::string brief;
  std::string preset;
  std::string presets_dir;
  std::string tier;
  int64_t drafts = -1;
  int64_t rounds = -1;
};

ChatMode chat_mode(const std::string& s) {
  if (s == "auto") return ChatMode::kAuto;
  if (s == "on") return ChatMode::kOn;
  if (s == "off") return ChatMode::kOff;
  throw UsageError("invalid --chat '" + s + "'", "--chat", "use auto, on or off");
}

LLaDASamplerOptions sampler_options(const SamplingFlags& f, bool infill) {
  LLaDASamplerOptions o;
  const bool fast_options = f.threshold > 0 || f.tokens_per_step > 0 || f.cache != "none";
  if (f.sampler == "auto")
    o.sampler = fast_options ? LLaDASampler::kFastDLLM : LLaDASampler::kLLaDA;
  else if (f.sampler == "llada")
    o.sampler = LLaDASampler::kLLaDA;
  else if (f.sampler == "fast-dllm")
    o.sampler = LLaDASampler::kFastDLLM;
  else
    throw UsageError("invalid --sampler '" + f.sampler + "'", "--sampler",
                     "use auto, llada or fast-dllm");
  check_limit<UsageError>("gen_tokens", f.gen_length, "--gen-length asks for", "--gen-length",
                          "generate less");
  o.gen_length = f.gen_length;
  o.block_length = f.block_length > 0 ? f.block_length : std::min<int64_t>(32, f.gen_length);
  o.steps = f.steps > 0 ? f.steps : (infill ? 32 : f.gen_length);
  if (f.threshold > 0) o.threshold = f.threshold;
  o.tokens_per_step = f.tokens_per_step;
  if (f.cache == "none")
    o.cache = LLaDACacheMode::kNone;
  else if (f.cache == "prefix")
    o.cache = LLaDACacheMode::kPrefix;
  else if (f.cache == "dual")
    o.cache = LLaDACacheMode::kDual;
  else
    throw UsageError("invalid --cache '" + f.cache + "'", "--cache", "use none, prefix or dual");
  o.temperature = f.temperature;
  o.cfg_scale = f.cfg;
  if (f.remasking == "low-confidence")
    o.remasking = LLaDARemasking::kLowConfidence;
  else if (f.remasking == "random")
    o.remasking = LLaDARemasking::kRandom;
  else
    throw UsageError("invalid --remasking '" + f.remasking + "'", "--remasking",
                     "use low-confidence or random");
  o.seed = f.seed;
  return o;
}

nlohmann::json sampling_json(const LLaDASamplerOptions& o) {
  nlohmann::json j = {
      {"sampler", o.sampler == LLaDASampler::kLLaDA ? "llada" : "fast-dllm"},
      {"gen_length", o.gen_length},
      {"block_length", o.block_length},
      {"steps", o.steps},
      {"threshold", nullptr},
      {"tokens_per_step", o.tokens_per_step},
      {"cache", o.cache == LLaDACacheMode::kNone     ? "none"
                : o.cache == LLaDACacheMode::kPrefix ? "prefix"
                                                     : "dual"},
      {"temperature", o.temperature},
      {"cfg_scale", o.cfg_scale},
      {"remasking", o.remasking == LLaDARemasking::kLowConfidence ? "low-confidence" : "random"},
      {"seed", o.seed}};
  if (o.threshold) j["threshold"] = *o.threshold;
  return j;
}

nlohmann::json metrics_json(const LLaDASamplerResult& r) {
  const int64_t tokens = r.generated_tokens();
  return {{"nfe", r.nfe},
          {"tokens", tokens},
          {"ttft_seconds", r.ttft_seconds},
          {"tpot_seconds", r.tpot_seconds()},
          {"total_seconds", r.total_seconds},
          {"tokens_per_second", r.total_seconds > 0 ? double(tokens) / r.total_seconds : 0.0}};
}

void print_metrics(const LLaDASamplerResult& r) {
  const int64_t tokens = r.generated_tokens();
  std::cerr << fmt::format(
      "{} tokens, {} NFE, TTFT {:.3f} s, TPOT {:.2f} ms, {:.1f} tokens/s, {:.2f} s total\n",
      tokens, r.nfe, r.ttft_seconds, r.tpot_seconds() * 1e3,
      r.total_seconds > 0 ? double(tokens) / r.total_seconds : 0.0, r.total_seconds);
}

std::string read_text_arg(const std::string& inline_text, const std::string& file,
                          const char* what) {
  if (!inline_text.empty() && !file.empty())
    throw UsageError(std::string("give the ") + what + " inline or as a file, not both");
  if (!file.empty()) return read_file_bytes(file);
  return inline_text;
}

nlohmann::json model_json(const TextModel& m) {
  return {{"dir", m.dir().string()},
          {"weights", m.weight_file().filename().string()},
          {"weights_sha256", m.weight_file().empty() ? "" : sha256_file_hex(m.weight_file())},
          {"device", m.device().str()},
          {"dtype", std::string(c10::toString(m.dtype()))},
          {"chat_template", m.chat()}};
}

// Writes the text (atomically) and its sidecar, or prints it.
void emit(const std::string& text, const std::string& out, const nlohmann::json& sidecar) {
  if (out.empty()) {
    std::cout << text << "\n";
    return;
  }
  const fs::path p(out);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  write_file_atomic(p, text + "\n");
  write_file_atomic(fs::path(out + ".json"), sidecar.dump(2) + "\n");
  std::cerr << "wrote " << out << " (and " << out << ".json)\n";
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  write_file_atomic(path, j.dump(2) + "\n");
}

TextModel load_model(const TextOptions& o) {
  if (o.model.empty()) throw UsageError("no model folder", "--model", "give --model DIR");
  std::cerr << "loading " << o.model << "\n";
  return TextModel::load(o.model, o.device, o.dtype, chat_mode(o.chat));
}

int run_text(const TextOptions& o) {
  const std::string prompt = read_text_arg(o.prompt, o.prompt_file, "prompt");
  if (prompt.empty()) throw UsageError("no prompt", "--prompt", "give --prompt TEXT or --prompt-file");
  if (!o.prompt_file.empty()) check_prompt_chars(prompt, o.prompt_file);
  const LLaDASamplerOptions so = sampler_options(o.s, false);
  TextModel model = load_model(o);
  CanvasStream stream;
  TextStepCallback on_step;
  if (o.stream)
    on_step = [&](int64_t step, const std::vector<std::string>& rows) {
      stream.show("text", long(step), rows);
      return true;
    };
  const TextGeneration g = generate_text(model, {prompt}, so, on_step);
  stream.finish();
  print_metrics(g.sampling);
  const nlohmann::json record = {{"studio", {{"command", "text"}, {"version", STUDIO_VERSION}}},
                                 {"model", model_json(model)},
                                 {"prompt", prompt},
                                 {"sampling", sampling_json(so)},
                                 {"metrics", metrics_json(g.sampling)},
                                 {"text", g.texts.at(0)}};
  emit(g.texts.at(0), o.out, record);
  write_json(o.json_out, record);
  return kExitOk;
}

int run_edit(const TextOptions& o) {
  EditRequest req;
  req.text = read_text_arg(o.text, o.text_file, "text");
  if (req.text.empty()) throw UsageError("no text to edit", "--text", "give --text or --text-file");
  if (!o.text_file.empty()) check_prompt_chars(req.text, o.text_file);
  req.instruction = o.instruction;
  if (req.instruction.empty())
    throw UsageError("no instruction", "--instruction", "say how to rewrite the spans");
  static const std::regex span_re("^(\\d+):(\\d+)(?::(\\d+))?$");
  for (const auto& s : o.spans) {
    std::smatch m;
    if (!std::regex_match(s, m, span_re))
      throw UsageError("invalid span '" + s + "'", "--span",
                       "use A:B or A:B:N (characters A to B, end exclusive; N tokens)");
    req.spans.push_back(span_from_chars(req.text, std::stoll(m[1]), std::stoll(m[2]),
                                        m[3].matched ? std::stoll(m[3].str()) : -1));
  }
  if (!o.regex.empty()) {
    if (!req.spans.empty()) throw UsageError("give --span or --regex, not both", "--regex");
    req.spans = spans_from_regex(req.text, o.regex, o.regex_tokens);
  }
  if (req.spans.empty())
    throw UsageError("nothing to edit", "--span", "give --span A:B or --regex RE");
  std::sort(req.spans.begin(), req.spans.end(),
            [](const TextSpan& a, const TextSpan& b) { return a.begin < b.begin; });
  const LLaDASamplerOptions so = sampler_options(o.s, true);
  TextModel model = load_model(o);
  CanvasStream stream;
  TextStepCallback on_step;
  if (o.stream)
    on_step = [&](int64_t step, const std::vector<std::string>& rows) {
      stream.show("edit", long(step), rows);
      return true;
    };
  const EditBatchResult r = instant_edit(model, {req}, so, on_step);
  stream.finish();
  print_metrics(r.sampling);
  nlohmann::json spans = nlohmann::json::array();
  for (size_t i = 0; i < req.spans.size(); ++i)
    spans.push_back({{"begin_byte", req.spans[i].begin},
                     {"end_byte", req.spans[i].end},
                     {"tokens", req.spans[i].tokens},
                     {"original", req.text.substr(req.spans[i].begin,
                                                  req.spans[i].end - req.spans[i].begin)},
                     {"replacement", r.edits[0].replacements[i]}});
  nlohmann::json so_json = sampling_json(so);
  so_json.erase("gen_length");
  so_json.erase("block_length");
  const nlohmann::json record = {{"studio", {{"command", "text edit"}, {"version", STUDIO_VERSION}}},
                                 {"model", model_json(model)},
                                 {"instruction", req.instruction},
                                 {"original", req.text},
                                 {"spans", spans},
                                 {"sampling", so_json},
                                 {"metrics", metrics_json(r.sampling)},
                                 {"text", r.edits[0].text}};
  // The edited text exactly (no added newline when printing would change it: print as is).
  if (o.out.empty()) {
    std::cout << r.edits[0].text << (r.edits[0].text.empty() || r.edits[0].text.back() != '\n' ? "\n" : "");
  } else {
    emit(r.edits[0].text, o.out, record);
  }
  write_json(o.json_out, record);
  return kExitOk;
}

int run_copy(const TextOptions& o) {
  if (o.brief.empty()) throw UsageError("no brief", "--brief", "give --brief FILE (JSON)");
  if (o.preset.empty()) throw UsageError("no preset", "--preset", "give --preset NAME");
  const CopyBrief brief = CopyBrief::load(o.brief);
  const nlohmann::json brief_fields = brief.to_json();
  for (const auto& [key, value] : brief_fields.items()) {  // STUDIO_LIMIT_PROMPT_CHARS
    if (value.is_string()) check_prompt_chars(value.get<std::string>(), o.brief + ": " + key);
    if (value.is_array())
      for (const auto& v : value)
        if (v.is_string()) check_prompt_chars(v.get<std::string>(), o.brief + ": " + key);
  }
  const PresetLibrary library = PresetLibrary::find(o.presets_dir);
  const nlohmann::json preset = library.resolve(o.preset, o.tier);
  const std::string origin = library.channel_file(o.preset).string();
  if (!preset.contains("caption") || preset["caption"].is_null())
    throw ConfigError("preset \"" + o.preset + "\" has no caption section", origin,
                      "choose a channel preset that defines \"caption\"");
  const CopyPreset copy = CopyPreset::from_json(preset["caption"], o.preset, origin, "/caption");
  TextModel model = load_model(o);
  CanvasStream stream;
  CopyOptions co;
  co.drafts = o.drafts;
  co.rounds = o.rounds;
  co.seed = o.s.seed;
  co.on_event = [&](const std::string& m) {
    stream.finish();
    std::cerr << m << "\n";
  };
  if (o.stream)
    co.on_step = [&](const std::string& what, int64_t step, const std::vector<std::string>& rows) {
      stream.show(what, long(step), rows);
      return true;
    };
  const CopyResult r = write_copy(model, brief, copy, co);
  stream.finish();
  int64_t first_pass = 0;
  for (const auto& d : r.drafts) first_pass += d.first_pass ? 1 : 0;
  std::cerr << fmt::format(
      "{} draft(s), first-pass yield {}/{}, {} repair round(s), {} NFE, TTFT {:.3f} s, {:.2f} s "
      "total\n",
      r.drafts.size(), first_pass, r.drafts.size(), r.rounds, r.nfe, r.ttft_seconds, r.seconds);
  const nlohmann::json record = {{"studio", {{"command", "copy"}, {"version", STUDIO_VERSION}}},
                                 {"model", model_json(model)},
                                 {"brief", brief.to_json()},
                                 {"preset", {{"name", o.preset}, {"tier", o.tier}, {"origin", origin}, {"caption", copy.to_json()}}},
                                 {"seed", o.s.seed},
                                 {"result", r.to_json()}};
  write_json(o.json_out, record);
  if (!r.passed) {
    std::cerr << "studio: caption failed its rules after " << r.rounds
              << " repair round(s): " << r.failure << "\n";
    if (!r.text.empty()) std::cerr << "best attempt: " << r.text << "\n";
    return kExitRejected;
  }
  emit(r.text, o.out, record);
  return kExitOk;
}

void add_sampling_flags(CLI::App* cmd, SamplingFlags* s, bool generation) {
  cmd->add_option("--sampler", s->sampler,
                  "llada (ML-GSAI generate), fast-dllm (threshold / KV caches), or auto: "
                  "fast-dllm when --threshold, --tokens-per-step or --cache is given");
  if (generation) {
    cmd->add_option("--gen-length", s->gen_length, "tokens to generate (default 128)");
    cmd->add_option("--block-length", s->block_length,
                    "semi-autoregressive block length (default min(32, gen length))");
    cmd->add_option("--cache", s->cache, "Fast-dLLM KV cache: none, prefix or dual");
    cmd->add_option("--cfg", s->cfg, "classifier-free guidance scale (llada sampler; 0 = off)");
  }
  cmd->add_option("--steps", s->steps,
                  generation ? "denoising steps (default: gen length)"
                             : "denoising steps (default 32; at most one per masked token)");
  cmd->add_option("--threshold", s->threshold,
                  "Fast-dLLM parallel decoding: commit every token whose confidence >= F");
  cmd->add_option("--tokens-per-step", s->tokens_per_step,
                  "Fast-dLLM: commit this many tokens per step");
  cmd->add_option("--temperature", s->temperature, "Gumbel-max sampling temperature (0 = greedy)");
  cmd->add_option("--remasking", s->remasking, "low-confidence (default) or random");
  cmd->add_option("--seed", s->seed, "seed of the sampling noise");
}

// required_model: false on `text`, whose `edit` subcommand has its own --model.
void add_model_flags(CLI::App* cmd, TextOptions* o, bool required_model = true) {
  cmd->add_option("--model", o->model,
                  "LLaDA folder: config.json, safetensors weights and tokenizer.json")
      ->required(required_model);
  cmd->add_option("--chat", o->chat,
                  "chat template: auto (when tokenizer_config.json has one), on or off");
  cmd->add_option("--device", o->device, "auto, cpu, cuda or cuda:N");
  cmd->add_option("--dtype", o->dtype, "auto (fp32 on CPU, bf16 on CUDA), fp32, bf16 or fp16");
  cmd->add_flag("--stream", o->stream, "show the canvas denoising step by step (stderr)");
  cmd->add_option("--json", o->json_out, "write the record (text, parameters, metrics) here");
  cmd->add_option("--out", o->out, "write the text here (atomically) with a sidecar <out>.json");
}

}  // namespace

void add_text_command(CLI::App& app, CommandAction* action) {
  auto o = std::make_shared<TextOptions>();
  auto* text = app.add_subcommand(
      "text", "generate text with a text diffusion LM (LLaDA); 'text edit' rewrites spans");
  add_model_flags(text, o.get(), false);
  text->add_option("--prompt", o->prompt, "the user text (never parsed for control tokens)");
  text->add_option("--prompt-file", o->prompt_file, "read the prompt from a file");
  add_sampling_flags(text, &o->s, true);

  auto e = std::make_shared<TextOptions>();
  auto* edit = text->add_subcommand(
      "edit", "Instant Edit: re-mask spans of a text and rewrite them under an instruction; "
              "every byte outside the spans is kept");
  add_model_flags(edit, e.get());
  edit->add_option("--text", e->text, "the text to edit");
  edit->add_option("--text-file", e->text_file, "read the text to edit from a file");
  edit->add_option("--span", e->spans,
                   "A:B[:N]: rewrite characters A..B-1 (0-based) into N tokens (default: as many "
                   "as the span has); repeatable");
  edit->add_option("--regex", e->regex, "rewrite every match of this ECMAScript regex");
  edit->add_option("--tokens", e->regex_tokens, "slot length in tokens for --regex matches");
  edit->add_option("--instruction", e->instruction, "how to rewrite, e.g. 'make it warmer'")
      ->required();
  add_sampling_flags(edit, &e->s, false);
  edit->callback([action, e] { *action = [e] { return run_edit(*e); }; });
  text->callback([action, o, edit] {
    if (edit->parsed()) return;
    if (o->model.empty()) throw CLI::RequiredError("--model");
    *action = [o] { return run_text(*o); };
  });

  auto c = std::make_shared<TextOptions>();
  auto* copy = app.add_subcommand(
      "copy", "write a caption from a brief under a channel preset: drafts, rule checks, "
              "repairs of the failing spans; exit 4 when no draft passes");
  add_model_flags(copy, c.get());
  copy->add_option("--brief", c->brief, "brief JSON: product, facts, brand, tone, audience, "
                                        "language, notes")
      ->required();
  copy->add_option("--preset", c->preset, "channel preset name (see 'studio presets list')")
      ->required();
  copy->add_option("--tier", c->tier, "quality/speed tier overlay (draft, standard, final)");
  copy->add_option("--presets", c->presets_dir, "presets folder (default: the shipped presets/)");
  copy->add_option("-n,--drafts", c->drafts, "drafts in the batch (default: the preset's)");
  copy->add_option("--rounds", c->rounds, "repair rounds at most (default: the preset's)");
  copy->add_option("--seed", c->s.seed, "seed of the sampling noise");
  copy->callback([action, c] { *action = [c] { return run_copy(*c); }; });
}

}  // namespace studio
