// A terminal progress bar (stderr, redrawn in place) for long CLI runs; silent when stderr is not
// a terminal, so logs and CI output stay clean.
#pragma once

#include <chrono>
#include <string>

namespace studio {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  // Marks `done` of `total` complete; `detail` is shown after the counts (e.g. "t=501").
  void update(int done, int total, const std::string& detail = "");
  void finish();
  static bool enabled();  // stderr is a terminal

 private:
  std::string label_;
  bool active_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace studio
