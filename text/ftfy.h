// A C++ port of ftfy 6.2's fix_text() with its default configuration, the text clean-up that
// transformers' CLIPTokenizer applies before BPE: HTML entities, mojibake, C1 controls, Latin
// ligatures, full-width forms, curly quotes, line breaks, terminal escapes, control characters,
// NFC.
#pragma once

#include <string>
#include <string_view>

namespace studio::ftfy {

// ftfy.fix_text(text): fixes each line (segment ending in "\n") until it stops changing.
std::u32string fix_text(std::u32string_view text);

// ftfy.fix_encoding(text): only the mojibake repair (re-decoding text that was decoded with the
// wrong single-byte encoding as UTF-8).
std::u32string fix_encoding(std::u32string_view text);

// ftfy.badness.is_bad(text): whether the text contains a sequence that looks like mojibake.
bool is_bad(std::u32string_view text);

// ftfy.fixes.unescape_html(text): decodes "&name;" HTML5 entities (and some all-caps forms) and
// "&#NNN;" / "&#xHH;" character references; other '&' text is left alone.
std::u32string unescape_html(std::u32string_view text);

}  // namespace studio::ftfy
