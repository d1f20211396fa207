// Shows a text canvas denoising step by step: redrawn in place on a terminal, one line per step
// otherwise (so `--stream` output can be logged or piped).
#pragma once

#include <string>
#include <vector>

namespace studio {

class CanvasStream {
 public:
  CanvasStream();
  ~CanvasStream();
  // Draws step `step` of `label` (rows: one text per batch row; masks shown as '_').
  void show(const std::string& label, long step, const std::vector<std::string>& rows);
  void finish();  // leaves the last canvas on screen

 private:
  bool tty_;
  int width_ = 80;
  int lines_ = 0;  // terminal lines drawn last time
};

}  // namespace studio
