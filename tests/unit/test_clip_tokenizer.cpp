// ClipTokenizer loading errors (missing, malformed and disagreeing files name the file and line)
// and BPE behaviour on a tiny hand-written vocabulary.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "core/error.h"
#include "tests/support/fixtures.h"
#include "text/clip_tokenizer.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}

// A tiny CLIP-style tokenizer: byte symbols for "l o w e r", merges "l o", "lo w</w>",
// "lo w", "e r</w>", and the two special tokens.
const char* const kVocab = R"({
  "l": 0, "o": 1, "w": 2, "e": 3, "r": 4,
  "l</w>": 5, "o</w>": 6, "w</w>": 7, "e</w>": 8, "r</w>": 9,
  "lo": 10, "low</w>": 11, "low": 12, "er</w>": 13,
  "<|startoftext|>": 14, "<|endoftext|>": 15
})";
const char* const kMerges = "#version: 0.2\nl o\nlo w</w>\nlo w\ne r</w>\n";

fs::path tiny_tokenizer(const std::string& name, const std::string& vocab = kVocab,
                        const std::string& merges = kMerges) {
  fs::path dir = test::temp_dir("clip_tokenizer_" + name);
  write(dir / "vocab.json", vocab);
  write(dir / "merges.txt", merges);
  write(dir / "tokenizer_config.json", R"({"model_max_length": 8})");
  return dir;
}

// The message of the studio::Error that loading `dir` throws, checked to be of type E.
template <typename E>
std::string load_error(const fs::path& dir) {
  try {
    ClipTokenizer::load(dir);
  } catch (const E& e) {
    CHECK_FALSE(e.hint().empty());
    return e.what();
  } catch (const std::exception& e) {
    FAIL("unexpected exception type: " << e.what());
  }
  FAIL("loading " << dir << " did not throw");
  return {};
}

}  // namespace

TEST_CASE("ClipTokenizer BPE on a tiny vocabulary", "[unit][clip_tokenizer]") {
  const ClipTokenizer tok = ClipTokenizer::load(tiny_tokenizer("bpe"));
  CHECK(tok.vocab_size() == 16);
  CHECK(tok.bos_id() == 14);
  CHECK(tok.eos_id() == 15);
  CHECK(tok.pad_id() == 15);
  CHECK(tok.model_max_length() == 8);

  CHECK(tok.encode("low") == std::vector<int64_t>{11});
  CHECK(tok.tokenize("LOWER low") == std::vector<std::string>{"low", "er</w>", "low</w>"});
  CHECK(tok.encode("lower") == std::vector<int64_t>{12, 13});
  // Bytes without a vocabulary symbol become the unknown token (<|endoftext|>).
  CHECK(tok.encode("z") == std::vector<int64_t>{15});
  // Literal special tokens are cut out of the raw text before normalisation.
  CHECK(tok.encode("low<|endoftext|>low") == std::vector<int64_t>{11, 15, 11});

  ClipEncoding enc = tok.encode_padded("low low low low low low low", 8);
  CHECK(enc.input_ids == std::vector<int64_t>{14, 11, 11, 11, 11, 11, 11, 15});
  CHECK(enc.truncated);
  CHECK(enc.content_length == 7);
  enc = tok.encode_padded("lower", 8);
  CHECK(enc.input_ids == std::vector<int64_t>{14, 12, 13, 15, 15, 15, 15, 15});
  CHECK(enc.tokens ==
        std::vector<std::string>{"<|startoftext|>", "low", "er</w>", "<|endoftext|>"});
  CHECK_FALSE(enc.truncated);
  CHECK_THROWS_AS(tok.encode_padded("low", 1), UsageError);

  CHECK(tok.decode({14, 12, 13, 11, 15}) == "<|startoftext|>lower low <|endoftext|>");
  CHECK(tok.decode({14, 12, 13, 11, 15}, true) == "lower low");
  CHECK_THROWS_AS(tok.decode({99}), UsageError);
  CHECK_THROWS_AS(tok.encode("bad \xff utf-8"), FormatError);
}

TEST_CASE("ClipTokenizer reports missing files", "[unit][clip_tokenizer]") {
  const fs::path root = test::temp_dir("clip_tokenizer_missing");
  CHECK_THAT(load_error<IoError>(root / "nope"), Catch::Contains("nope"));

  fs::path dir = tiny_tokenizer("no_vocab");
  fs::remove(dir / "vocab.json");
  CHECK_THAT(load_error<IoError>(dir), Catch::Contains("vocab.json"));

  dir = tiny_tokenizer("no_merges");
  fs::remove(dir / "merges.txt");
  CHECK_THAT(load_error<IoError>(dir), Catch::Contains("merges.txt"));
}

TEST_CASE("ClipTokenizer reports malformed vocab.json", "[unit][clip_tokenizer]") {
  std::string msg = load_error<FormatError>(tiny_tokenizer("vocab_json", R"({"l": 0,)"));
  CHECK_THAT(msg, Catch::Contains("vocab.json") && Catch::Contains("JSON"));

  // A number too large for a double (out_of_range from the parser, not parse_error).
  msg = load_error<FormatError>(tiny_tokenizer("vocab_overflow", R"({"l": 1e999})"));
  CHECK_THAT(msg, Catch::Contains("vocab.json") && Catch::Contains("number overflow"));

  msg = load_error<FormatError>(tiny_tokenizer("vocab_array", "[1, 2]"));
  CHECK_THAT(msg, Catch::Contains("vocab.json"));

  msg = load_error<FormatError>(tiny_tokenizer("vocab_id", R"({"l": "zero"})"));
  CHECK_THAT(msg, Catch::Contains("vocab.json") && Catch::Contains("\"l\""));

  msg = load_error<FormatError>(tiny_tokenizer("vocab_dup", R"({"l": 0, "o": 0})"));
  CHECK_THAT(msg, Catch::Contains("vocab.json") && Catch::Contains("id 0"));
}

TEST_CASE("ClipTokenizer reports malformed merges.txt with its line", "[unit][clip_tokenizer]") {
  std::string msg = load_error<FormatError>(
      tiny_tokenizer("merges_fields", kVocab, "#version: 0.2\nl o\nlo w</w> extra\n"));
  CHECK_THAT(msg, Catch::Contains("merges.txt:3") && Catch::Contains("two"));

  msg = load_error<FormatError>(tiny_tokenizer("merges_one", kVocab, "#version: 0.2\nlo\n"));
  CHECK_THAT(msg, Catch::Contains("merges.txt:2"));

  msg = load_error<FormatError>(tiny_tokenizer("merges_header", kVocab, "l o\nlo w</w>\n"));
  CHECK_THAT(msg, Catch::Contains("merges.txt:1") && Catch::Contains("#version"));
}

TEST_CASE("ClipTokenizer reports vocab.json and merges.txt disagreeing", "[unit][clip_tokenizer]") {
  // "o w" is not a vocabulary symbol.
  std::string msg = load_error<FormatError>(
      tiny_tokenizer("disagree_result", kVocab, "#version: 0.2\nl o\no w\n"));
  CHECK_THAT(msg, Catch::Contains("merges.txt:3") && Catch::Contains("\"ow\"") &&
                      Catch::Contains("vocab.json"));
  // "x" is not in the vocabulary at all.
  msg = load_error<FormatError>(tiny_tokenizer("disagree_part", kVocab, "#version: 0.2\nx o\n"));
  CHECK_THAT(msg, Catch::Contains("merges.txt:2") && Catch::Contains("\"x\""));
}

TEST_CASE("ClipTokenizer reports special tokens missing from the vocabulary",
          "[unit][clip_tokenizer]") {
  fs::path dir = tiny_tokenizer("special");
  write(dir / "special_tokens_map.json", R"({"bos_token": {"content": "<s>"}})");
  std::string msg = load_error<ConfigError>(dir);
  CHECK_THAT(msg, Catch::Contains("bos_token") && Catch::Contains("<s>") &&
                      Catch::Contains("special_tokens_map.json"));

  dir = tiny_tokenizer("config_json");
  write(dir / "tokenizer_config.json", "{");
  CHECK_THAT(load_error<FormatError>(dir), Catch::Contains("tokenizer_config.json"));
}
