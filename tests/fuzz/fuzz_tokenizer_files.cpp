// libFuzzer target: the tokenizer loaders on arbitrary bytes as their files, then an encode with
// what loaded. The first byte picks the loader:
//   even: BpeTokenizer::load on the rest as tokenizer.json (LLaDA / GPT-2 / LLaMA-3 style);
//   odd:  ClipTokenizer::load on a tokenizer/ folder whose files are the rest split at its first
//         three NUL bytes: vocab.json, merges.txt, then tokenizer_config.json and
//         special_tokens_map.json when present (a diffusers pipeline's tokenizer/ folder).
// Each input must load or be refused with a studio::Error; a loaded tokenizer must encode a fixed
// prompt to ids inside its vocabulary. Another exception, a crash, a sanitizer report, a hang or
// > 2 GB RSS is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/fuzz/fuzz_temp.h"
#include "text/bpe_tokenizer.h"
#include "text/clip_tokenizer.h"

namespace {
const char* const kPrompt = "a low red mug <|endoftext|> on oak, 12 cm \xe2\x80\x94 caf\xc3\xa9";
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  studio::fuzz::temp_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool clip = (data[0] & 1) != 0;
  ++data;
  --size;
  const auto& tmp = studio::fuzz::temp_dir();
  tmp.clear();  // no file of an earlier input may be read as this one's
  try {
    if (!clip) {
      const auto tok = studio::BpeTokenizer::load(tmp.write("tokenizer.json", data, size));
      for (const bool special : {false, true})
        for (const int64_t id : tok.encode(kPrompt, special))
          if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) std::abort();
      return 0;
    }
    const char* const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                 "special_tokens_map.json"};
    const auto parts = studio::fuzz::split_at_nul(data, size, 4);
    for (size_t i = 0; i < parts.size(); ++i)
      tmp.write(names[i], reinterpret_cast<const uint8_t*>(parts[i].data()), parts[i].size());
    const auto tok = studio::ClipTokenizer::load(tmp.path());
    for (const int64_t id : tok.encode(kPrompt))
      if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) std::abort();
  } catch (const studio::Error&) {
  }
  return 0;
}
