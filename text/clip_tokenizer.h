// The CLIP BPE tokenizer of Stable Diffusion, loaded from a diffusers `tokenizer/` folder
// (vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json). It reproduces
// transformers' slow CLIPTokenizer with ftfy installed, id for id: no torch, no Python.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace studio {

// What the SD pipeline feeds the text encoder for one prompt.
struct ClipEncoding {
  // max_length ids: bos, the content ids (cut to max_length - 2), eos, then pad.
  std::vector<int64_t> input_ids;
  // The BPE strings of input_ids before padding ("</w>" ends a word), for debugging.
  std::vector<std::string> tokens;
  // Whether the content did not fit, and its length before truncation (without bos/eos).
  bool truncated = false;
  size_t content_length = 0;
};

class ClipTokenizer {
 public:
  // Loads `dir` (a diffusers pipeline's tokenizer/ folder). Throws IoError for a missing folder or
  // file, FormatError for a malformed file (naming the file and line or key) and ConfigError for
  // special tokens the vocabulary does not have.
  static ClipTokenizer load(const std::filesystem::path& dir);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // Content ids of `text` (UTF-8), untruncated, without bos/eos: tokenizer(text).input_ids[1:-1].
  // Literal special tokens ("<|endoftext|>") in the text become their ids, as in transformers.
  // Throws FormatError if `text` is not valid UTF-8.
  std::vector<int64_t> encode(std::string_view text) const;

  // The BPE strings of encode(text).
  std::vector<std::string> tokenize(std::string_view text) const;

  // tokenizer(text, padding="max_length", max_length=max_length, truncation=True): bos + content
  // ids cut to max_length - 2 + eos, padded with the pad id to max_length (>= 2).
  ClipEncoding encode_padded(std::string_view text, size_t max_length = 77) const;

  // tokenizer.decode(ids): BPE strings joined, "</w>" read as a space, bytes decoded as UTF-8
  // (invalid sequences become U+FFFD), and transformers' clean-up of spaces before punctuation
  // when tokenizer_config.json asks for it. Throws UsageError for an id outside the vocabulary.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  // whitespace_clean(ftfy.fix_text(text)).lower(): the string the pre-tokenizer runs on (encode()
  // applies it to each piece of text between literal special tokens).
  static std::string normalize(std::string_view text);

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  int64_t unk_id() const;
  size_t vocab_size() const;        // number of ids (vocab.json plus added tokens)
  size_t model_max_length() const;  // tokenizer_config.json's model_max_length (77 for SD)
  int64_t token_to_id(std::string_view token) const;  // -1 if unknown
  const std::string& id_to_token(int64_t id) const;   // throws UsageError when out of range

 private:
  struct Impl;
  explicit ClipTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace studio
