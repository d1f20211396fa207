// Byte-level BPE tokenizer loaded from a Hugging Face `tokenizer.json` (GPT-2, LLaMA-3 and LLaDA
// layouts), plus LLaDA-Instruct's chat template built from ids. User text is never parsed for
// control tokens unless asked: turns and mask tokens are added by code, so text cannot inject them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace studio {

// An entry of tokenizer.json's "added_tokens".
struct BpeAddedToken {
  int64_t id = -1;
  std::string content;
  bool special = false;
};

class BpeTokenizer {
 public:
  // Loads `path`: a tokenizer.json file, or a folder holding one. Supported: model.type "BPE"
  // (vocab object; merges as "a b" strings or ["a", "b"] pairs; ignore_merges; optional
  // unk_token), normalizer null or NFC, pre_tokenizer ByteLevel or a Sequence of Split (the GPT-2
  // or LLaMA-3 / Qwen2 regex, behavior Isolated) ending in ByteLevel, decoder ByteLevel, added
  // tokens without lstrip/rstrip/single_word. Anything else is a ConfigError naming the file and
  // the field; IoError for a missing file, FormatError for malformed JSON or inconsistent data.
  // post_processor, truncation and padding are ignored: encode() never adds BOS/EOS.
  static BpeTokenizer load(const std::filesystem::path& path);

  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

  // Ids of `text` (UTF-8), without BOS/EOS. allow_special = false (for user text): no added
  // token is recognised, so "<|eot_id|>" in the text is plain text and becomes ordinary BPE
  // tokens. allow_special = true: added tokens are cut out of the text first (exact match,
  // leftmost-longest), as transformers' tokenizer(text, add_special_tokens=False) does.
  // Throws FormatError naming the byte offset if `text` is not valid UTF-8.
  std::vector<int64_t> encode(std::string_view text, bool allow_special = false) const;

  // The token strings (byte-level alphabet, e.g. "Ġworld") of encode(text, allow_special).
  std::vector<std::string> tokenize(std::string_view text, bool allow_special = false) const;

  // Text of `ids`: added tokens verbatim (dropped when special and skip_special_tokens), other
  // tokens through the byte table; bytes that are not valid UTF-8 (e.g. half of a character cut
  // at a token boundary) become U+FFFD, like bytes.decode("utf-8", errors="replace").
  // Throws UsageError for an id that is not in the vocabulary.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;
  // The raw bytes of decode() before UTF-8 validation (for incremental/streaming decoding).
  std::string decode_bytes(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  int64_t token_to_id(std::string_view token) const;  // vocab or added token; -1 if unknown
  const std::string& id_to_token(int64_t id) const;   // UsageError when not a token id
  bool has_id(int64_t id) const;      // a vocabulary or added token (tables may have holes)
  bool is_special(int64_t id) const;  // an added token marked special
  size_t vocab_size() const;                          // largest id + 1
  const std::vector<BpeAddedToken>& added_tokens() const;
  const std::filesystem::path& path() const;  // the tokenizer.json that was loaded

 private:
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One turn of a conversation.
struct ChatMessage {
  std::string role;     // "user", "assistant", "system"
  std::string content;  // user text: encoded with allow_special = false
};

// The control-token ids of a LLaMA-3 style chat template.
struct ChatTemplateIds {
  int64_t bos = -1;  // -1: none
  int64_t start_header = -1;
  int64_t end_header = -1;
  int64_t eot = -1;

  // Looks the tokens up by name: "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>" and
  // `bos_token` (LLaDA: "<|startoftext|>"; empty for none). ConfigError naming the tokenizer
  // file and the missing token.
  static ChatTemplateIds from_tokenizer(const BpeTokenizer& tokenizer,
                                        const std::string& bos_token = "<|startoftext|>");
};

// LLaDA-8B-Instruct's chat template (tokenizer_config.json's chat_template, LLaMA-3 style) as
// ids, equal to tokenizer(apply_chat_template(messages, add_generation_prompt, tokenize=False))
// for text without control tokens:
//   bos <|start_header_id|>role<|end_header_id|>\n\n{content stripped}<|eot_id|> ... then, with
//   add_generation_prompt, <|start_header_id|>assistant<|end_header_id|>\n\n
// The bos id precedes the first message only. Control tokens in roles or contents stay text.
std::vector<int64_t> build_chat_ids(const BpeTokenizer& tokenizer,
                                    const std::vector<ChatMessage>& messages,
                                    const ChatTemplateIds& ids, bool add_generation_prompt = true);

}  // namespace studio
