// The merge step shared by the CLIP and byte-level BPE tokenizers: a table of ranked symbol-pair
// merges, applied to a word (symbol ids) lowest rank first until no pair merges.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace studio {

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
