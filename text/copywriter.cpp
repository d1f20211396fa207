#include "text/copywriter.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"
#include "core/json_check.h"
#include "core/json_file.h"
#include "text/instant_edit.h"

namespace studio {
namespace {

const char* const kBriefHint = "see docs/copywriter.md for the brief format";
const char* const kPresetHint = "see docs/presets.md for the caption section of a preset";

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------- brief

CopyBrief CopyBrief::from_json(const nlohmann::json& j, const std::string& origin,
                               const std::string& json_path) {
  JsonChecker check(origin);
  CopyBrief b;
  if (check.object(j, json_path,
                   {"product", "facts", "brand", "tone", "audience", "language", "notes"})) {
    if (auto v = check.string(j, json_path, "product", true, true)) b.product = *v;
    if (auto v = check.strings(j, json_path, "facts")) b.facts = *v;
    if (auto v = check.string(j, json_path, "brand")) b.brand = *v;
    if (auto v = check.string(j, json_path, "tone")) b.tone = *v;
    if (auto v = check.string(j, json_path, "audience")) b.audience = *v;
    if (auto v = check.string(j, json_path, "language", false, true)) b.language = *v;
    if (auto v = check.string(j, json_path, "notes")) b.notes = *v;
  }
  check.throw_if_errors("invalid brief", kBriefHint);
  return b;
}

CopyBrief CopyBrief::load(const std::filesystem::path& file) {
  return from_json(read_json_file(file), file.string(), "");
}

nlohmann::json CopyBrief::to_json() const {
  return {{"product", product},   {"facts", facts},       {"brand", brand}, {"tone", tone},
          {"audience", audience}, {"language", language}, {"notes", notes}};
}

// ---------------------------------------------------------------------------------- preset

CopyPreset CopyPreset::from_json(const nlohmann::json& j, const std::string& name,
                                 const std::string& origin, const std::string& json_path) {
  JsonChecker check(origin);
  CopyPreset p;
  p.name = name;
  if (check.object(j, json_path,
                   {"instruction", "gen_length", "block_length", "steps", "drafts", "repair_rounds",
                    "temperature", "sampler", "threshold", "rules"})) {
    if (auto v = check.string(j, json_path, "instruction", true, true)) p.instruction = *v;
    if (auto v = check.integer(j, json_path, "gen_length", false, 1, 4096)) p.gen_length = *v;
    if (auto v = check.integer(j, json_path, "block_length", false, 1, 4096)) p.block_length = *v;
    if (auto v = check.integer(j, json_path, "steps", false, 1, 4096)) p.steps = *v;
    if (auto v = check.integer(j, json_path, "drafts", false, 1, 64)) p.drafts = *v;
    if (auto v = check.integer(j, json_path, "repair_rounds", false, 0, 16)) p.repair_rounds = *v;
    if (auto v = check.number(j, json_path, "temperature", false, 0, 10)) p.temperature = *v;
    if (auto v = check.string(j, json_path, "sampler")) {
      if (*v == "llada")
        p.sampler = LLaDASampler::kLLaDA;
      else if (*v == "fast-dllm")
        p.sampler = LLaDASampler::kFastDLLM;
      else
        check.mismatch(json_path + "/sampler", *v, "\"llada\" or \"fast-dllm\"");
    }
    if (j.contains("threshold") && !j["threshold"].is_null()) {
      const auto& t = j["threshold"];
      if (!t.is_number() || !(t.get<double>() > 0 && t.get<double>() <= 1))
        check.mismatch(json_path + "/threshold", t, "null or a number in (0, 1]");
      else
        p.threshold = t.get<double>();
    }
    if (p.block_length > 0 && p.gen_length % p.block_length != 0)
      check.error(json_path + "/block_length", "gen_length (" + std::to_string(p.gen_length) +
                                                   ") must be a multiple of block_length (" +
                                                   std::to_string(p.block_length) + ")");
    else if (p.steps % (p.gen_length / p.block_length) != 0)
      check.error(json_path + "/steps", "steps (" + std::to_string(p.steps) +
                                            ") must be a multiple of the number of blocks (" +
                                            std::to_string(p.gen_length / p.block_length) + ")");
    if (p.threshold && p.sampler != LLaDASampler::kFastDLLM)
      check.error(json_path + "/threshold", "a threshold needs \"sampler\": \"fast-dllm\"");
    if (j.contains("rules")) {
      try {
        p.rules = CaptionRules::from_json(j["rules"], origin, json_path + "/rules");
      } catch (const ConfigError& e) {
        check.absorb(e.what_failed(), json_path + "/rules");
      }
    }
  }
  check.throw_if_errors("invalid caption preset \"" + name + "\"", kPresetHint);
  return p;
}

nlohmann::json CopyPreset::to_json() const {
  nlohmann::json j = {{"instruction", instruction},
                      {"gen_length", gen_length},
                      {"block_length", block_length},
                      {"steps", steps},
                      {"drafts", drafts},
                      {"repair_rounds", repair_rounds},
                      {"temperature", temperature},
                      {"sampler", sampler == LLaDASampler::kLLaDA ? "llada" : "fast-dllm"},
                      {"threshold", nullptr},
                      {"rules", rules.to_json()}};
  if (threshold) j["threshold"] = *threshold;
  return j;
}

// ---------------------------------------------------------------------------------- records

nlohmann::json CaptionRecord::to_json() const {
  nlohmann::json v = nlohmann::json::array();
  for (const auto& x : violations)
    v.push_back({{"rule", x.rule}, {"message", x.message}, {"begin", x.begin}, {"end", x.end}});
  return {{"draft", draft},
          {"text", text},
          {"passed", passed},
          {"first_pass", first_pass},
          {"rounds", rounds},
          {"violations", v},
          {"history", history},
          {"repairs", repairs},
          {"nfe", nfe},
          {"tokens", tokens},
          {"seconds", seconds},
          {"ttft_seconds", ttft_seconds},
          {"tpot_seconds", tpot_seconds},
          {"tokens_per_second", tokens_per_second}};
}

nlohmann::json CopyResult::to_json() const {
  nlohmann::json d = nlohmann::json::array();
  for (const auto& r : drafts) d.push_back(r.to_json());
  return {
      {"passed", passed}, {"best", best},     {"text", text},       {"failure", failure},
      {"nfe", nfe},       {"rounds", rounds}, {"seconds", seconds}, {"ttft_seconds", ttft_seconds},
      {"drafts", d}};
}

// ---------------------------------------------------------------------------------- prompt

std::string build_copy_prompt(const CopyBrief& b, const CopyPreset& p) {
  std::string s = p.instruction + "\n\nProduct: " + b.product + "\n";
  if (!b.brand.empty()) s += "Brand: " + b.brand + "\n";
  if (!b.facts.empty()) s += "Facts:\n- " + join(b.facts, "\n- ") + "\n";
  if (!b.tone.empty()) s += "Tone: " + b.tone + "\n";
  if (!b.audience.empty()) s += "Audience: " + b.audience + "\n";
  s += "Language: " + b.language + "\n";
  if (!b.notes.empty()) s += "Notes: " + b.notes + "\n";
  const CaptionRules& r = p.rules;
  std::vector<std::string> rules;
  if (r.max_chars > 0) rules.push_back("At most " + std::to_string(r.max_chars) + " characters.");
  if (r.min_chars > 0) rules.push_back("At least " + std::to_string(r.min_chars) + " characters.");
  if (!r.required_words.empty()) rules.push_back("Use: " + join(r.required_words, ", ") + ".");
  if (!r.banned_words.empty()) rules.push_back("Never use: " + join(r.banned_words, ", ") + ".");
  if (!r.brand_terms.empty()) rules.push_back("Spell exactly: " + join(r.brand_terms, ", ") + ".");
  if (r.hashtags_max == 0) {
    rules.push_back("No hashtags.");
  } else if (r.hashtags_min > 0 || r.hashtags_max > 0 || !r.hashtags_required.empty()) {
    std::string h = "Hashtags at the end";
    if (r.hashtags_min > 0) h += ", at least " + std::to_string(r.hashtags_min);
    if (r.hashtags_max > 0) h += ", at most " + std::to_string(r.hashtags_max);
    if (!r.hashtags_required.empty()) h += ", including " + join(r.hashtags_required, " ");
    rules.push_back(h + ".");
  }
  if (r.emoji == EmojiPolicy::kNone) rules.push_back("No emoji.");
  if (r.emoji == EmojiPolicy::kRequired) rules.push_back("Use at least one emoji.");
  if (!rules.empty()) s += "\nRules:\n- " + join(rules, "\n- ") + "\n";
  s += "\nWrite only the caption.";
  return s;
}

// ---------------------------------------------------------------------------------- repair

namespace {

// Deterministic fixes (no model): exact brand spellings, missing required terms inserted at the
// end, extra hashtags and forbidden emoji removed. Returns the fixed text and what was done.
// Hashtags made from the brief ("#StonewareMug", "#HearthCo"), for a caption short of hashtags
// that names no required ones: what a copywriter would add.
std::vector<std::string> brief_hashtags(const CopyBrief& b) {
  std::vector<std::string> tags;
  auto add = [&](const std::string& phrase) {
    std::string tag = "#";
    bool upper = true;
    for (unsigned char c : phrase) {
      if (std::isalnum(c)) {
        tag += upper ? char(std::toupper(c)) : char(c);
        upper = false;
      } else {
        upper = true;
      }
    }
    if (tag.size() > 1 && std::find(tags.begin(), tags.end(), tag) == tags.end())
      tags.push_back(tag);
  };
  add(b.product);
  add(b.brand);
  for (const auto& f : b.facts)
    if (f.size() <= 24) add(f);
  return tags;
}

std::string fix_deterministic(const std::string& text, const std::vector<RuleViolation>& vs,
                              const std::vector<std::string>& spare_tags, int64_t hashtags_min,
                              std::vector<std::string>* done) {
  struct Change {
    size_t begin, end;
    std::string with;
  };
  std::vector<Change> changes;
  std::string appended;
  for (const auto& v : vs) {
    const bool range = v.begin < v.end;
    if (range && !v.insert.empty()) {
      changes.push_back({v.begin, v.end, v.insert});
      done->push_back("respelt " + v.rule);
    } else if (range && (v.rule == "hashtags.max" || v.rule == "emoji" || v.rule == "emoji_max")) {
      changes.push_back({v.begin, v.end, ""});
      done->push_back("removed " + v.rule);
    } else if (!range && !v.insert.empty()) {
      if (appended.find(v.insert) == std::string::npos) appended += " " + v.insert;
      done->push_back("inserted " + v.rule);
    } else if (v.rule == "hashtags.min" && v.insert.empty()) {
      // Short of hashtags and none required: add the missing number from the brief.
      int64_t have = count_hashtags(text) + count_hashtags(appended);
      for (const auto& tag : spare_tags) {
        if (have >= hashtags_min) break;
        if (text.find(tag) != std::string::npos || appended.find(tag) != std::string::npos)
          continue;
        appended += " " + tag;
        ++have;
      }
      done->push_back("inserted hashtags from the brief for hashtags.min");
    }
  }
  std::sort(changes.begin(), changes.end(),
            [](const Change& a, const Change& b) { return a.begin < b.begin; });
  std::string out;
  size_t at = 0;
  for (const auto& c : changes) {
    if (c.begin < at) continue;  // overlapping: the first one wins, the next round sees the rest
    out.append(text, at, c.begin - at);
    out += c.with;
    at = c.end;
  }
  out.append(text, at, std::string::npos);
  if (!appended.empty()) {
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += appended;
    if (out.front() == ' ') out.erase(0, 1);
  }
  return out;
}

// Spans the model must rewrite for the violations left after the deterministic fixes.
std::vector<TextSpan> model_spans(const TextModel& model, const std::string& text,
                                  const CaptionRules& rules, const std::vector<RuleViolation>& vs,
                                  std::vector<std::string>* done) {
  const BpeTokenizer& tok = model.tokenizer();
  auto tokens_of = [&](size_t a, size_t b) {
    return int64_t(tok.encode(std::string_view(text).substr(a, b - a), false).size());
  };
  std::vector<TextSpan> spans;
  for (const auto& v : vs) {
    if (v.rule == "banned_words" && v.begin < v.end) {
      spans.push_back({v.begin, v.end, std::max<int64_t>(1, tokens_of(v.begin, v.end))});
      done->push_back("re-masked banned_words");
    } else if (v.rule == "max_chars" && v.begin < v.end) {
      // Room left for the overflow span, in characters, and a slot scaled to it.
      const int64_t before = count_chars(std::string_view(text).substr(0, v.begin));
      const int64_t span_chars = count_chars(std::string_view(text).substr(v.begin));
      const int64_t room = rules.max_chars - before;
      const int64_t span_tokens = tokens_of(v.begin, v.end);
      const int64_t slot =
          span_chars <= 0 ? 0 : int64_t(std::floor(double(span_tokens) * room / span_chars)) - 1;
      spans.push_back({v.begin, v.end, std::max<int64_t>(0, slot)});
      done->push_back(slot > 0
                          ? "re-masked max_chars overflow into " + std::to_string(slot) + " tokens"
                          : "cut max_chars overflow");
    } else if (v.rule == "min_chars" && v.begin == v.end) {
      const int64_t missing = rules.min_chars - count_chars(text);
      spans.push_back({text.size(), text.size(), std::max<int64_t>(2, missing / 3 + 1)});
      done->push_back("appended a slot for min_chars");
    } else if (v.rule == "emoji" && v.begin == v.end && v.insert.empty()) {
      spans.push_back({text.size(), text.size(), 2});
      done->push_back("appended a slot for an emoji");
    }
  }
  // Sorted, overlapping ones merged (the smaller slot wins: overflow cuts are the stricter).
  std::sort(spans.begin(), spans.end(),
            [](const TextSpan& a, const TextSpan& b) { return a.begin < b.begin; });
  std::vector<TextSpan> merged;
  for (const auto& s : spans) {
    if (!merged.empty() && s.begin < merged.back().end) {
      merged.back().end = std::max(merged.back().end, s.end);
      merged.back().tokens = std::min(merged.back().tokens, s.tokens);
    } else if (!merged.empty() && s.begin == s.end && s.begin == merged.back().end &&
               merged.back().begin == merged.back().end) {
      merged.back().tokens += s.tokens;
    } else {
      merged.push_back(s);
    }
  }
  return merged;
}

std::string describe(const std::vector<RuleViolation>& vs) {
  std::vector<std::string> rules;
  for (const auto& v : vs) {
    const std::string line = v.rule + ": " + v.message;
    if (std::find(rules.begin(), rules.end(), line) == rules.end()) rules.push_back(line);
  }
  return "failed rule " + join(rules, "; failed rule ");
}

}  // namespace

namespace {

LLaDASamplerOptions copy_sampler_options(const CopyPreset& preset, uint64_t seed) {
  LLaDASamplerOptions so;
  so.sampler = preset.sampler;
  so.gen_length = preset.gen_length;
  so.block_length = preset.block_length;
  so.steps = preset.steps;
  so.temperature = preset.temperature;
  so.threshold = preset.threshold;
  so.seed = seed;
  return so;
}

// What write_copy and revise_copy share: rows, repair rounds, sampler and callbacks.
struct CopySetup {
  int64_t rows = 0, max_rounds = 0;
  LLaDASamplerOptions sampler;
  std::function<void(const std::string&)> event;
  TextStepCallback stream;  // reports the first batch as `phase`
};

CopySetup copy_setup(const CopyPreset& preset, const CopyOptions& options, std::string phase) {
  CopySetup c;
  c.rows = options.drafts > 0 ? options.drafts : preset.drafts;
  c.max_rounds = options.rounds >= 0 ? options.rounds : preset.repair_rounds;
  c.sampler = copy_sampler_options(preset, options.seed);
  c.event = [&options](const std::string& m) {
    if (options.on_event) options.on_event(m);
  };
  if (options.on_step)
    c.stream = [&options, phase](int64_t step, const std::vector<std::string>& rows) {
      return options.on_step(phase, step, rows);
    };
  return c;
}

// One record per generated row, checked against the rules (first pass = passed as generated).
void add_checked_rows(CopyResult& result, const std::vector<std::string>& texts,
                      const LLaDASamplerResult& sampling, int64_t tokens,
                      const CopyPreset& preset) {
  result.nfe = sampling.nfe;
  result.seconds = sampling.total_seconds;
  result.ttft_seconds = sampling.ttft_seconds;
  for (size_t i = 0; i < texts.size(); ++i) {
    CaptionRecord r;
    r.draft = int64_t(i);
    r.text = texts[i];
    r.history.push_back(r.text);
    r.violations = check_caption(r.text, preset.rules);
    r.passed = r.first_pass = r.violations.empty();
    r.nfe = sampling.nfe;
    r.tokens = tokens;
    r.seconds = sampling.total_seconds;
    r.ttft_seconds = sampling.ttft_seconds;
    result.drafts.push_back(std::move(r));
  }
}

// The verify -> repair rounds over result.drafts, then the best caption (see write_copy).
void repair_and_choose(TextModel& model, const CopyBrief& brief, const CopyPreset& preset,
                       const LLaDASamplerOptions& so, int64_t max_rounds,
                       const CopyOptions& options,
                       const std::function<void(const std::string&)>& event, CopyResult& result) {
  const int64_t n = int64_t(result.drafts.size());
  int64_t first_pass = 0;
  for (const auto& r : result.drafts) first_pass += r.first_pass ? 1 : 0;
  event(std::to_string(first_pass) + " of " + std::to_string(n) + " draft(s) pass first time");

  std::string phase;
  TextStepCallback stream;
  if (options.on_step)
    stream = [&](int64_t step, const std::vector<std::string>& rows) {
      return options.on_step(phase, step, rows);
    };
  const std::vector<std::string> spare_tags = brief_hashtags(brief);
  for (int64_t round = 1; round <= max_rounds; ++round) {
    std::vector<EditRequest> edits;
    std::vector<size_t> edited;  // draft index of each edit request
    for (auto& r : result.drafts) {
      if (r.passed) continue;
      ++r.rounds;
      std::vector<std::string> done;
      r.text =
          fix_deterministic(r.text, r.violations, spare_tags, preset.rules.hashtags_min, &done);
      r.violations = check_caption(r.text, preset.rules);
      std::vector<TextSpan> spans = model_spans(model, r.text, preset.rules, r.violations, &done);
      r.repairs.push_back(join(done, ", "));
      if (spans.empty()) {
        r.history.push_back(r.text);
        r.passed = r.violations.empty();
        continue;
      }
      EditRequest e;
      e.text = r.text;
      e.spans = std::move(spans);
      e.instruction = "Rewrite the caption so that it follows the rules.\n\n" +
                      build_copy_prompt(brief, preset);
      edits.push_back(std::move(e));
      edited.push_back(size_t(r.draft));
    }
    if (edits.empty() && std::none_of(result.drafts.begin(), result.drafts.end(),
                                      [&](const CaptionRecord& r) { return r.rounds == round; }))
      break;
    result.rounds = round;
    if (!edits.empty()) {
      phase = "repair " + std::to_string(round);
      event("round " + std::to_string(round) + ": repairing " + std::to_string(edits.size()) +
            " caption(s) with the model");
      LLaDASamplerOptions ro = so;
      ro.seed = so.seed + uint64_t(round);
      const EditBatchResult fixed = instant_edit(model, edits, ro, stream);
      result.nfe += fixed.sampling.nfe;
      result.seconds += fixed.sampling.total_seconds;
      for (size_t k = 0; k < edited.size(); ++k) {
        CaptionRecord& r = result.drafts[edited[k]];
        r.text = fixed.edits[k].text;
        r.history.push_back(r.text);
        r.violations = check_caption(r.text, preset.rules);
        r.passed = r.violations.empty();
        r.nfe += fixed.sampling.nfe;
        r.tokens += int64_t(fixed.sampling.generated_ids[k].size());
        r.seconds += fixed.sampling.total_seconds;
      }
    }
    int64_t passing = 0;
    for (const auto& r : result.drafts) passing += r.passed ? 1 : 0;
    event("round " + std::to_string(round) + ": " + std::to_string(passing) + " of " +
          std::to_string(n) + " pass");
    if (passing == n) break;
  }

  for (auto& r : result.drafts) {
    r.tpot_seconds = r.tokens > 1 ? (r.seconds - r.ttft_seconds) / double(r.tokens - 1) : 0.0;
    r.tokens_per_second = r.seconds > 0 ? double(r.tokens) / r.seconds : 0.0;
  }
  // Best: passing, then fewest rounds, then fewest violations, then the earliest draft.
  for (size_t i = 0; i < result.drafts.size(); ++i) {
    const CaptionRecord& r = result.drafts[i];
    if (result.best < 0) {
      result.best = int64_t(i);
      continue;
    }
    const CaptionRecord& b = result.drafts[size_t(result.best)];
    const auto key = [](const CaptionRecord& x) {
      return std::make_tuple(!x.passed, x.rounds, x.violations.size());
    };
    if (key(r) < key(b)) result.best = int64_t(i);
  }
  if (result.best >= 0) {
    const CaptionRecord& b = result.drafts[size_t(result.best)];
    result.passed = b.passed;
    result.text = b.text;
    if (!b.passed) result.failure = describe(b.violations);
  }
}

}  // namespace

CopyResult write_copy(TextModel& model, const CopyBrief& brief, const CopyPreset& preset,
                      const CopyOptions& options) {
  const CopySetup c = copy_setup(preset, options, "draft");
  const int64_t n = c.rows;

  CopyResult result;
  c.event("drafting " + std::to_string(n) + " caption(s) for \"" + brief.product + "\" (" +
          preset.name + ")");
  const std::vector<std::string> prompts(size_t(n), build_copy_prompt(brief, preset));
  const TextGeneration drafts = generate_text(model, prompts, c.sampler, c.stream);
  add_checked_rows(result, drafts.texts, drafts.sampling, preset.gen_length, preset);
  repair_and_choose(model, brief, preset, c.sampler, c.max_rounds, options, c.event, result);
  return result;
}

std::string revision_instruction(const CopyBrief& brief, const CopyPreset& preset,
                                 const std::string& note) {
  return "Revise this caption as the reviewer asks: " + note + "\n\n" +
         build_copy_prompt(brief, preset);
}

CopyResult revise_copy(TextModel& model, const CopyBrief& brief, const CopyPreset& preset,
                       const std::string& text, const std::string& note,
                       const CopyOptions& options) {
  if (note.empty())
    throw UsageError("a caption revision needs the reviewer's note", brief.product,
                     "write what should change in the review's note");
  const CopySetup c = copy_setup(preset, options, "revise");
  const int64_t n = c.rows;

  CopyResult result;
  c.event("revising the caption for \"" + brief.product + "\" (" + preset.name + "): " + note);
  // The whole caption is one slot of the preset's length: the model sees the old caption and the
  // note in the user turn (Instant Edit) and writes the revised one; then verify -> repair.
  EditRequest e;
  e.text = text;
  e.spans = {TextSpan{0, text.size(), preset.gen_length}};
  e.instruction = revision_instruction(brief, preset, note);
  const std::vector<EditRequest> rows(size_t(n), e);
  const EditBatchResult revised = instant_edit(model, rows, c.sampler, c.stream);
  std::vector<std::string> texts;
  for (const auto& r : revised.edits) texts.push_back(r.text);
  add_checked_rows(result, texts, revised.sampling, preset.gen_length, preset);
  repair_and_choose(model, brief, preset, c.sampler, c.max_rounds, options, c.event, result);
  return result;
}

}  // namespace studio
