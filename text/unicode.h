// Unicode helpers for the tokenizers: strict UTF-8, character classes, Python's str.lower() and
// NFC, with tables generated from the reference environment (Python 3.11's unicodedata 14.0.0 and
// the regex module) so that text is normalised exactly as the Python tokenizers normalise it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace studio::unicode {

// Decodes strict UTF-8, as Python's "utf-8" codec does (no overlongs, surrogates or code points
// above U+10FFFF). On malformed input returns false and sets *error_offset (if given) to the byte
// offset of the first bad sequence; `out` then holds what was decoded before it.
bool decode_utf8(std::string_view bytes, std::u32string& out, size_t* error_offset = nullptr);

// Decodes UTF-8 like Python's bytes.decode("utf-8", errors="replace"): each maximal invalid
// subsequence becomes one U+FFFD.
std::u32string decode_utf8_lossy(std::string_view bytes);

void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(std::u32string_view text);

// \p{L} and \p{N} as the `regex` module of the reference environment (2022.10.31, Unicode 15.0)
// matches them: the classes of the CLIP and GPT-2 pre-tokenizer patterns.
bool is_letter(char32_t cp);
bool is_number(char32_t cp);
// Code points that the IGNORECASE CLIP pattern's classes [\p{L}], [\p{N}] and [^\s\p{L}\p{N}]
// all reject (U+0345, which case-folds to a letter): its findall() skips them.
bool is_ignorecase_class_gap(char32_t cp);

bool is_decimal(char32_t cp);  // Python re's \d (general category Nd, Unicode 14.0)
bool is_space(char32_t cp);    // Python str.isspace() (Python re's \s)
bool is_word(char32_t cp);     // Python re's \w (a letter, a number or '_', Unicode 14.0)

// Python's str.lower(): full lowercase mapping (U+0130 -> "i" U+0307) and the final-sigma rule.
std::u32string to_lower(std::u32string_view text);

uint8_t combining_class(char32_t cp);

// Unicode Normalization Form C (unicodedata.normalize("NFC", text)).
std::u32string nfc(std::u32string_view text);

}  // namespace studio::unicode
