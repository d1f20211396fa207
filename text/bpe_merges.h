// What the CLIP and byte-level BPE tokenizers share: GPT-2's byte-to-unicode alphabet, and a table
// of ranked symbol-pair merges applied to a word (symbol ids) lowest rank first until none merges.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace studio {

// bytes_to_unicode(): printable Latin-1 bytes map to themselves, the others to U+0100 + n.
struct ByteAlphabet {
  ByteAlphabet();
  char32_t to_unicode[256];
  std::unordered_map<char32_t, unsigned char> to_byte;
  std::string utf8[256];  // to_unicode[b] as UTF-8
};
const ByteAlphabet& byte_alphabet();

class BpeMergeTable {
 public:
  // Records that the pair (a, b) merges into `merged` with priority `rank` (lower first); a
  // repeated pair keeps the last rank, as the reference tokenizers do.
  void add(int64_t a, int64_t b, int32_t rank, int64_t merged) {
    merges_[key(a, b)] = Merge{rank, merged};
  }
  std::size_t size() const { return merges_.size(); }

  // Merges `word` in place. Negative ids are symbols outside the vocabulary: never merged.
  void apply(std::vector<int64_t>& word) const;

 private:
  struct Merge {
    int32_t rank;
    int64_t merged;
  };
  static uint64_t key(int64_t a, int64_t b) { return (uint64_t(a) << 32) | uint64_t(b); }
  std::unordered_map<uint64_t, Merge> merges_;
};

}  // namespace studio
