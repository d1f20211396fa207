// Instant Edit: rewrite chosen spans of an existing text with the text diffusion LM. The spans
// are re-masked (optionally with a new length) and denoised under an instruction while every
// byte outside them is kept exactly: the result is assembled from the original bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/text_model.h"

namespace studio {

// A byte range [begin, end) of the text to rewrite; begin == end inserts there. tokens: the
// length of the masked slot in tokens; -1 = as many as the original span has (an insertion
// needs tokens > 0). The model may fill a slot with end-of-text tokens, which are dropped, so a
// slot is an upper bound on the new length.
struct TextSpan {
  size_t begin = 0;
  size_t end = 0;
  int64_t tokens = -1;
};

// Character (code point) offsets [begin_char, end_char) -> a byte span. UsageError when outside
// the text.
TextSpan span_from_chars(std::string_view text, int64_t begin_char, int64_t end_char,
                         int64_t tokens = -1);
// Every match of an ECMAScript regular expression (std::regex, on bytes). UsageError for an
// invalid pattern or no match.
std::vector<TextSpan> spans_from_regex(const std::string& text, const std::string& pattern,
                                       int64_t tokens = -1);

struct EditRequest {
  std::string text;              // UTF-8
  std::vector<TextSpan> spans;   // sorted, not overlapping, on character boundaries
  std::string instruction;       // e.g. "make it sound warmer"
};

struct EditResult {
  std::string text;                       // the edited text
  std::vector<std::string> replacements;  // the new text of each span
};

struct EditBatchResult {
  std::vector<EditResult> edits;
  LLaDASamplerResult sampling;  // the batch's NFE, TTFT, total time and the filled ids
};

// Edits every request in one batch (llada_infill). The model sees the instruction and the
// original text as the user turn and the answer canvas = the text with each span replaced by
// its masked slot; only the slots are generated. UsageError for spans out of order, overlapping,
// outside the text or cutting a UTF-8 character, for an insertion without tokens, and for no
// spans; FormatError for text that is not UTF-8.
EditBatchResult instant_edit(TextModel& model, const std::vector<EditRequest>& requests,
                             const LLaDASamplerOptions& options,
                             const TextStepCallback& on_step = nullptr);

}  // namespace studio
