// libFuzzer target: the byte-level BPE tokenizer (LLaDA / GPT-2 / LLaMA-3 tokenizer.json) on
// arbitrary bytes as user text, with and without special tokens: every input must encode to ids
// inside the vocabulary, and decode back to the same bytes when special tokens are off.
// The tokenizer is the fixture's: $STUDIO_FIXTURES/bpe-tokenizer (default ../shared/fixtures).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "core/error.h"
#include "tests/fuzz/fuzz_fixtures.h"
#include "text/bpe_tokenizer.h"

namespace {
std::unique_ptr<studio::BpeTokenizer> tokenizer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer = std::make_unique<studio::BpeTokenizer>(
      studio::BpeTokenizer::load(studio::fuzz::fixture("bpe-tokenizer") / "tokenizer.json"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const bool special : {false, true}) {
    try {
      const auto ids = tokenizer->encode(text, special);
      for (const int64_t id : ids)
        if (id < 0 || id >= static_cast<int64_t>(tokenizer->vocab_size())) std::abort();
      // Byte-level BPE is lossless: plain text decodes back to the same bytes.
      if (!special && tokenizer->decode_bytes(ids) != text) std::abort();
    } catch (const studio::Error&) {
    }
  }
  return 0;
}
