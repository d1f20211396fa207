#include "text/instant_edit.h"

#include <torch/torch.h>

#include <regex>

#include "core/error.h"
#include "text/unicode.h"

namespace studio {
namespace {

const char* const kSpanHint =
    "spans are character ranges A:B of the text (0-based, end exclusive), sorted and not "
    "overlapping";

void require_utf8(std::string_view text, const char* what) {
  std::u32string decoded;
  size_t bad = 0;
  if (!unicode::decode_utf8(text, decoded, &bad))
    throw FormatError(std::string(what) + " is not valid UTF-8 (byte " + std::to_string(bad) + ")",
                      "", "give UTF-8 text");
}

bool is_boundary(std::string_view text, size_t at) {
  return at == 0 || at >= text.size() || (static_cast<unsigned char>(text[at]) & 0xC0) != 0x80;
}

void check_spans(const EditRequest& r, size_t index) {
  const std::string where = "edit " + std::to_string(index);
  if (r.spans.empty()) throw UsageError("no span to edit", where, kSpanHint);
  size_t prev_end = 0;
  for (size_t i = 0; i < r.spans.size(); ++i) {
    const TextSpan& s = r.spans[i];
    const std::string which = "span " + std::to_string(i) + " [" + std::to_string(s.begin) + ", " +
                              std::to_string(s.end) + ")";
    if (s.begin > s.end || s.end > r.text.size())
      throw UsageError(which + " is outside the text of " + std::to_string(r.text.size()) +
                           " bytes",
                       where, kSpanHint);
    if (i > 0 && s.begin < prev_end)
      throw UsageError(which + " overlaps or precedes the span before it", where, kSpanHint);
    if (!is_boundary(r.text, s.begin) || !is_boundary(r.text, s.end))
      throw UsageError(which + " cuts a UTF-8 character", where, kSpanHint);
    if (s.begin == s.end && s.tokens <= 0)
      throw UsageError(which + " is an insertion and needs a length in tokens (> 0)", where,
                       kSpanHint);
    prev_end = s.end;
  }
}

}  // namespace

TextSpan span_from_chars(std::string_view text, int64_t begin_char, int64_t end_char,
                         int64_t tokens) {
  std::u32string decoded;
  size_t bad = 0;
  if (!unicode::decode_utf8(text, decoded, &bad))
    throw FormatError("text is not valid UTF-8 (byte " + std::to_string(bad) + ")", "",
                      "give UTF-8 text");
  const int64_t n = int64_t(decoded.size());
  if (begin_char < 0 || end_char < begin_char || end_char > n)
    throw UsageError("span " + std::to_string(begin_char) + ":" + std::to_string(end_char) +
                         " is outside the text of " + std::to_string(n) + " characters",
                     "", kSpanHint);
  // Byte offset of each character.
  TextSpan s;
  s.tokens = tokens;
  size_t byte = 0;
  for (int64_t ch = 0; ch <= n; ++ch) {
    if (ch == begin_char) s.begin = byte;
    if (ch == end_char) s.end = byte;
    if (ch < n) {
      std::string one;
      unicode::append_utf8(one, decoded[size_t(ch)]);
      byte += one.size();
    }
  }
  return s;
}

std::vector<TextSpan> spans_from_regex(const std::string& text, const std::string& pattern,
                                       int64_t tokens) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw UsageError("invalid regular expression \"" + pattern + "\": " + e.what(), "",
                     "ECMAScript syntax, e.g. \"\\\\bcheap\\\\b\"");
  }
  std::vector<TextSpan> spans;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    if (it->length(0) == 0) continue;
    spans.push_back({size_t(it->position(0)), size_t(it->position(0) + it->length(0)), tokens});
  }
  if (spans.empty())
    throw UsageError("the regular expression \"" + pattern + "\" matches nothing in the text", "",
                     "check the pattern against the text");
  return spans;
}

EditBatchResult instant_edit(TextModel& model, const std::vector<EditRequest>& requests,
                             const LLaDASamplerOptions& options,
                             const TextStepCallback& on_step) {
  if (requests.empty()) throw UsageError("no edit requested");
  const BpeTokenizer& tok = model.tokenizer();
  const int64_t mask = model.mask_id();
  std::vector<std::vector<int64_t>> canvases;
  std::vector<size_t> answer_start;  // per row, index of the answer in the unpadded canvas
  // Per row and span: the number of masked tokens (to split the filled ids back).
  std::vector<std::vector<int64_t>> slot_sizes;
  for (size_t r = 0; r < requests.size(); ++r) {
    const EditRequest& req = requests[r];
    require_utf8(req.text, "the text to edit");
    require_utf8(req.instruction, "the instruction");
    check_spans(req, r);
    std::vector<int64_t> canvas = model.prompt_ids(req.instruction + "\n\n" + req.text);
    answer_start.push_back(canvas.size());
    std::vector<int64_t> sizes;
    size_t at = 0;
    auto append_text = [&](size_t a, size_t b) {
      if (b <= a) return;
      const auto ids = tok.encode(std::string_view(req.text).substr(a, b - a), false);
      canvas.insert(canvas.end(), ids.begin(), ids.end());
    };
    for (const TextSpan& s : req.spans) {
      append_text(at, s.begin);
      int64_t n = s.tokens;
      if (n < 0)
        n = std::max<int64_t>(
            1, int64_t(tok.encode(std::string_view(req.text).substr(s.begin, s.end - s.begin),
                                  false)
                           .size()));
      canvas.insert(canvas.end(), size_t(n), mask);
      sizes.push_back(n);
      at = s.end;
    }
    append_text(at, req.text.size());
    if (model.eot_id() >= 0) canvas.push_back(model.eot_id());
    canvases.push_back(std::move(canvas));
    slot_sizes.push_back(std::move(sizes));
  }

  LLaDASamplerOptions o = options;
  if (on_step) {
    o.on_step = [&](const LLaDAStepInfo& info) {
      std::vector<std::string> rows;
      const int64_t width = info.canvas->size(1);
      for (int64_t b = 0; b < info.canvas->size(0); ++b) {
        const size_t len = canvases[size_t(b)].size();
        const int64_t start = width - int64_t(len) + int64_t(answer_start[size_t(b)]);
        const at::Tensor row = (*info.canvas)[b].narrow(0, start, width - start).contiguous();
        const int64_t* d = row.data_ptr<int64_t>();
        rows.push_back(model.render(std::vector<int64_t>(d, d + row.numel()), "_"));
      }
      return on_step(info.step, rows);
    };
  }
  EditBatchResult out;
  out.sampling = llada_infill(model.model(), canvases, o);
  for (size_t r = 0; r < requests.size(); ++r) {
    const EditRequest& req = requests[r];
    const std::vector<int64_t>& filled = out.sampling.generated_ids[r];
    EditResult e;
    size_t at = 0, used = 0;
    for (size_t i = 0; i < req.spans.size(); ++i) {
      const TextSpan& s = req.spans[i];
      const size_t n = size_t(slot_sizes[r][i]);
      const std::vector<int64_t> ids(filled.begin() + long(used), filled.begin() + long(used + n));
      used += n;
      std::string piece = model.decode_generated(ids);
      // Keep the spacing of the original span's edges (the model's slot is trimmed).
      const std::string_view orig = std::string_view(req.text).substr(s.begin, s.end - s.begin);
      if (!piece.empty() && !orig.empty() && orig.front() == ' ') piece.insert(0, " ");
      if (!piece.empty() && !orig.empty() && orig.back() == ' ') piece += " ";
      if (s.begin == s.end && !piece.empty()) {
        if (s.begin > 0 && req.text[s.begin - 1] != ' ') piece.insert(0, " ");
        if (s.end < req.text.size() && req.text[s.end] != ' ') piece += " ";
      }
      e.text.append(req.text, at, s.begin - at);
      e.text += piece;
      e.replacements.push_back(piece);
      at = s.end;
    }
    e.text.append(req.text, at, std::string::npos);
    out.edits.push_back(std::move(e));
  }
  return out;
}

}  // namespace studio
