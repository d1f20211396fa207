// Progress of `studio run`: one bar per stage on a terminal (items done / total, ETA), or one JSON
// event per line on stdout (--progress json) for schedulers and dashboards, or nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace studio {

struct WorkItem;

class RunProgress {
 public:
  // mode: "auto" (bars when stderr is a terminal, else none), "tty", "json", "none".
  RunProgress(const std::string& mode, int64_t total, int64_t already_done);
  ~RunProgress();

  void stage_done(const std::string& stage, bool failed);  // thread-safe
  void item_done(const WorkItem& item, bool ok);           // the journal recorded it
  void message(const std::string& line);                   // a line above the bars
  void finish();

 private:
  void draw_locked();
  double elapsed() const;

  enum class Mode { kNone, kTty, kJson } mode_;
  std::mutex mutex_;
  int64_t total_, already_;
  int64_t done_ = 0, failed_ = 0;
  std::map<std::string, int64_t> stages_;  // stage -> items through it
  int lines_ = 0;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace studio
