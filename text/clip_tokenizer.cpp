// CLIP BPE tokenizer: transformers' slow CLIPTokenizer (with ftfy) in C++. Pipeline per prompt:
// split on literal special tokens -> ftfy.fix_text -> whitespace_clean -> lower -> CLIP regex
// pre-tokenizer -> bytes to unicode -> BPE with merge ranks and "</w>" word ends (cached) -> ids.
#include "text/clip_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/json_file.h"
#include "text/bpe_merges.h"
#include "text/ftfy.h"
#include "text/unicode.h"

namespace studio {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// merges.txt lines transformers reads: lines[1 : 49152 - 256 - 2 + 1] (CLIP's 48,894 merges).
constexpr size_t kMaxMerges = 49152 - 256 - 2;
constexpr size_t kDefaultMaxLength = 77;  // CLIP's text positions
constexpr size_t kMaxCacheEntries = 1 << 16;

const char* const kLoadHint =
    "point at a diffusers pipeline's tokenizer/ folder as written by transformers' "
    "CLIPTokenizer.save_pretrained (vocab.json, merges.txt, special_tokens_map.json, "
    "tokenizer_config.json)";

std::string read_file(const fs::path& path) { return read_file_bytes(path, kLoadHint); }

json parse_json(const fs::path& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
    throw FormatError(std::string("not valid JSON: ") + e.what(), path.string(),
                      "the file is damaged or truncated: restore it from the original model");
  }
}


// A special token's string: either "content" or {"content": ...} (transformers' AddedToken).
std::optional<std::string> token_content(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return std::nullopt;
}

// whitespace_clean(text): runs of Python-whitespace become one space, then strip().
std::u32string whitespace_clean(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool in_space = false;
  for (char32_t c : text) {
    if (unicode::is_space(c)) {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(U' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

std::u32string normalize_u32(std::u32string_view text) {
  return unicode::to_lower(whitespace_clean(ftfy::fix_text(text)));
}

// The CLIP pre-tokenizer regex, compiled by the `regex` module with IGNORECASE:
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// Under IGNORECASE the literals also match case variants (simple case folding: of these letters
// only "s" has a non-ASCII variant, U+017F LONG S), and a few code points (U+0345, which
// case-folds to a letter) fall into none of the classes: findall() skips them like whitespace.
char32_t fold_ascii(char32_t c) {
  if (c >= U'A' && c <= U'Z') return c + 32;
  if (c == 0x17F) return U's';
  if (c == 0x212A) return U'k';
  return c;
}

bool match_literal_ci(std::u32string_view text, size_t i, std::u32string_view lit) {
  if (i + lit.size() > text.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k)
    if (fold_ascii(text[i + k]) != lit[k]) return false;
  return true;
}

bool is_skipped(char32_t c) { return unicode::is_space(c) || unicode::is_ignorecase_class_gap(c); }

std::vector<std::u32string_view> pre_tokenize(std::u32string_view t) {
  static const std::u32string_view kLiterals[] = {
      U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  std::vector<std::u32string_view> out;
  size_t i = 0;
  while (i < t.size()) {
    char32_t c = t[i];
    if (is_skipped(c)) {
      ++i;
      continue;
    }
    size_t len = 0;
    for (std::u32string_view lit : kLiterals) {
      if (match_literal_ci(t, i, lit)) {
        len = lit.size();
        break;
      }
    }
    if (len == 0) {
      size_t j = i + 1;
      if (unicode::is_letter(c)) {
        while (j < t.size() && unicode::is_letter(t[j])) ++j;
      } else if (!unicode::is_number(c)) {
        while (j < t.size() && !is_skipped(t[j]) && !unicode::is_letter(t[j]) &&
               !unicode::is_number(t[j]))
          ++j;
      }
      len = j - i;
    }
    out.push_back(t.substr(i, len));
    i += len;
  }
  return out;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

std::string python_strip(std::string_view s) {
  std::u32string u = unicode::decode_utf8_lossy(s);
  size_t a = 0, b = u.size();
  while (a < b && unicode::is_space(u[a])) ++a;
  while (b > a && unicode::is_space(u[b - 1])) --b;
  return unicode::encode_utf8(std::u32string_view(u).substr(a, b - a));
}

}  // namespace

struct ClipTokenizer::Impl {
  fs::path dir;
  std::unordered_map<std::string, int64_t> encoder;  // vocab.json and added tokens
  std::vector<std::string> decoder;                  // id -> token ("" = unused id)
  std::unordered_set<int64_t> non_special_added;     // decoded apart, as transformers does
  std::vector<std::string> split_tokens;             // literal tokens cut out of the raw text
  int64_t base_id[256];                              // byte symbol, -1 if not in the vocab
  int64_t base_end_id[256];                          // byte symbol + "</w>"
  BpeMergeTable merges;
  int64_t bos = -1, eos = -1, pad = -1, unk = -1;
  size_t model_max_length = kDefaultMaxLength;
  bool clean_up_spaces = true;

  struct Pieces {
    std::vector<int64_t> ids;
    std::vector<std::string> tokens;
  };
  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, Pieces> cache;

  int64_t lookup(std::string_view token) const {
    auto it = encoder.find(std::string(token));
    return it == encoder.end() ? -1 : it->second;
  }


  // bpe(token) on the UTF-8 bytes of one pre-token.
  Pieces bpe(const std::string& bytes) const {
    Pieces out;
    if (bytes == "<|startoftext|>" || bytes == "<|endoftext|>") {  // transformers' seeded cache
      int64_t id = lookup(bytes);
      out.ids.push_back(id >= 0 ? id : unk);
      out.tokens.push_back(bytes);
      return out;
    }
    const ByteAlphabet& alphabet = byte_alphabet();
    // Symbols: vocab ids, or -(1 + k) for unknown[k] (a byte symbol missing from the vocab).
    std::vector<int64_t> word;
    std::vector<std::string> unknown;
    for (size_t k = 0; k < bytes.size(); ++k) {
      auto b = static_cast<unsigned char>(bytes[k]);
      bool last = k + 1 == bytes.size();
      int64_t id = last ? base_end_id[b] : base_id[b];
      if (id < 0) {
        unknown.push_back(alphabet.utf8[b] + (last ? "</w>" : ""));
        id = -int64_t(unknown.size());
      }
      word.push_back(id);
    }
    merges.apply(word);
    for (int64_t id : word) {
      if (id >= 0) {
        out.ids.push_back(id);
        out.tokens.push_back(decoder[size_t(id)]);
      } else {
        out.ids.push_back(unk);
        out.tokens.push_back(unknown[size_t(-id - 1)]);
      }
    }
    return out;
  }

  void cached_bpe(const std::string& bytes, Pieces& out) const {
    {
      std::shared_lock<std::shared_mutex> lock(cache_mutex);
      auto it = cache.find(bytes);
      if (it != cache.end()) {
        out.ids.insert(out.ids.end(), it->second.ids.begin(), it->second.ids.end());
        out.tokens.insert(out.tokens.end(), it->second.tokens.begin(), it->second.tokens.end());
        return;
      }
    }
    Pieces p = bpe(bytes);
    out.ids.insert(out.ids.end(), p.ids.begin(), p.ids.end());
    out.tokens.insert(out.tokens.end(), p.tokens.begin(), p.tokens.end());
    std::unique_lock<std::shared_mutex> lock(cache_mutex);
    if (cache.size() >= kMaxCacheEntries) cache.clear();
    cache.emplace(bytes, std::move(p));
  }

  // _tokenize(): one piece of text between special tokens.
  void tokenize_text(std::u32string_view text, Pieces& out) const {
    std::u32string normalized = normalize_u32(text);
    for (std::u32string_view word : pre_tokenize(normalized))
      cached_bpe(unicode::encode_utf8(word), out);
  }

  // tokenize(): cut literal special tokens out of the raw text (longest match at the earliest
  // position, like transformers' Trie), BPE the rest.
  Pieces tokenize(std::string_view text) const {
    std::u32string u32;
    size_t bad = 0;
    if (!unicode::decode_utf8(text, u32, &bad))
      throw FormatError("prompt is not valid UTF-8 (byte offset " + std::to_string(bad) + ")",
                        "CLIP tokenizer", "pass prompts as UTF-8 text");
    Pieces out;
    size_t start = 0, i = 0;
    auto flush_text = [&](size_t end) {
      if (end > start) {
        std::u32string piece;
        unicode::decode_utf8(text.substr(start, end - start), piece);
        tokenize_text(piece, out);
      }
    };
    while (i < text.size()) {
      const std::string* match = nullptr;
      for (const std::string& tok : split_tokens)
        if (text.compare(i, tok.size(), tok) == 0 && (!match || tok.size() > match->size()))
          match = &tok;
      if (match == nullptr) {
        ++i;
        continue;
      }
      flush_text(i);
      out.ids.push_back(encoder.at(*match));
      out.tokens.push_back(*match);
      i += match->size();
      start = i;
    }
    flush_text(text.size());
    return out;
  }

  std::string tokens_to_string(const std::vector<std::string>& tokens) const {
    const ByteAlphabet& alphabet = byte_alphabet();
    std::string bytes;
    for (const std::string& token : tokens) {
      for (char32_t c : unicode::decode_utf8_lossy(token)) {
        auto it = alphabet.to_byte.find(c);
        if (it != alphabet.to_byte.end())
          bytes.push_back(static_cast<char>(it->second));
        else
          unicode::append_utf8(bytes, c);
      }
    }
    std::string text = unicode::encode_utf8(unicode::decode_utf8_lossy(bytes));
    replace_all(text, "</w>", " ");
    return python_strip(text);
  }
};

ClipTokenizer::ClipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer ClipTokenizer::load(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw IoError("tokenizer folder not found", dir.string(), kLoadHint);
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;

  // vocab.json: {"token": id, ...}
  const fs::path vocab_path = dir / "vocab.json";
  json vocab = parse_json(vocab_path);
  if (!vocab.is_object() || vocab.empty())
    throw FormatError("expected a non-empty JSON object mapping tokens to ids", vocab_path.string(),
                      kLoadHint);
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > std::numeric_limits<int32_t>::max())
      throw FormatError("token \"" + it.key() + "\" has id " + it.value().dump() +
                            ", expected a non-negative integer",
                        vocab_path.string(),
                        "the file is damaged: restore it from the original model");
    max_id = std::max(max_id, it.value().get<int64_t>());
  }
  impl->decoder.assign(size_t(max_id + 1), std::string());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int64_t id = it.value().get<int64_t>();
    if (!impl->decoder[size_t(id)].empty())
      throw FormatError("id " + std::to_string(id) + " is given to both \"" +
                            impl->decoder[size_t(id)] + "\" and \"" + it.key() + "\"",
                        vocab_path.string(),
                        "the file is damaged: restore it from the original model");
    impl->decoder[size_t(id)] = it.key();
    impl->encoder[it.key()] = id;
  }

  // tokenizer_config.json and special_tokens_map.json (both optional; the latter wins).
  json config = json::object(), special_map = json::object();
  const fs::path config_path = dir / "tokenizer_config.json";
  const fs::path special_path = dir / "special_tokens_map.json";
  if (fs::exists(config_path, ec)) config = parse_json(config_path);
  if (fs::exists(special_path, ec)) special_map = parse_json(special_path);
  if (!config.is_object())
    throw FormatError("expected a JSON object", config_path.string(), kLoadHint);
  if (!special_map.is_object())
    throw FormatError("expected a JSON object", special_path.string(), kLoadHint);

  if (config.contains("added_tokens_decoder")) {
    const json& added = config["added_tokens_decoder"];
    if (!added.is_object())
      throw FormatError("added_tokens_decoder is not an object", config_path.string(), kLoadHint);
    for (auto it = added.begin(); it != added.end(); ++it) {
      auto content = token_content(it.value());
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(it.key(), &used);
        if (used != it.key().size()) id = -1;
      } catch (const std::exception&) {
      }
      if (!content || id < 0 || id > std::numeric_limits<int32_t>::max())
        throw FormatError("added_tokens_decoder entry \"" + it.key() + "\" is not id -> {content}",
                          config_path.string(), kLoadHint);
      if (size_t(id) >= impl->decoder.size()) {
        impl->decoder.resize(size_t(id) + 1);
      }
      if (!impl->decoder[size_t(id)].empty() && impl->decoder[size_t(id)] != *content)
        throw FormatError("added token \"" + *content + "\" has id " + it.key() + ", which " +
                              vocab_path.filename().string() + " gives to \"" +
                              impl->decoder[size_t(id)] + "\"",
                          config_path.string(), "vocab.json and tokenizer_config.json disagree");
      impl->decoder[size_t(id)] = *content;
      impl->encoder[*content] = id;
      bool special = it.value().is_object() && it.value().value("special", false);
      if (!special) impl->non_special_added.insert(id);
      impl->split_tokens.push_back(*content);
    }
  }

  struct Special {
    const char* key;
    const char* fallback;
    int64_t* id;
  };
  const Special specials[] = {{"bos_token", "<|startoftext|>", &impl->bos},
                              {"eos_token", "<|endoftext|>", &impl->eos},
                              {"unk_token", "<|endoftext|>", &impl->unk},
                              {"pad_token", "<|endoftext|>", &impl->pad}};
  for (const Special& s : specials) {
    std::string token = s.fallback;
    fs::path from = "the CLIPTokenizer default";
    for (const auto& [source, path] :
         {std::pair<const json*, fs::path>{&config, config_path},
          std::pair<const json*, fs::path>{&special_map, special_path}}) {
      if (!source->contains(s.key) || (*source)[s.key].is_null()) continue;
      auto content = token_content((*source)[s.key]);
      if (!content)
        throw FormatError(std::string(s.key) + " is neither a string nor {\"content\": ...}",
                          path.string(), kLoadHint);
      token = *content;
      from = path;
    }
    *s.id = impl->lookup(token);
    if (*s.id < 0)
      throw ConfigError(std::string(s.key) + " \"" + token + "\" (from " + from.string() +
                            ") is not in vocab.json",
                        dir.string(), "vocab.json and the special-token files disagree");
    if (std::find(impl->split_tokens.begin(), impl->split_tokens.end(), token) ==
        impl->split_tokens.end())
      impl->split_tokens.push_back(token);
  }

  if (config.contains("model_max_length")) {
    const json& m = config["model_max_length"];
    // Very large values (transformers' "no limit", 1e30) fall back to CLIP's 77 positions.
    if (!m.is_number() || m.get<double>() < 2)
      throw FormatError("model_max_length " + m.dump() + " is not a number >= 2",
                        config_path.string(), kLoadHint);
    if (m.get<double>() <= 1e6) impl->model_max_length = m.get<size_t>();
  }
  if (config.contains("clean_up_tokenization_spaces") &&
      config["clean_up_tokenization_spaces"].is_boolean())
    impl->clean_up_spaces = config["clean_up_tokenization_spaces"].get<bool>();

  // Byte symbols.
  const ByteAlphabet& alphabet = byte_alphabet();
  for (int b = 0; b < 256; ++b) {
    impl->base_id[b] = impl->lookup(alphabet.utf8[b]);
    impl->base_end_id[b] = impl->lookup(alphabet.utf8[b] + "</w>");
  }

  // merges.txt: "#version: ..." then one "first second" pair per line, best rank first.
  const fs::path merges_path = dir / "merges.txt";
  std::string merges_text = read_file(merges_path);
  std::istringstream lines(merges_text);
  std::string line;
  size_t line_no = 0;
  while (std::getline(lines, line) && line_no <= kMaxMerges) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = merges_path.string() + ":" + std::to_string(line_no);
    if (line_no == 1) {
      if (line.rfind("#version", 0) != 0)
        throw FormatError("the first line should be the \"#version: 0.2\" header, found \"" +
                              line.substr(0, 60) + "\"",
                          where, kLoadHint);
      continue;
    }
    std::istringstream fields(line);
    std::string first, second, extra;
    fields >> first >> second;
    if (first.empty()) continue;  // blank line
    if (second.empty() || (fields >> extra))
      throw FormatError(
          "expected two space-separated symbols, found \"" + line.substr(0, 80) + "\"", where,
          kLoadHint);
    int64_t a = impl->lookup(first), b = impl->lookup(second), m = impl->lookup(first + second);
    const std::string& missing = a < 0 ? first : b < 0 ? second : first + second;
    if (a < 0 || b < 0 || m < 0)
      throw FormatError("merge \"" + first + " " + second + "\" uses \"" + missing +
                            "\", which is not in " + vocab_path.string(),
                        where, "vocab.json and merges.txt are from different tokenizers");
    // Like transformers' dict(zip(merges, ranks)): a repeated pair keeps its last rank.
    impl->merges.add(a, b, int32_t(line_no - 2), m);
  }
  return ClipTokenizer(std::move(impl));
}

std::vector<int64_t> ClipTokenizer::encode(std::string_view text) const {
  return impl_->tokenize(text).ids;
}

std::vector<std::string> ClipTokenizer::tokenize(std::string_view text) const {
  return impl_->tokenize(text).tokens;
}

ClipEncoding ClipTokenizer::encode_padded(std::string_view text, size_t max_length) const {
  if (max_length < 2)
    throw UsageError("max_length " + std::to_string(max_length) + " leaves no room for bos and eos",
                     "ClipTokenizer::encode_padded",
                     "use max_length >= 2 (77 for Stable Diffusion)");
  Impl::Pieces pieces = impl_->tokenize(text);
  ClipEncoding enc;
  enc.content_length = pieces.ids.size();
  size_t keep = std::min(pieces.ids.size(), max_length - 2);
  enc.truncated = keep < pieces.ids.size();
  enc.input_ids.reserve(max_length);
  enc.input_ids.push_back(impl_->bos);
  enc.input_ids.insert(enc.input_ids.end(), pieces.ids.begin(), pieces.ids.begin() + long(keep));
  enc.input_ids.push_back(impl_->eos);
  enc.tokens.push_back(impl_->decoder[size_t(impl_->bos)]);
  enc.tokens.insert(enc.tokens.end(), pieces.tokens.begin(), pieces.tokens.begin() + long(keep));
  enc.tokens.push_back(impl_->decoder[size_t(impl_->eos)]);
  enc.input_ids.resize(max_length, impl_->pad);
  return enc;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> sub_texts, current;
  for (int64_t id : ids) {
    const std::string& token = id_to_token(id);
    if (skip_special_tokens && (id == m.bos || id == m.eos || id == m.unk || id == m.pad)) continue;
    if (m.non_special_added.count(id)) {
      if (!current.empty()) sub_texts.push_back(m.tokens_to_string(current));
      current.clear();
      sub_texts.push_back(token);
    } else {
      current.push_back(token);
    }
  }
  if (!current.empty()) sub_texts.push_back(m.tokens_to_string(current));
  std::string text;
  for (size_t i = 0; i < sub_texts.size(); ++i) text += (i ? " " : "") + sub_texts[i];
  if (m.clean_up_spaces) {
    // transformers' clean_up_tokenization
    static const std::pair<const char*, const char*> kRules[] = {
        {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : kRules) replace_all(text, from, to);
  }
  return text;
}

std::string ClipTokenizer::normalize(std::string_view text) {
  std::u32string u32;
  size_t bad = 0;
  if (!unicode::decode_utf8(text, u32, &bad))
    throw FormatError("text is not valid UTF-8 (byte offset " + std::to_string(bad) + ")",
                      "CLIP tokenizer", "pass prompts as UTF-8 text");
  return unicode::encode_utf8(normalize_u32(u32));
}

int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
int64_t ClipTokenizer::pad_id() const { return impl_->pad; }
int64_t ClipTokenizer::unk_id() const { return impl_->unk; }
size_t ClipTokenizer::vocab_size() const { return impl_->decoder.size(); }
size_t ClipTokenizer::model_max_length() const { return impl_->model_max_length; }
int64_t ClipTokenizer::token_to_id(std::string_view token) const { return impl_->lookup(token); }

const std::string& ClipTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || size_t(id) >= impl_->decoder.size() || impl_->decoder[size_t(id)].empty())
    throw UsageError(
        "token id " + std::to_string(id) + " is not in the vocabulary", impl_->dir.string(),
        "ids must come from this tokenizer (0.." + std::to_string(impl_->decoder.size() - 1) + ")");
  return impl_->decoder[size_t(id)];
}

}  // namespace studio
