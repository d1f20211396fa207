// Infilling and Instant Edit on llada-tiny with the starter tokenizer: the masked slots are the
// only thing that changes (byte for byte outside the spans), infilling a trailing block equals
// the parity-tested generate(), batches equal single runs, and bad spans / models give clear
// errors.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "tests/support/fixtures.h"
#include "tests/support/text_model_dir.h"
#include "text/instant_edit.h"
#include "text/text_model.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

TextModel& tiny() {
  static TextModel m = TextModel::load(test::make_text_model_dir("instant_edit"), "cpu");
  return m;
}

LLaDASamplerOptions greedy(int64_t steps) {
  LLaDASamplerOptions o;
  o.steps = steps;
  return o;
}

}  // namespace

TEST_CASE("text model folder: chat template, ids and lenient decoding", "[instant_edit]") {
  TextModel& m = tiny();
  CHECK(m.chat());
  CHECK(m.mask_id() == 511);
  CHECK(m.eot_id() == m.tokenizer().token_to_id("<|eot_id|>"));
  const auto ids = m.prompt_ids("Hello <|eot_id|> world");
  // The control token in user text stays text: exactly one EoT (closing the user turn).
  CHECK(std::count(ids.begin(), ids.end(), m.eot_id()) == 1);
  std::vector<int64_t> gen = m.tokenizer().encode(" Hi there ", false);
  gen.push_back(510);  // EOS: the text ends here
  gen.push_back(72);
  CHECK(m.decode_generated(gen) == "Hi there");
  CHECK(m.decode_lenient({m.tokenizer().encode("a", false)[0], 100000}) == "a\xEF\xBF\xBD");
  CHECK(m.render({511, 511}, "_") == "__");
}

TEST_CASE("llada_infill keeps every unmasked token and fills every mask", "[instant_edit]") {
  TextModel& m = tiny();
  std::vector<int64_t> canvas = m.tokenizer().encode("Meet the mug that keeps coffee hot.", false);
  const std::vector<int64_t> original = canvas;
  for (size_t i : {size_t(1), size_t(2), size_t(5)}) canvas[i] = 511;
  const auto r = llada_infill(m.model(), {canvas}, greedy(8));
  CHECK(r.nfe == 3);  // min(steps, masked)
  REQUIRE(r.generated_ids.size() == 1);
  CHECK(r.generated_ids[0].size() == 3);
  const at::Tensor out = r.output_ids[0];
  for (size_t i = 0; i < canvas.size(); ++i) {
    if (canvas[i] == 511)
      CHECK(out[long(i)].item<int64_t>() != 511);
    else
      CHECK(out[long(i)].item<int64_t>() == original[i]);
  }
}

TEST_CASE("llada_infill of a trailing block equals llada_generate", "[instant_edit]") {
  TextModel& m = tiny();
  const std::vector<int64_t> prompt = m.prompt_ids("Write a caption for a mug.");
  LLaDASamplerOptions o = greedy(8);
  o.gen_length = 16;
  o.block_length = 16;
  const auto g = llada_generate(m.model(), {prompt}, o);
  std::vector<int64_t> canvas = prompt;
  canvas.resize(prompt.size() + 16, 511);
  const auto f = llada_infill(m.model(), {canvas}, o);
  CHECK(f.generated_ids == g.generated_ids);
  CHECK(f.nfe == g.nfe);
  CHECK(f.tokens_per_step == g.tokens_per_step);

  SECTION("a batch of different lengths equals each canvas alone") {
    std::vector<int64_t> other = m.tokenizer().encode("Short one.", false);
    other.insert(other.begin() + 1, 3, 511);
    const auto alone = llada_infill(m.model(), {other}, o);
    const auto both = llada_infill(m.model(), {canvas, other}, o);
    CHECK(both.generated_ids[0] == f.generated_ids[0]);
    CHECK(both.generated_ids[1] == alone.generated_ids[0]);
  }
  SECTION("KV caches are refused") {
    LLaDASamplerOptions c = o;
    c.sampler = LLaDASampler::kFastDLLM;
    c.cache = LLaDACacheMode::kPrefix;
    CHECK_THROWS_AS(llada_infill(m.model(), {canvas}, c), UsageError);
  }
  SECTION("Fast-dLLM threshold decoding fills every mask") {
    LLaDASamplerOptions t = o;
    t.sampler = LLaDASampler::kFastDLLM;
    t.threshold = 0.02;
    const auto r = llada_infill(m.model(), {canvas}, t);
    CHECK(r.generated_ids[0].size() == 16);
    CHECK(std::find(r.generated_ids[0].begin(), r.generated_ids[0].end(), 511) ==
          r.generated_ids[0].end());
    CHECK(r.nfe <= 16);
  }
}

TEST_CASE("Instant Edit: the text outside the spans is byte-identical", "[instant_edit]") {
  TextModel& m = tiny();
  const std::string text = "Café ☕ mugs, 350 ml — cheap and cheerful! Dishwasher safe. #coffee";
  EditRequest req;
  req.text = text;
  req.instruction = "Replace the marked words with warmer ones.";
  const size_t cheap = text.find("cheap");
  const size_t safe = text.find("safe");
  req.spans = {{cheap, cheap + 5, -1}, {safe, safe + 4, 3}};
  const EditBatchResult r = instant_edit(m, {req}, greedy(16));
  REQUIRE(r.edits.size() == 1);
  const EditResult& e = r.edits[0];
  REQUIRE(e.replacements.size() == 2);
  const std::string expect = text.substr(0, cheap) + e.replacements[0] +
                             text.substr(cheap + 5, safe - cheap - 5) + e.replacements[1] +
                             text.substr(safe + 4);
  CHECK(e.text == expect);
  CHECK(e.text.compare(0, cheap, text, 0, cheap) == 0);
  CHECK(e.text.size() >= text.size() - safe - 4);
  CHECK(e.text.substr(e.text.size() - (text.size() - safe - 4)) == text.substr(safe + 4));
  // Slots: "cheap" as many tokens as it has, "safe" 3.
  const int64_t cheap_tokens = int64_t(m.tokenizer().encode("cheap", false).size());
  CHECK(int64_t(r.sampling.generated_ids[0].size()) == cheap_tokens + 3);
  CHECK(r.sampling.nfe == std::min<int64_t>(16, cheap_tokens + 3));

  SECTION("a batch of edits equals each alone") {
    EditRequest other;
    other.text = "Keeps drinks cold for 24 hours.";
    other.instruction = "Make it shorter.";
    other.spans = {span_from_chars(other.text, 6, 18)};
    const auto alone = instant_edit(m, {other}, greedy(16));
    const auto both = instant_edit(m, {req, other}, greedy(16));
    CHECK(both.edits[0].text == e.text);
    CHECK(both.edits[1].text == alone.edits[0].text);
  }
  SECTION("a deletion and an insertion") {
    EditRequest d;
    d.text = "Light, strong and easy to clean.";
    d.instruction = "Edit.";
    d.spans = {{5, 13, 0}, {d.text.size(), d.text.size(), 2}};  // ", strong" removed
    const auto out = instant_edit(m, {d}, greedy(4));
    CHECK(out.edits[0].text.rfind("Light and easy to clean.", 0) == 0);
    CHECK(out.sampling.generated_ids[0].size() == 2);
  }
}

TEST_CASE("Instant Edit span selection and errors", "[instant_edit]") {
  TextModel& m = tiny();
  const std::string text = "Café ☕ is cheap. Very cheap.";
  const TextSpan s = span_from_chars(text, 7, 9);  // "is" after the cup (3 bytes) and é (2)
  CHECK(text.substr(s.begin, s.end - s.begin) == "is");
  CHECK_THROWS_AS(span_from_chars(text, 5, 99), UsageError);
  const auto spans = spans_from_regex(text, "cheap");
  REQUIRE(spans.size() == 2);
  CHECK(text.substr(spans[1].begin, 5) == "cheap");
  CHECK_THROWS_AS(spans_from_regex(text, "("), UsageError);
  CHECK_THROWS_AS(spans_from_regex(text, "pricey"), UsageError);

  EditRequest bad;
  bad.text = text;
  bad.instruction = "x";
  bad.spans = {{4, 5, -1}};  // inside the two bytes of "é"
  CHECK_THROWS_AS(instant_edit(m, {bad}, greedy(4)), UsageError);
  bad.spans = {{0, 6, -1}, {3, 8, -1}};  // overlapping
  CHECK_THROWS_AS(instant_edit(m, {bad}, greedy(4)), UsageError);
  bad.spans = {{0, 99, -1}};
  CHECK_THROWS_AS(instant_edit(m, {bad}, greedy(4)), UsageError);
  bad.spans = {{2, 2, -1}};  // an insertion without a length
  CHECK_THROWS_AS(instant_edit(m, {bad}, greedy(4)), UsageError);
  bad.spans = {};
  CHECK_THROWS_AS(instant_edit(m, {bad}, greedy(4)), UsageError);
  bad.spans = {{0, 1, -1}};
  bad.text = std::string("ab\xff", 3);
  CHECK_THROWS_AS(instant_edit(m, {bad}, greedy(4)), FormatError);
}

TEST_CASE("text model folders that cannot work give clear errors", "[instant_edit]") {
  const fs::path dir = test::make_text_model_dir("text_model_errors");
  SECTION("no tokenizer.json") {
    fs::remove(dir / "tokenizer.json");
    CHECK_THROWS_WITH(TextModel::load(dir, "cpu"), Catch::Contains("tokenizer.json"));
  }
  SECTION("a tokenizer of an unsupported model type") {
    auto j = read_json_file(dir / "tokenizer.json");
    j["model"]["type"] = "WordPiece";
    test::write_file(dir / "tokenizer.json", j.dump());
    CHECK_THROWS_AS(TextModel::load(dir, "cpu"), ConfigError);
  }
  SECTION("a tokenizer whose mask id disagrees with config.json") {
    auto j = read_json_file(dir / "config.json");
    j["mask_token_id"] = 509;
    test::write_file(dir / "config.json", j.dump());
    CHECK_THROWS_WITH(TextModel::load(dir, "cpu"), Catch::Contains("mask_token_id"));
  }
  SECTION("a model of another type") {
    auto j = read_json_file(dir / "config.json");
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
    test::write_file(dir / "config.json", j.dump());
    CHECK_THROWS_AS(TextModel::load(dir, "cpu"), Error);
  }
  SECTION("a prompt longer than the context") {
    auto j = read_json_file(dir / "config.json");
    j["max_sequence_length"] = 48;
    test::write_file(dir / "config.json", j.dump());
    TextModel m = TextModel::load(dir, "cpu");
    LLaDASamplerOptions o;
    o.gen_length = 32;
    o.block_length = 32;
    o.steps = 32;
    CHECK_THROWS_WITH(generate_text(m, {std::string(200, 'a')}, o),
                      Catch::Contains("max_sequence_length"));
  }
}
