#include "text/bpe_merges.h"

#include "text/unicode.h"

namespace studio {

ByteAlphabet::ByteAlphabet() {
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    to_unicode[b] = printable ? char32_t(b) : next++;
    to_byte[to_unicode[b]] = static_cast<unsigned char>(b);
    utf8[b] = unicode::encode_utf8(std::u32string(1, to_unicode[b]));
  }
}

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

void BpeMergeTable::apply(std::vector<int64_t>& word) const {
  while (word.size() > 1) {
    const Merge* best = nullptr;
    int64_t first = 0, second = 0;
    for (std::size_t k = 0; k + 1 < word.size(); ++k) {
      if (word[k] < 0 || word[k + 1] < 0) continue;
      auto it = merges_.find(key(word[k], word[k + 1]));
      if (it != merges_.end() && (best == nullptr || it->second.rank < best->rank)) {
        best = &it->second;
        first = word[k];
        second = word[k + 1];
      }
    }
    if (best == nullptr) break;
    std::vector<int64_t> merged;
    merged.reserve(word.size());
    for (std::size_t k = 0; k < word.size(); ++k) {
      if (k + 1 < word.size() && word[k] == first && word[k + 1] == second) {
        merged.push_back(best->merged);
        ++k;
      } else {
        merged.push_back(word[k]);
      }
    }
    word = std::move(merged);
  }
}

}  // namespace studio
