#include "pipeline/bench_run_probe.h"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

namespace studio {

namespace fs = std::filesystem;

bool sample_process(pid_t pid, ProcSample* out) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream f(base + "/status");
  if (!f) return false;
  ProcSample s;
  bool have_rss = false;
  std::string line;
  auto value = [&line](std::size_t skip) { return std::stoll(line.substr(skip)); };
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      s.rss_kib = value(6);
      have_rss = true;
    } else if (line.rfind("VmHWM:", 0) == 0) {
      s.hwm_kib = value(6);
    } else if (line.rfind("Threads:", 0) == 0) {
      s.threads = value(8);
    }
  }
  f.close();                    // not to count itself when the process is this one
  if (!have_rss) return false;  // a zombie (or a kernel thread): no memory to speak of
  DIR* d = opendir((base + "/fd").c_str());
  if (!d) return false;
  int64_t n = 0;
  while (const dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  s.fds = n;
  *out = s;
  return true;
}

double parse_iso8601_utc(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  // YYYY-MM-DDTHH:MM:SS, then an optional .mmm, then Z.
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return std::numeric_limits<double>::quiet_NaN();
  std::size_t at = static_cast<std::size_t>(consumed);
  double frac = 0;
  if (at < text.size() && text[at] == '.') {
    double scale = 0.1;
    ++at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      frac += scale * (text[at] - '0');
      scale /= 10;
      ++at;
    }
  }
  if (at != text.size() - 1 || text[at] != 'Z') return std::numeric_limits<double>::quiet_NaN();
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t secs = timegm(&tm);
  if (secs == static_cast<std::time_t>(-1)) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(secs) + frac;
}

JournalLineCounter::JournalLineCounter(fs::path journal_dir) : dir_(std::move(journal_dir)) {}

void JournalLineCounter::poll() {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.path().extension() == ".jsonl") files.push_back(e.path());
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& file : files) {
    Shard& shard = shards_[file.filename().string()];
    std::ifstream in(file, std::ios::binary);
    if (!in) continue;
    in.seekg(0, std::ios::end);
    const auto size = static_cast<uint64_t>(in.tellg());
    if (size < shard.offset) {  // cut short (a torn line repaired): read on from its new end
      shard.offset = size;
      shard.partial.clear();
      continue;
    }
    if (size == shard.offset) continue;
    in.seekg(static_cast<std::streamoff>(shard.offset));
    std::string chunk(size - shard.offset, '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    chunk.resize(static_cast<std::size_t>(in.gcount()));
    shard.offset += chunk.size();
    std::size_t at = 0;
    for (;;) {
      const std::size_t nl = chunk.find('\n', at);
      if (nl == std::string::npos) break;
      shard.partial.append(chunk, at, nl - at);
      consume_line(shard.partial, now);
      shard.partial.clear();
      at = nl + 1;
    }
    shard.partial.append(chunk, at, std::string::npos);  // an unfinished line: wait for its '\n'
  }
}

void JournalLineCounter::consume_line(const std::string& line, double seen_at) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return;  // blank
  const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("status") || !j["status"].is_string()) {
    ++bad_lines_;
    return;
  }
  if (j["status"] == "done")
    ++done_;
  else
    ++failed_;
  double t = seen_at;
  if (j.contains("time") && j["time"].is_string()) {
    const double parsed = parse_iso8601_utc(j["time"].get<std::string>());
    if (!std::isnan(parsed)) t = parsed;
  }
  if (!times_.empty() && t < times_.back()) sorted_ = false;
  times_.push_back(t);
}

double JournalLineCounter::item_time(int64_t n) const {
  if (n < 1 || n > static_cast<int64_t>(times_.size()))
    return std::numeric_limits<double>::quiet_NaN();
  if (!sorted_) {
    std::sort(times_.begin(), times_.end());
    sorted_ = true;
  }
  return times_[static_cast<std::size_t>(n - 1)];
}

}  // namespace studio
