#include "pipeline/text_stream.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <iostream>

#include "text/unicode.h"

namespace studio {

CanvasStream::CanvasStream() : tty_(isatty(STDERR_FILENO) != 0) {
  winsize ws{};
  if (tty_ && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width_ = ws.ws_col;
}

CanvasStream::~CanvasStream() { finish(); }

void CanvasStream::show(const std::string& label, long step, const std::vector<std::string>& rows) {
  if (!tty_) {
    for (size_t r = 0; r < rows.size(); ++r) {
      std::string flat = rows[r];
      for (char& c : flat)
        if (c == '\n' || c == '\r') c = ' ';
      std::cerr << label << " step " << step;
      if (rows.size() > 1) std::cerr << " row " << r;
      std::cerr << ": " << flat << "\n";
    }
    return;
  }
  std::string frame = "\033[1m" + label + " step " + std::to_string(step) + "\033[0m\n";
  int lines = 1;
  for (size_t r = 0; r < rows.size(); ++r) {
    const std::string text = (rows.size() > 1 ? "[" + std::to_string(r) + "] " : "") + rows[r];
    frame += text + "\n";
    // Terminal lines taken: each text line wraps at the width.
    size_t start = 0;
    while (start <= text.size()) {
      const size_t nl = text.find('\n', start);
      const std::string_view line =
          std::string_view(text).substr(start, nl == std::string::npos ? nl : nl - start);
      const long chars = long(unicode::decode_utf8_lossy(line).size());
      lines += int(chars == 0 ? 1 : (chars + width_ - 1) / width_);
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  if (lines_ > 0) std::cerr << "\033[" << lines_ << "F\033[J";  // back to the frame's first line
  std::cerr << frame << std::flush;
  lines_ = lines;
}

void CanvasStream::finish() { lines_ = 0; }

}  // namespace studio
