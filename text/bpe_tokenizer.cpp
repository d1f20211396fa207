// Byte-level BPE from tokenizer.json. Pipeline per text: (allow_special) cut out added tokens ->
// normalizer (none / NFC) -> pre-tokenizer splits (the GPT-2 or LLaMA-3 regex, implemented by
// hand with the `regex` module's character classes) -> UTF-8 bytes to the GPT-2 byte alphabet ->
// merges by rank (transformers' GPT2Tokenizer.bpe, cached per word) -> ids.
#include "text/bpe_tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "text/bpe_merges.h"
#include "text/unicode.h"

namespace studio {
namespace {
namespace bpe {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr size_t kMaxCacheEntries = 1 << 16;

const char* const kLoadHint =
    "use a tokenizer.json written by Hugging Face tokenizers for a byte-level BPE model "
    "(GPT-2, LLaMA-3, LLaDA)";

std::string read_file(const fs::path& path) { return read_file_bytes(path, kLoadHint); }


// ---- Pre-tokenizer regexes, as the `regex` module matches them --------------------------------

// `regex`'s \s is the White_Space property: Python's str.isspace() without U+001C..U+001F.
bool is_s(char32_t c) { return unicode::is_space(c) && !(c >= 0x1C && c <= 0x1F); }
bool is_l(char32_t c) { return unicode::is_letter(c); }
bool is_n(char32_t c) { return unicode::is_number(c); }
bool is_other(char32_t c) { return !is_s(c) && !is_l(c) && !is_n(c); }  // [^\s\p{L}\p{N}]
bool is_crlf(char32_t c) { return c == U'\r' || c == U'\n'; }

// Simple case folding of the contraction letters (only 's' has a non-ASCII variant, U+017F).
char32_t fold(char32_t c) {
  if (c >= U'A' && c <= U'Z') return c + 32;
  if (c == 0x17F) return U's';
  return c;
}

// 's|'t|'re|'ve|'m|'ll|'d at i (first alternative that matches): its length, or 0.
size_t match_contraction(std::u32string_view t, size_t i, bool ignore_case) {
  static const std::u32string_view kSuffixes[] = {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"};
  if (t[i] != U'\'') return 0;
  for (std::u32string_view s : kSuffixes) {
    if (i + 1 + s.size() > t.size()) continue;
    bool ok = true;
    for (size_t k = 0; k < s.size() && ok; ++k) {
      char32_t c = t[i + 1 + k];
      ok = (ignore_case ? fold(c) : c) == s[k];
    }
    if (ok) return 1 + s.size();
  }
  return 0;
}

template <typename Pred>
size_t run_end(std::u32string_view t, size_t i, Pred pred) {
  while (i < t.size() && pred(t[i])) ++i;
  return i;
}

// \s+(?!\S)|\s+ at a whitespace character i: the run, minus its last character when a
// non-space follows and the run is longer than one.
size_t whitespace_end(std::u32string_view t, size_t i) {
  size_t j = run_end(t, i, is_s);
  if (j == t.size() || j - i < 2) return j;
  return j - 1;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(std::u32string_view t, std::vector<std::u32string_view>& out) {
  size_t i = 0;
  while (i < t.size()) {
    size_t end = i + match_contraction(t, i, false);
    if (end == i) {
      const size_t k = (t[i] == U' ' && i + 1 < t.size() && !is_s(t[i + 1])) ? i + 1 : i;
      const char32_t d = t[k];
      if (is_l(d))
        end = run_end(t, k, is_l);
      else if (is_n(d))
        end = run_end(t, k, is_n);
      else if (!is_s(d))
        end = run_end(t, k, is_other);
      else
        end = whitespace_end(t, i);
    }
    out.push_back(t.substr(i, end - i));
    i = end;
  }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+      (LLaMA-3: D = 3; Qwen2: \p{N} alone, D = 1)
void split_llama3(std::u32string_view t, size_t max_digits, std::vector<std::u32string_view>& out) {
  size_t i = 0;
  const size_t n = t.size();
  while (i < n) {
    const char32_t c = t[i];
    size_t end = i + match_contraction(t, i, true);
    if (end > i) {
      // a contraction
    } else if (!is_crlf(c) && !is_l(c) && !is_n(c) && i + 1 < n && is_l(t[i + 1])) {
      end = run_end(t, i + 1, is_l);
    } else if (is_l(c)) {
      end = run_end(t, i, is_l);
    } else if (is_n(c)) {
      end = std::min(run_end(t, i, is_n), i + max_digits);
    } else {
      const size_t k = (c == U' ' && i + 1 < n && is_other(t[i + 1])) ? i + 1 : i;
      if (is_other(t[k])) {
        end = run_end(t, run_end(t, k, is_other), is_crlf);
      } else {
        // c is whitespace: \s*[\r\n]+ ends after the run's last CR/LF; else \s+(?!\S) | \s+.
        const size_t j = run_end(t, i, is_s);
        size_t last_crlf = n;
        for (size_t p = i; p < j; ++p)
          if (is_crlf(t[p])) last_crlf = p;
        end = last_crlf != n ? last_crlf + 1 : whitespace_end(t, i);
      }
    }
    out.push_back(t.substr(i, end - i));
    i = end;
  }
}

// The patterns recognised in Split pre-tokenizers (as written in tokenizer.json).
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class SplitPattern { Gpt2, Llama3, Qwen2 };

struct PreTokenizerStep {
  SplitPattern pattern = SplitPattern::Gpt2;
};

// ---- tokenizer.json parsing helpers ---------------------------------------------------------

struct JsonContext {
  std::string file;

  [[noreturn]] void unsupported(const std::string& field, const json& value,
                                const std::string& supported) const {
    throw ConfigError(field + " = " + value.dump() + " is not supported", file,
                      "studio supports " + supported);
  }
  [[noreturn]] void malformed(const std::string& field, const std::string& expected) const {
    throw FormatError(field + ": expected " + expected, file, kLoadHint);
  }
  const json& object_field(const json& j, const std::string& key, const std::string& path) const {
    if (!j.is_object() || !j.contains(key)) malformed(path + key, "a value (the key is missing)");
    return j[key];
  }
  bool get_bool(const json& j, const std::string& key, bool fallback,
                const std::string& path) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) malformed(path + key, "true or false");
    return it->get<bool>();
  }
  std::string type_of(const json& j, const std::string& path) const {
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
      malformed(path + "type", "an object with a string \"type\"");
    return j["type"].get<std::string>();
  }
};

}  // namespace bpe
}  // namespace

namespace fs = std::filesystem;

struct BpeTokenizer::Impl {
  fs::path file;
  std::unordered_map<std::string, int64_t> vocab;  // model.vocab
  std::vector<std::string> id_to_token;            // "" for unused ids
  std::vector<char> id_used;
  std::vector<BpeAddedToken> added;
  std::unordered_map<std::string, int64_t> added_by_content;
  std::vector<int8_t> added_kind;  // per id: 0 none, 1 added, 2 added special
  std::vector<std::vector<size_t>>
      added_by_first_byte;  // byte -> indices of `added`, longest first

  bool nfc = false;
  std::vector<bpe::PreTokenizerStep> splits;  // Split steps, in order
  bool byte_level_regex = true;               // ByteLevel(use_regex): the GPT-2 split
  bool add_prefix_space = false;
  bool ignore_merges = false;
  int64_t unk = -1;
  int64_t byte_id[256];  // byte symbol id, -1 if absent from the vocab

  BpeMergeTable merges;

  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;


  int64_t lookup(const std::string& token) const {
    auto it = vocab.find(token);
    return it == vocab.end() ? -1 : it->second;
  }

  // GPT2Tokenizer.bpe() on one pre-token's bytes: repeatedly merge every occurrence of the
  // lowest-ranked adjacent pair.
  std::vector<int64_t> bpe(const std::string& bytes) const {
    const ByteAlphabet& alphabet = byte_alphabet();
    if (ignore_merges) {
      std::string word;
      for (unsigned char b : bytes) word += alphabet.utf8[b];
      int64_t id = lookup(word);
      if (id >= 0) return {id};
    }
    std::vector<int64_t> word;
    word.reserve(bytes.size());
    for (unsigned char b : bytes) {
      // A byte symbol missing from the vocab: unk if there is one, else dropped (as HF does).
      if (byte_id[b] >= 0)
        word.push_back(byte_id[b]);
      else if (unk >= 0)
        word.push_back(-1);
    }
    merges.apply(word);
    for (int64_t& id : word)
      if (id < 0) id = unk;
    return word;
  }

  void cached_bpe(const std::string& bytes, std::vector<int64_t>& out) const {
    {
      std::shared_lock<std::shared_mutex> lock(cache_mutex);
      auto it = cache.find(bytes);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int64_t> ids = bpe(bytes);
    out.insert(out.end(), ids.begin(), ids.end());
    std::unique_lock<std::shared_mutex> lock(cache_mutex);
    if (cache.size() >= bpe::kMaxCacheEntries) cache.clear();
    cache.emplace(bytes, std::move(ids));
  }

  // One piece of text between added tokens: normalizer, pre-tokenizer, BPE.
  void encode_text(std::string_view utf8, std::vector<int64_t>& out) const {
    if (utf8.empty()) return;
    std::u32string text;
    unicode::decode_utf8(utf8, text);
    if (nfc) text = unicode::nfc(text);
    std::vector<std::u32string> pieces{std::move(text)};
    for (const bpe::PreTokenizerStep& step : splits) {
      std::vector<std::u32string> next;
      for (const std::u32string& piece : pieces) {
        std::vector<std::u32string_view> parts;
        if (step.pattern == bpe::SplitPattern::Gpt2)
          bpe::split_gpt2(piece, parts);
        else
          bpe::split_llama3(piece, step.pattern == bpe::SplitPattern::Llama3 ? 3 : 1, parts);
        for (std::u32string_view p : parts) next.emplace_back(p);
      }
      pieces = std::move(next);
    }
    for (std::u32string& piece : pieces) {
      // ByteLevel: optional prefix space per piece, then (use_regex) the GPT-2 split.
      if (add_prefix_space && (piece.empty() || piece[0] != U' '))
        piece.insert(piece.begin(), U' ');
      if (byte_level_regex) {
        std::vector<std::u32string_view> parts;
        bpe::split_gpt2(piece, parts);
        for (std::u32string_view p : parts) cached_bpe(unicode::encode_utf8(p), out);
      } else if (!piece.empty()) {
        cached_bpe(unicode::encode_utf8(piece), out);
      }
    }
  }

  std::vector<int64_t> encode(std::string_view text, bool allow_special) const {
    std::u32string check;
    size_t bad = 0;
    if (!unicode::decode_utf8(text, check, &bad))
      throw FormatError("text is not valid UTF-8 (byte offset " + std::to_string(bad) + ")",
                        "BPE tokenizer " + file.string(), "pass text as UTF-8");
    std::vector<int64_t> out;
    if (!allow_special) {
      encode_text(text, out);
      return out;
    }
    size_t start = 0, i = 0;
    while (i < text.size()) {
      const BpeAddedToken* match = nullptr;
      for (size_t idx : added_by_first_byte[static_cast<unsigned char>(text[i])]) {
        const std::string& c = added[idx].content;
        if (text.compare(i, c.size(), c) == 0) {
          match = &added[idx];  // longest first
          break;
        }
      }
      if (match == nullptr) {
        ++i;
        continue;
      }
      encode_text(text.substr(start, i - start), out);
      out.push_back(match->id);
      i += match->content.size();
      start = i;
    }
    encode_text(text.substr(start), out);
    return out;
  }

  void check_id(int64_t id) const {
    if (id < 0 || size_t(id) >= id_used.size() || !id_used[size_t(id)])
      throw UsageError("token id " + std::to_string(id) + " is not in the vocabulary of " +
                           std::to_string(id_used.size()) + " ids",
                       file.string(), "decode ids produced with this tokenizer and its model");
  }

  std::string decode_bytes(const std::vector<int64_t>& ids, bool skip_special) const {
    const ByteAlphabet& alphabet = byte_alphabet();
    std::string bytes;
    for (int64_t id : ids) {
      check_id(id);
      const int8_t kind = added_kind[size_t(id)];
      if (kind != 0) {
        if (kind == 2 && skip_special) continue;
        bytes += id_to_token[size_t(id)];  // added tokens verbatim
        continue;
      }
      std::u32string chars;
      unicode::decode_utf8(id_to_token[size_t(id)], chars);
      for (char32_t c : chars) {
        auto it = alphabet.to_byte.find(c);
        if (it != alphabet.to_byte.end())
          bytes.push_back(static_cast<char>(it->second));
        else
          unicode::append_utf8(bytes, c);
      }
    }
    return bytes;
  }
};

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;
BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer BpeTokenizer::load(const fs::path& path_in) {
  using bpe::json;
  std::error_code ec;
  fs::path path = path_in;
  if (fs::is_directory(path, ec)) path /= "tokenizer.json";
  const std::string text = bpe::read_file(path);
  const bpe::JsonContext cx{path.string()};
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
    throw FormatError(std::string("not valid JSON: ") + e.what(), path.string(),
                      "the file is damaged or truncated: restore it from the original model");
  }
  if (!j.is_object()) cx.malformed("the top level", "a JSON object");

  auto impl = std::make_unique<Impl>();
  impl->file = path;

  // model
  const json& model = cx.object_field(j, "model", "");
  const std::string model_type = model.contains("type") ? cx.type_of(model, "model.") : "BPE";
  if (model_type != "BPE")
    cx.unsupported("model.type", model_type, "byte-level BPE models (model.type \"BPE\")");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0))
    cx.unsupported("model.dropout", model["dropout"], "null (no BPE dropout at inference)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() &&
        !(model[key].is_string() && model[key].get<std::string>().empty()))
      cx.unsupported(std::string("model.") + key, model[key], "null or \"\" for byte-level BPE");
  }
  if (cx.get_bool(model, "byte_fallback", false, "model."))
    cx.unsupported("model.byte_fallback", true, "byte-level BPE (byte_fallback false)");
  impl->ignore_merges = cx.get_bool(model, "ignore_merges", false, "model.");

  const json& vocab = cx.object_field(model, "vocab", "model.");
  if (!vocab.is_object() || vocab.empty()) cx.malformed("model.vocab", "a non-empty object");
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > std::numeric_limits<int32_t>::max())
      cx.malformed("model.vocab[\"" + it.key() + "\"]", "a non-negative integer id");
    max_id = std::max(max_id, it.value().get<int64_t>());
  }

  // added_tokens
  const json added = j.contains("added_tokens") && !j["added_tokens"].is_null() ? j["added_tokens"]
                                                                                : json::array();
  if (!added.is_array()) cx.malformed("added_tokens", "an array");
  for (size_t k = 0; k < added.size(); ++k) {
    const std::string field = "added_tokens[" + std::to_string(k) + "]";
    const json& a = added[k];
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
        !a.contains("content") || !a["content"].is_string() ||
        a["content"].get<std::string>().empty() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() > std::numeric_limits<int32_t>::max())
      cx.malformed(field, "{\"id\": integer, \"content\": non-empty string, ...}");
    for (const char* key : {"lstrip", "rstrip", "single_word"})
      if (cx.get_bool(a, key, false, field + "."))
        cx.unsupported(field + "." + key, true, "added tokens matched exactly (false)");
    BpeAddedToken t;
    t.id = a["id"].get<int64_t>();
    t.content = a["content"].get<std::string>();
    t.special = cx.get_bool(a, "special", false, field + ".");
    std::u32string check;
    if (!unicode::decode_utf8(t.content, check)) cx.malformed(field + ".content", "UTF-8 text");
    max_id = std::max(max_id, t.id);
    impl->added.push_back(std::move(t));
  }

  impl->id_to_token.assign(size_t(max_id + 1), std::string());
  impl->id_used.assign(size_t(max_id + 1), 0);
  impl->added_kind.assign(size_t(max_id + 1), 0);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const size_t id = size_t(it.value().get<int64_t>());
    if (impl->id_used[id])
      throw FormatError("id " + std::to_string(id) + " is given to both \"" +
                            impl->id_to_token[id] + "\" and \"" + it.key() + "\" in model.vocab",
                        path.string(), "the file is damaged: restore it from the original model");
    impl->id_used[id] = 1;
    impl->id_to_token[id] = it.key();
    impl->vocab[it.key()] = int64_t(id);
  }
  for (const BpeAddedToken& t : impl->added) {
    const size_t id = size_t(t.id);
    if (impl->id_used[id] && impl->id_to_token[id] != t.content && impl->added_kind[id] == 0)
      throw FormatError("added token \"" + t.content + "\" has id " + std::to_string(id) +
                            ", which model.vocab gives to \"" + impl->id_to_token[id] + "\"",
                        path.string(), "the file is damaged: restore it from the original model");
    if (impl->added_kind[id] != 0 && impl->id_to_token[id] != t.content)
      throw FormatError("two added tokens share id " + std::to_string(id), path.string(),
                        "the file is damaged: restore it from the original model");
    impl->id_used[id] = 1;
    impl->id_to_token[id] = t.content;
    impl->added_kind[id] = t.special ? 2 : 1;
    impl->added_by_content[t.content] = t.id;
  }
  impl->added_by_first_byte.assign(256, {});
  for (size_t k = 0; k < impl->added.size(); ++k)
    impl->added_by_first_byte[static_cast<unsigned char>(impl->added[k].content[0])].push_back(k);
  for (auto& list : impl->added_by_first_byte)
    std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) {
      return impl->added[a].content.size() > impl->added[b].content.size();
    });

  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    if (!model["unk_token"].is_string()) cx.malformed("model.unk_token", "a string or null");
    impl->unk = impl->lookup(model["unk_token"].get<std::string>());
    if (impl->unk < 0)
      throw FormatError(
          "model.unk_token \"" + model["unk_token"].get<std::string>() + "\" is not in model.vocab",
          path.string(), bpe::kLoadHint);
  }
  const ByteAlphabet& alphabet = byte_alphabet();
  for (int b = 0; b < 256; ++b) impl->byte_id[b] = impl->lookup(alphabet.utf8[b]);

  // merges: "a b" strings or ["a", "b"] pairs, best rank first.
  const json merges =
      model.contains("merges") && !model["merges"].is_null() ? model["merges"] : json::array();
  if (!merges.is_array()) cx.malformed("model.merges", "an array");
  for (size_t k = 0; k < merges.size(); ++k) {
    const json& m = merges[k];
    const std::string field = "model.merges[" + std::to_string(k) + "]";
    std::string first, second;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() ||
          s.find(' ', sp + 1) != std::string::npos)
        cx.malformed(field,
                     "\"first second\" (two symbols separated by one space), found " + m.dump());
      first = s.substr(0, sp);
      second = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      first = m[0].get<std::string>();
      second = m[1].get<std::string>();
    } else {
      cx.malformed(field, "\"first second\" or [\"first\", \"second\"], found " + m.dump());
    }
    const int64_t a = impl->lookup(first), b = impl->lookup(second);
    const int64_t merged = impl->lookup(first + second);
    if (a < 0 || b < 0 || merged < 0)
      throw FormatError(field + " \"" + first + " " + second + "\" uses \"" +
                            (a < 0   ? first
                             : b < 0 ? second
                                     : first + second) +
                            "\", which is not in model.vocab",
                        path.string(), "the file is damaged: restore it from the original model");
    // Like transformers' dict(zip(merges, ranks)): a repeated pair keeps its last rank.
    impl->merges.add(a, b, int32_t(k), merged);
  }

  // normalizer
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const std::string type = cx.type_of(j["normalizer"], "normalizer.");
    if (type != "NFC") cx.unsupported("normalizer.type", type, "no normalizer (null) or NFC");
    impl->nfc = true;
  }

  // pre_tokenizer: ByteLevel, or Sequence[Split..., ByteLevel].
  const std::string pre_hint =
      "pre_tokenizer ByteLevel, or a Sequence of Split steps (the GPT-2, LLaMA-3 or Qwen2 regex, "
      "behavior \"Isolated\", invert false) ending in ByteLevel";
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null())
    cx.unsupported("pre_tokenizer", nullptr, pre_hint);
  std::vector<std::pair<json, std::string>> steps;
  {
    const json& pre = j["pre_tokenizer"];
    const std::string type = cx.type_of(pre, "pre_tokenizer.");
    if (type == "Sequence") {
      const json& list = cx.object_field(pre, "pretokenizers", "pre_tokenizer.");
      if (!list.is_array() || list.empty())
        cx.malformed("pre_tokenizer.pretokenizers", "a non-empty array");
      for (size_t k = 0; k < list.size(); ++k)
        steps.emplace_back(list[k], "pre_tokenizer.pretokenizers[" + std::to_string(k) + "].");
    } else {
      steps.emplace_back(pre, "pre_tokenizer.");
    }
  }
  for (size_t k = 0; k < steps.size(); ++k) {
    const auto& [step, field] = steps[k];
    const std::string type = cx.type_of(step, field);
    const bool last = k + 1 == steps.size();
    if (type == "ByteLevel" && last) {
      impl->add_prefix_space = cx.get_bool(step, "add_prefix_space", true, field);
      impl->byte_level_regex = cx.get_bool(step, "use_regex", true, field);
    } else if (type == "Split" && !last) {
      const json& pattern = cx.object_field(step, "pattern", field);
      if (!pattern.is_object() || !pattern.contains("Regex") || !pattern["Regex"].is_string())
        cx.unsupported(field + "pattern", pattern, pre_hint);
      const std::string re = pattern["Regex"].get<std::string>();
      bpe::PreTokenizerStep s;
      if (re == bpe::kGpt2Pattern)
        s.pattern = bpe::SplitPattern::Gpt2;
      else if (re == bpe::kLlama3Pattern)
        s.pattern = bpe::SplitPattern::Llama3;
      else if (re == bpe::kQwen2Pattern)
        s.pattern = bpe::SplitPattern::Qwen2;
      else
        cx.unsupported(field + "pattern.Regex", re, pre_hint);
      const json behavior = step.contains("behavior") ? step["behavior"] : json("Isolated");
      if (behavior != "Isolated") cx.unsupported(field + "behavior", behavior, pre_hint);
      if (cx.get_bool(step, "invert", false, field))
        cx.unsupported(field + "invert", true, pre_hint);
      impl->splits.push_back(s);
    } else {
      cx.unsupported(field + "type", type, pre_hint);
    }
  }

  // decoder
  if (!j.contains("decoder") || j["decoder"].is_null())
    cx.unsupported("decoder", nullptr, "decoder ByteLevel");
  {
    const std::string type = cx.type_of(j["decoder"], "decoder.");
    if (type != "ByteLevel") cx.unsupported("decoder.type", type, "decoder ByteLevel");
  }

  return BpeTokenizer(std::move(impl));
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view text, bool allow_special) const {
  return impl_->encode(text, allow_special);
}

std::vector<std::string> BpeTokenizer::tokenize(std::string_view text, bool allow_special) const {
  std::vector<std::string> out;
  for (int64_t id : impl_->encode(text, allow_special))
    out.push_back(impl_->id_to_token[size_t(id)]);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  return unicode::encode_utf8(
      unicode::decode_utf8_lossy(impl_->decode_bytes(ids, skip_special_tokens)));
}

std::string BpeTokenizer::decode_bytes(const std::vector<int64_t>& ids,
                                       bool skip_special_tokens) const {
  return impl_->decode_bytes(ids, skip_special_tokens);
}

int64_t BpeTokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  auto it = impl_->added_by_content.find(key);
  if (it != impl_->added_by_content.end()) return it->second;
  return impl_->lookup(key);
}

const std::string& BpeTokenizer::id_to_token(int64_t id) const {
  impl_->check_id(id);
  return impl_->id_to_token[size_t(id)];
}

bool BpeTokenizer::has_id(int64_t id) const {
  return id >= 0 && size_t(id) < impl_->id_used.size() && impl_->id_used[size_t(id)];
}

bool BpeTokenizer::is_special(int64_t id) const {
  return id >= 0 && size_t(id) < impl_->added_kind.size() && impl_->added_kind[size_t(id)] == 2;
}

size_t BpeTokenizer::vocab_size() const { return impl_->id_used.size(); }

const std::vector<BpeAddedToken>& BpeTokenizer::added_tokens() const { return impl_->added; }

const std::filesystem::path& BpeTokenizer::path() const { return impl_->file; }

// ---- Chat template --------------------------------------------------------------------------

ChatTemplateIds ChatTemplateIds::from_tokenizer(const BpeTokenizer& tokenizer,
                                                const std::string& bos_token) {
  auto need = [&](const std::string& token) {
    const int64_t id = tokenizer.token_to_id(token);
    if (id < 0)
      throw ConfigError(
          "the chat template needs the token \"" + token + "\", which the tokenizer does not have",
          tokenizer.path().string(),
          "use the tokenizer of an instruct model with a LLaMA-3 style template");
    return id;
  };
  ChatTemplateIds ids;
  if (!bos_token.empty()) ids.bos = need(bos_token);
  ids.start_header = need("<|start_header_id|>");
  ids.end_header = need("<|end_header_id|>");
  ids.eot = need("<|eot_id|>");
  return ids;
}

namespace {
// Jinja's trim filter: Python str.strip().
std::string python_strip(const std::string& s) {
  std::u32string u;
  if (!unicode::decode_utf8(s, u)) return s;  // encode() reports the bad byte
  size_t a = 0, b = u.size();
  while (a < b && unicode::is_space(u[a])) ++a;
  while (b > a && unicode::is_space(u[b - 1])) --b;
  return unicode::encode_utf8(std::u32string_view(u).substr(a, b - a));
}
}  // namespace

std::vector<int64_t> build_chat_ids(const BpeTokenizer& tokenizer,
                                    const std::vector<ChatMessage>& messages,
                                    const ChatTemplateIds& ids, bool add_generation_prompt) {
  if (ids.start_header < 0 || ids.end_header < 0 || ids.eot < 0)
    throw UsageError("chat template ids are not set", tokenizer.path().string(),
                     "build them with ChatTemplateIds::from_tokenizer");
  std::vector<int64_t> out;
  auto append = [&](const std::vector<int64_t>& v) { out.insert(out.end(), v.begin(), v.end()); };
  auto header = [&](const std::string& role) {
    out.push_back(ids.start_header);
    append(tokenizer.encode(role, false));
    out.push_back(ids.end_header);
  };
  for (size_t k = 0; k < messages.size(); ++k) {
    if (k == 0 && ids.bos >= 0) out.push_back(ids.bos);
    header(messages[k].role);
    // The text between <|end_header_id|> and <|eot_id|> is one piece for the pre-tokenizer.
    append(tokenizer.encode("\n\n" + python_strip(messages[k].content), false));
    out.push_back(ids.eot);
  }
  if (add_generation_prompt) {
    header("assistant");
    append(tokenizer.encode("\n\n", false));
  }
  return out;
}

}  // namespace studio
