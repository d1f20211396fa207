#include "pipeline/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace studio {

bool ProgressBar::enabled() { return ::isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      active_(enabled()),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(int done, int total, const std::string& detail) {
  if (!active_ || total <= 0) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int width = 30;
  const int filled = done * width / total;
  const double per = done > 0 ? elapsed / done : 0.0;
  const double eta = per * (total - done);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %d/%d %s %.2f s/it, ETA %.0f s   ", label_.c_str(), bar.c_str(),
               done, total, detail.c_str(), per, eta);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (active_ && !finished_) {
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }
  finished_ = true;
}

}  // namespace studio
