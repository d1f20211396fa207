#include "pipeline/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/hash.h"

namespace studio {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kTornHint =
    "only the last line of a journal or ledger can be torn by a crash; a bad line before it means "
    "the file was edited or damaged: fix or delete that line (its work is re-done on --resume)";

std::string errno_text() { return std::strerror(errno); }

std::string get_string(const json& j, const char* key, bool required) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw FormatError(fmt::format("missing \"{}\"", key));
    return {};
  }
  if (!it->is_string()) throw FormatError(fmt::format("\"{}\" is not a string", key));
  return it->get<std::string>();
}

int64_t get_int(const json& j, const char* key, int64_t fallback) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) throw FormatError(fmt::format("\"{}\" is not an integer", key));
  return it->get<int64_t>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

json JournalRecord::to_json() const {
  json j{{"v", 1},           {"work_id", work_id}, {"item", item},
         {"kind", kind},     {"channel", channel}, {"variant", variant},
         {"seed", seed},     {"status", status},   {"output", output},
         {"sha256", sha256}, {"bytes", bytes},     {"stage", stage},
         {"error", error},   {"attempt", attempt}, {"time", time}};
  if (revision > 0) {
    j["revision"] = revision;
    j["base_work_id"] = base_work_id;
  }
  return j;
}

JournalRecord JournalRecord::from_json(const json& j) {
  if (!j.is_object()) throw FormatError("a journal record must be a JSON object");
  const int64_t v = get_int(j, "v", -1);
  if (v != 1)
    throw FormatError(fmt::format("unsupported journal record version {} (this studio reads 1)",
                                  j.contains("v") ? j["v"].dump() : std::string("(missing)")));
  JournalRecord r;
  r.work_id = get_string(j, "work_id", true);
  if (r.work_id.empty()) throw FormatError("empty \"work_id\"");
  r.item = get_string(j, "item", false);
  r.kind = get_string(j, "kind", false);
  r.channel = get_string(j, "channel", false);
  r.variant = get_string(j, "variant", false);
  r.seed = get_int(j, "seed", 0);
  r.status = get_string(j, "status", true);
  if (r.status != "done" && r.status != "failed")
    throw FormatError("\"status\" must be \"done\" or \"failed\", found \"" + r.status + "\"");
  r.output = get_string(j, "output", false);
  r.sha256 = get_string(j, "sha256", false);
  const int64_t bytes = get_int(j, "bytes", 0);
  if (bytes < 0) throw FormatError("negative \"bytes\"");
  r.bytes = static_cast<uint64_t>(bytes);
  r.stage = get_string(j, "stage", false);
  r.error = get_string(j, "error", false);
  r.attempt = get_int(j, "attempt", 1);
  r.time = get_string(j, "time", false);
  r.revision = get_int(j, "revision", 0);
  if (r.revision < 0) throw FormatError("negative \"revision\"");
  r.base_work_id = get_string(j, "base_work_id", false);
  if (r.revision > 0 && r.base_work_id.empty())
    throw FormatError("a revision (\"revision\" > 0) needs its \"base_work_id\"");
  return r;
}

std::string iso8601_utc_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------------------------------------

void throw_bad_jsonl_line(const fs::path& file, std::size_t line, const std::string& what) {
  throw FormatError(fmt::format("line {} is not a valid record: {}", line, what),
                    fmt::format("{}:{}", file.string(), line), kTornHint);
}

std::vector<JsonLine> read_jsonl(const fs::path& file, bool repair,
                                 std::vector<std::string>* warnings) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return {};
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError("cannot open the file", file.string(), "check its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();

  struct Raw {
    std::size_t line, begin, end;  // [begin, end) without the '\n'
    bool terminated;
  };
  std::vector<Raw> raws;
  std::size_t pos = 0, line = 0;
  while (pos < text.size()) {
    ++line;
    const std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      raws.push_back({line, pos, text.size(), false});
      break;
    }
    raws.push_back({line, pos, nl, true});
    pos = nl + 1;
  }
  auto blank = [&](const Raw& r) {
    for (std::size_t i = r.begin; i < r.end; ++i)
      if (!std::isspace(static_cast<unsigned char>(text[i]))) return false;
    return true;
  };
  // The last line with content: the only one that may be torn.
  std::ptrdiff_t last = -1;
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(raws.size()) - 1; i >= 0; --i)
    if (!blank(raws[static_cast<std::size_t>(i)])) {
      last = i;
      break;
    }

  std::vector<JsonLine> out;
  for (std::ptrdiff_t i = 0; i <= last; ++i) {
    const Raw& r = raws[static_cast<std::size_t>(i)];
    if (blank(r)) continue;
    const std::string s = text.substr(r.begin, r.end - r.begin);
    json value = json::parse(s, nullptr, /*allow_exceptions=*/false);
    const bool bad = value.is_discarded();
    if (i == last && (bad || !r.terminated)) {
      const std::string msg = fmt::format(
          "{}:{}: dropped a torn last line ({} bytes{}), left by a crash or power loss mid-write{}",
          file.string(), r.line, r.end - r.begin,
          r.terminated ? ", not valid JSON" : ", no newline",
          repair ? "; cut it off the file" : "");
      if (warnings) warnings->push_back(msg);
      if (repair) {
        const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(r.begin)) != 0 || ::fsync(fd) != 0) {
          const std::string err = errno_text();
          if (fd >= 0) ::close(fd);
          throw IoError("cannot cut a torn last line off the file: " + err, file.string(),
                        "check that the file is writable");
        }
        ::close(fd);
      }
      break;
    }
    if (bad) {
      // Say what the parser says.
      std::string why;
      try {
        const json again = json::parse(s);
        why = "unexpected";
      } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
        why = e.what();
      }
      throw FormatError(fmt::format("line {} is not valid JSON ({})", r.line, why),
                        fmt::format("{}:{}", file.string(), r.line), kTornHint);
    }
    out.push_back({r.line, std::move(value)});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

AppendFile::AppendFile(fs::path file) : file_(std::move(file)) {
  std::error_code ec;
  if (file_.has_parent_path()) fs::create_directories(file_.parent_path(), ec);
  if (ec)
    throw IoError("cannot create the folder: " + ec.message(), file_.parent_path().string(),
                  "check the run folder's permissions");
  fd_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw_io_errno(errno, "cannot open for appending", file_.string(),
                   "check the run folder's permissions and free space");
}

AppendFile::~AppendFile() {
  try {
    close();
  } catch (...) {
  }
}

void AppendFile::append_line(const std::string& line, bool sync) {
  std::string data = line;
  data.push_back('\n');
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd_ < 0) throw UsageError("append to a closed file", file_.string());
  // Where the line starts: a write that fails part-way (disk full, file-size limit) is cut off
  // again, so a later append never follows half a line and the file stays readable.
  struct stat st {};
  const off_t begin = ::fstat(fd_, &st) == 0 ? st.st_size : -1;
  auto fail = [&](const char* what) {
    const int err = errno;
    if (begin >= 0 && ::ftruncate(fd_, begin) != 0) {
      // Left torn; the next load drops a torn last line (and says so).
    }
    throw_io_errno(
        err, what, file_.string(),
        is_storage_errno(err) ? std::string() : "a resumed run re-does what was not recorded");
  };
  std::size_t done = 0;
  while (done < data.size()) {
    // One write() for the whole line; a short write (disk full, signal) continues where it stopped.
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot append");
    }
    done += static_cast<std::size_t>(n);
  }
  if (sync && ::fsync(fd_) != 0) fail("fsync failed");
}

void AppendFile::sync() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd_ >= 0 && ::fsync(fd_) != 0)
    throw IoError("fsync failed: " + errno_text(), file_.string(), "check the disk");
}

void AppendFile::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd_ < 0) return;
  const int rc = ::fsync(fd_);
  ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw IoError("fsync failed: " + errno_text(), file_.string(), "check the disk");
}

// ---------------------------------------------------------------------------------------------

Journal::Journal(fs::path run_dir, std::string shard)
    : run_dir_(std::move(run_dir)),
      shard_(std::move(shard)),
      file_(run_dir_ / "journal" / (shard_ + ".jsonl")) {
  if (shard_.empty() || shard_.find('/') != std::string::npos || shard_ == "." || shard_ == "..")
    throw UsageError("invalid journal shard name \"" + shard_ + "\"", run_dir_.string(),
                     "use a name like 0-of-1");
  out_ = std::make_unique<AppendFile>(file_);  // creates folder and file
  load();
}

std::vector<std::string> Journal::load() {
  std::vector<std::string> warnings;
  const auto lines = read_jsonl(file_, /*repair=*/true, &warnings);
  std::vector<JournalRecord> records;
  std::map<std::string, std::size_t> last;
  for (const auto& l : lines) {
    try {
      records.push_back(JournalRecord::from_json(l.value));
    } catch (const FormatError& e) {
      throw_bad_jsonl_line(file_, l.line, e.what_failed());
    }
    last[records.back().work_id] = records.size() - 1;
  }
  for (const auto& w : warnings) std::cerr << "studio: warning: " << w << "\n";
  std::lock_guard<std::mutex> lock(mutex_);
  records_ = std::move(records);
  last_ = std::move(last);
  warnings_ = warnings;
  return warnings;
}

void Journal::append(JournalRecord record) {
  if (record.work_id.empty()) throw UsageError("journal record without a work_id", file_.string());
  if (record.status != "done" && record.status != "failed")
    throw UsageError("journal record status must be done or failed, not \"" + record.status + "\"",
                     file_.string());
  if (record.time.empty()) record.time = iso8601_utc_now();
  const std::string line = record.to_json().dump(-1, ' ', false, json::error_handler_t::replace);
  // The file's own mutex orders the writes; ours keeps the index in the same order.
  std::lock_guard<std::mutex> lock(mutex_);
  out_->append_line(line, /*sync=*/true);
  records_.push_back(std::move(record));
  last_[records_.back().work_id] = records_.size() - 1;
}

std::optional<JournalRecord> Journal::last(const std::string& work_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = last_.find(work_id);
  if (it == last_.end()) return std::nullopt;
  return records_[it->second];
}

bool Journal::done(const std::string& work_id) const {
  const auto r = last(work_id);
  return r && r->status == "done";
}

bool Journal::done_and_verified(const std::string& work_id, std::string* why) const {
  const auto r = last(work_id);
  if (!r) {
    if (why) *why = "not in the journal";
    return false;
  }
  return verify_output(run_dir_, *r, why);
}

int64_t Journal::attempts(const std::string& work_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const auto& r : records_)
    if (r.work_id == work_id) n = std::max(n, r.attempt);
  return n;
}

std::vector<JournalRecord> Journal::records() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return records_;
}

// ---------------------------------------------------------------------------------------------

bool verify_output(const fs::path& run_dir, const JournalRecord& record, std::string* why) {
  auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return false;
  };
  if (record.status != "done") return fail("its last record is " + record.status);
  if (record.output.empty()) return fail("the record names no output");
  const fs::path p = run_dir / record.output;
  std::error_code ec;
  const auto st = fs::status(p, ec);
  if (ec || !fs::is_regular_file(st)) return fail(p.string() + " is missing");
  const auto size = fs::file_size(p, ec);
  if (ec) return fail(p.string() + " is unreadable: " + ec.message());
  if (size != record.bytes)
    return fail(
        fmt::format("{} has {} bytes, the journal recorded {}", p.string(), size, record.bytes));
  std::string hash;
  try {
    hash = sha256_file_hex(p);
  } catch (const Error& e) {
    return fail(p.string() + " is unreadable: " + e.what_failed());
  }
  if (hash != record.sha256)
    return fail(fmt::format("{} was changed (SHA-256 {}, the journal recorded {})", p.string(),
                            hash.substr(0, 12), record.sha256.substr(0, 12)));
  if (why) why->clear();
  return true;
}

void hash_output(const fs::path& run_dir, JournalRecord& record) {
  const fs::path p = run_dir / record.output;
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) throw IoError("cannot read the output: " + ec.message(), p.string());
  record.bytes = size;
  record.sha256 = sha256_file_hex(p);
}

std::vector<JournalRecord> read_all_journals(const fs::path& run_dir,
                                             std::vector<std::string>* warnings) {
  std::vector<fs::path> files;
  std::error_code ec;
  const fs::path dir = run_dir / "journal";
  if (fs::is_directory(dir, ec))
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".jsonl") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<JournalRecord> out;
  for (const auto& f : files)
    for (const auto& l : read_jsonl(f, /*repair=*/false, warnings)) {
      try {
        out.push_back(JournalRecord::from_json(l.value));
      } catch (const FormatError& e) {
        throw_bad_jsonl_line(f, l.line, e.what_failed());
      }
    }
  return out;
}

}  // namespace studio
