// ClipTokenizer against transformers' CLIPTokenizer (with ftfy 6.2.0) on every case of
// clip-tokenizer/clip_tokens.json: normalised text, padded ids, untruncated ids, BPE strings.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "text/clip_tokenizer.h"

using namespace studio;

namespace {

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

template <typename T>
std::vector<T> concat(T first, std::vector<T> middle, T last) {
  middle.insert(middle.begin(), first);
  middle.push_back(last);
  return middle;
}

}  // namespace

TEST_CASE("ClipTokenizer matches transformers on every clip_tokens.json case",
          "[parity][clip_tokenizer]") {
  const auto root = test::fixtures_root();
  const ClipTokenizer tok = ClipTokenizer::load(root / "sd-tiny" / "tokenizer");
  const nlohmann::json fixture = test::read_json(root / "clip-tokenizer" / "clip_tokens.json");

  const auto& special = fixture.at("special_ids");
  REQUIRE(tok.bos_id() == special.at("<|startoftext|>").get<int64_t>());
  REQUIRE(tok.eos_id() == special.at("<|endoftext|>").get<int64_t>());
  REQUIRE(tok.pad_id() == special.at("pad").get<int64_t>());
  REQUIRE(tok.model_max_length() == 77);

  const auto& cases = fixture.at("cases");
  REQUIRE(!cases.empty());
  size_t checked = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    const std::string text = c.at("text").get<std::string>();
    INFO("case " << name << ": \"" << text << "\"");
    if (c.contains("text_utf8_hex")) REQUIRE(from_hex(c.at("text_utf8_hex")) == text);

    CHECK(ClipTokenizer::normalize(text) == c.at("normalized_text").get<std::string>());

    const auto untruncated = c.at("untruncated_ids").get<std::vector<int64_t>>();
    CHECK(concat(tok.bos_id(), tok.encode(text), tok.eos_id()) == untruncated);
    CHECK(concat(std::string("<|startoftext|>"), tok.tokenize(text),
                 std::string("<|endoftext|>")) == c.at("tokens").get<std::vector<std::string>>());

    const ClipEncoding enc = tok.encode_padded(text, 77);
    CHECK(enc.input_ids == c.at("input_ids").get<std::vector<int64_t>>());
    CHECK(enc.truncated == c.at("truncated").get<bool>());
    CHECK(enc.content_length + 2 == untruncated.size());
    CHECK(enc.tokens.size() == std::min<size_t>(untruncated.size(), 77));
    ++checked;
  }
  CHECK(checked == cases.size());
}

TEST_CASE("ClipTokenizer decodes fixture ids back to the normalised prompt",
          "[parity][clip_tokenizer]") {
  const auto root = test::fixtures_root();
  const ClipTokenizer tok = ClipTokenizer::load(root / "sd-tiny" / "tokenizer");
  const nlohmann::json fixture = test::read_json(root / "clip-tokenizer" / "clip_tokens.json");
  for (const auto& c : fixture.at("cases")) {
    if (c.at("name") != "sd_prompt") continue;
    // "</w>" reads as a space; clean-up removes the space before ",".
    CHECK(tok.decode(c.at("untruncated_ids").get<std::vector<int64_t>>(), true) ==
          c.at("normalized_text").get<std::string>());
    CHECK(tok.decode(c.at("input_ids").get<std::vector<int64_t>>(), false)
              .rfind("<|startoftext|>a red ceramic mug", 0) == 0);
  }
}
