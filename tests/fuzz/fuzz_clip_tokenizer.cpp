// libFuzzer target: the CLIP tokenizer (ftfy normalisation, pre-tokenizer, BPE) on arbitrary bytes
// as a prompt. Every input must encode (ids inside the vocabulary, padded to 77) or throw a
// studio::Error; anything else (another exception, a crash, a sanitizer report) is a finding.
// The tokenizer is the fixture's: $STUDIO_FIXTURES/sd-tiny/tokenizer (the real CLIP vocabulary)
// (default ../shared/fixtures).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string_view>

#include "core/error.h"
#include "tests/fuzz/fuzz_fixtures.h"
#include "text/clip_tokenizer.h"

namespace {
std::unique_ptr<studio::ClipTokenizer> tokenizer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizer = std::make_unique<studio::ClipTokenizer>(
      studio::ClipTokenizer::load(studio::fuzz::fixture("sd-tiny") / "tokenizer"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto enc = tokenizer->encode_padded(text, 77);
    if (enc.input_ids.size() != 77) std::abort();
    for (const int64_t id : enc.input_ids)
      if (id < 0 || id >= static_cast<int64_t>(tokenizer->vocab_size())) std::abort();
  } catch (const studio::Error&) {
  }
  return 0;
}
