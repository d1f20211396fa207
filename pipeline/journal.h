// The run journal: an append-only JSON-lines record of finished (and failed) work items with each
// output's size and SHA-256, so `studio run --resume` after a crash re-does exactly what is not
// safely on disk. One file per shard (RUN_DIR/journal/<shard>.jsonl); formats in docs/kpi.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace studio {

// One journal line (version 1).
struct JournalRecord {
  std::string work_id;
  std::string item;
  std::string kind;  // caption, visual, ...
  std::string channel;
  std::string variant;
  int64_t seed = 0;
  std::string status = "done";  // "done" | "failed"
  std::string output;           // relative to the run folder; "" when failed
  std::string sha256;           // of the output file (lowercase hex); "" when failed
  uint64_t bytes = 0;           // the output file's size
  std::string stage;            // failed: the stage that failed; done: the last stage ("write")
  std::string error;            // failed: the reason
  int64_t attempt = 1;          // 1 for the first try, 2 for the first retry, ...
  std::string time;             // ISO 8601 UTC; append() fills it in when empty
  // Review revisions (`studio run --revise`): revision n > 0 re-made the asset `base_work_id` after
  // a reviewer rejected it or asked for a revision. Written only when revision > 0.
  int64_t revision = 0;
  std::string base_work_id;

  nlohmann::json to_json() const;
  // FormatError naming the bad field when `j` is not a version-1 record.
  static JournalRecord from_json(const nlohmann::json& j);
};

// "2026-11-22T22:03:59.123Z" for the current time.
std::string iso8601_utc_now();
// Seconds since the Unix epoch (fractional), the ledger's clock.
double unix_time_now();

// --- JSON-lines files shared by the journal and the KPI ledger ---

// The lines of a JSON-lines file, each parsed. A torn last line (power loss mid-write: no final
// '\n', or not parsable JSON) is dropped with a warning, and cut off the file when `repair`. Any
// other bad line is a FormatError naming the file and line number. Blank lines are skipped. A
// missing file reads as no lines.
struct JsonLine {
  std::size_t line = 0;  // 1-based line number in the file
  nlohmann::json value;
};
std::vector<JsonLine> read_jsonl(const std::filesystem::path& file, bool repair,
                                 std::vector<std::string>* warnings);
// FormatError for a line that parsed but is not a valid record: names file:line, with the hint.
[[noreturn]] void throw_bad_jsonl_line(const std::filesystem::path& file, std::size_t line,
                                       const std::string& what);

// An O_APPEND file written one whole line per write() (so lines from threads, and from processes
// sharing the file, never interleave). Thread-safe.
class AppendFile {
 public:
  // Creates the file and its folder when missing. Does not read or repair it.
  explicit AppendFile(std::filesystem::path file);
  ~AppendFile();  // fsyncs and closes
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Appends `line` + '\n'; fsyncs when `sync`. IoError on failure.
  void append_line(const std::string& line, bool sync);
  void sync();
  void close();
  const std::filesystem::path& path() const { return file_; }

 private:
  std::filesystem::path file_;
  std::mutex mutex_;
  int fd_ = -1;
};

// --- the journal ---

class Journal {
 public:
  // Opens (creating when missing) RUN_DIR/journal/<shard>.jsonl and load()s it: a torn last line
  // is cut off the file (see warnings()); a corrupt line before it is a FormatError.
  Journal(std::filesystem::path run_dir, std::string shard);

  // (Re)reads the file, repairing a torn last line; returns the warnings (also kept in warnings()).
  std::vector<std::string> load();
  // Appends one record (time filled in when empty) with a single write() and an fsync. Thread-safe.
  void append(JournalRecord record);

  // The last record of `work_id` (last wins), if any.
  std::optional<JournalRecord> last(const std::string& work_id) const;
  // True when the last record of `work_id` is "done" (failed ones are retried on resume).
  bool done(const std::string& work_id) const;
  // done() and its output still on disk with the recorded size and SHA-256 (verify_output); what
  // is wrong goes to *why. This is what resume checks before skipping a work item.
  bool done_and_verified(const std::string& work_id, std::string* why = nullptr) const;
  // Attempts recorded so far for `work_id` (the largest `attempt`, 0 when none).
  int64_t attempts(const std::string& work_id) const;

  std::vector<JournalRecord> records() const;  // in file order
  const std::vector<std::string>& warnings() const { return warnings_; }
  const std::filesystem::path& file() const { return file_; }
  const std::filesystem::path& run_dir() const { return run_dir_; }
  const std::string& shard() const { return shard_; }

 private:
  std::filesystem::path run_dir_;
  std::string shard_;
  std::filesystem::path file_;
  mutable std::mutex mutex_;
  std::vector<JournalRecord> records_;
  std::map<std::string, std::size_t> last_;  // work_id -> index in records_
  std::vector<std::string> warnings_;
  std::unique_ptr<AppendFile> out_;
};

// True when record.output exists under run_dir with record.bytes bytes and SHA-256 record.sha256;
// otherwise false with the reason in *why. A record that is not "done" never verifies.
bool verify_output(const std::filesystem::path& run_dir, const JournalRecord& record,
                   std::string* why = nullptr);
// Fills record.bytes and record.sha256 from the file run_dir/record.output (IoError if unreadable).
void hash_output(const std::filesystem::path& run_dir, JournalRecord& record);

// Every record of every RUN_DIR/journal/*.jsonl (files in name order, lines in file order), read
// without repairing (torn last lines dropped, with warnings).
std::vector<JournalRecord> read_all_journals(const std::filesystem::path& run_dir,
                                             std::vector<std::string>* warnings = nullptr);

}  // namespace studio
