#include "pipeline/run_progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pipeline/plan.h"

namespace studio {

RunProgress::RunProgress(const std::string& mode, int64_t total, int64_t already_done)
    : total_(total), already_(already_done), start_(std::chrono::steady_clock::now()) {
  if (mode == "auto")
    mode_ = isatty(STDERR_FILENO) ? Mode::kTty : Mode::kNone;
  else if (mode == "tty")
    mode_ = Mode::kTty;
  else if (mode == "json")
    mode_ = Mode::kJson;
  else if (mode == "none")
    mode_ = Mode::kNone;
  else
    throw UsageError("invalid --progress '" + mode + "'", "--progress", "use auto, json or none");
  for (const char* s : {"decode", "text", "image", "write"}) stages_[s] = 0;
  if (mode_ == Mode::kJson)
    std::cout << nlohmann::json{{"event", "start"}, {"total", total_}, {"already_done", already_}}
                     .dump()
              << std::endl;
}

RunProgress::~RunProgress() { finish(); }

double RunProgress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void RunProgress::stage_done(const std::string& stage, bool) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++stages_[stage];
  if (mode_ == Mode::kTty) draw_locked();
}

void RunProgress::item_done(const WorkItem& item, bool ok) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++done_;
  if (!ok) ++failed_;
  const double t = elapsed();
  const double eta = done_ > 0 ? t / double(done_) * double(total_ - done_) : 0.0;
  if (mode_ == Mode::kJson) {
    std::cout << nlohmann::json{{"event", "item"},     {"work_id", item.id},
                                {"item", item.item_id}, {"kind", item.kind},
                                {"channel", item.channel}, {"variant", item.variant},
                                {"status", ok ? "done" : "failed"}, {"done", done_},
                                {"failed", failed_},   {"total", total_},
                                {"elapsed_s", t},      {"eta_s", eta}}
                     .dump()
              << std::endl;
  } else if (mode_ == Mode::kTty) {
    draw_locked();
  }
}

void RunProgress::message(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (mode_ == Mode::kJson) {
    std::cout << nlohmann::json{{"event", "message"}, {"text", line}}.dump() << std::endl;
    return;
  }
  if (mode_ == Mode::kTty && lines_ > 0) std::cerr << "\033[" << lines_ << "F\033[J";
  lines_ = 0;
  std::cerr << line << "\n";
  if (mode_ == Mode::kTty) draw_locked();
}

void RunProgress::draw_locked() {
  const auto now = std::chrono::steady_clock::now();
  if (lines_ > 0 && done_ < total_ &&
      now - last_draw_ < std::chrono::milliseconds(100))
    return;
  last_draw_ = now;
  const double t = elapsed();
  std::string out;
  auto bar = [&](const std::string& label, int64_t n) {
    const int width = 30;
    const int fill = total_ > 0 ? int(double(width) * double(n) / double(total_)) : width;
    out += fmt::format("{:<8} [{}{}] {}/{}", label, std::string(size_t(fill), '#'),
                       std::string(size_t(width - fill), '.'), n, total_);
    out += "\n";
  };
  for (const char* s : {"decode", "text", "image", "write"}) bar(s, stages_[s]);
  const double eta = done_ > 0 ? t / double(done_) * double(total_ - done_) : 0.0;
  bar("done", done_);
  out += fmt::format("{} failed, {} already done before, {:.0f} s elapsed, ETA {:.0f} s\n",
                     failed_, already_, t, eta);
  if (lines_ > 0) std::cerr << "\033[" << lines_ << "F\033[J";
  std::cerr << out << std::flush;
  lines_ = 6;
}

void RunProgress::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (mode_ == Mode::kJson)
    std::cout << nlohmann::json{{"event", "finish"}, {"done", done_}, {"failed", failed_},
                                {"total", total_}, {"elapsed_s", elapsed()}}
                     .dump()
              << std::endl;
  if (mode_ == Mode::kTty) {
    lines_ = lines_ > 0 ? lines_ : 0;
    last_draw_ = {};
    if (total_ > 0) draw_locked();
  }
}

}  // namespace studio
