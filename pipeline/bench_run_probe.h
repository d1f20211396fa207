// What `studio bench run --checkpoints` watches in its `studio run` child while it works: the
// child's memory, open file descriptors and threads from /proc, and the finished work items read
// incrementally from the run's journal shards (a partly written last line is not counted).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace studio {

// One look at a live process through /proc/PID.
struct ProcSample {
  int64_t rss_kib = 0;  // VmRSS
  int64_t hwm_kib = 0;  // VmHWM: the peak resident set so far
  int64_t threads = 0;  // Threads
  int64_t fds = 0;      // entries of /proc/PID/fd
};

// Reads /proc/PID/status and counts /proc/PID/fd. False when the process is gone or a zombie (no
// VmRSS line, or its fd folder unreadable): such a sample says nothing about the running process.
bool sample_process(pid_t pid, ProcSample* out);

// "2026-11-22T22:03:59.123Z" (the journal's `time`) as seconds since the Unix epoch; NaN when the
// text is not of that form.
double parse_iso8601_utc(const std::string& text);

// Counts the complete lines of every RUN_DIR/journal/*.jsonl, reading only what was appended since
// the last poll(). A line counts once its '\n' is there; the bytes after the last '\n' wait for
// the next poll. Each complete line is parsed: a JSON object with a "status" is a finished work
// item (done or failed); anything else is counted in bad_lines() and is not an item.
class JournalLineCounter {
 public:
  explicit JournalLineCounter(std::filesystem::path journal_dir);

  // Reads what was appended to the shard files (new files included) since the last call.
  void poll();

  int64_t items() const { return done_ + failed_; }  // finished work items (journal records)
  int64_t done() const { return done_; }
  int64_t failed() const { return failed_; }
  int64_t bad_lines() const { return bad_lines_; }
  // The time (seconds since the Unix epoch) at which the n-th (1-based) work item, in time order
  // over all shards, was journaled: its record's `time`, or when poll() first saw it if the record
  // has none. NaN when fewer than n items were seen.
  double item_time(int64_t n) const;

 private:
  struct Shard {
    uint64_t offset = 0;  // bytes consumed so far
    std::string partial;  // bytes after the last '\n' seen (an unfinished line)
  };
  void consume_line(const std::string& line, double seen_at);

  std::filesystem::path dir_;
  std::map<std::string, Shard> shards_;
  int64_t done_ = 0;
  int64_t failed_ = 0;
  int64_t bad_lines_ = 0;
  mutable std::vector<double> times_;  // one per item; sorted on demand
  mutable bool sorted_ = true;
};

}  // namespace studio
