// `studio review RUN_DIR`: a local web page (cpp-httplib, loopback by default, a token on every
// request) to accept, reject or send back each asset of a run; verdicts go to RUN_DIR/review.jsonl.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace studio {

struct ReviewServerOptions {
  std::string host = "127.0.0.1";  // anything but loopback makes the page reachable from others
  int port = 0;                    // 0: a free port picked by the system
  std::string token;               // empty: 32 random hex characters from /dev/urandom
  std::string reviewer;            // written into each review line
};

// Serves the review page of one run folder (routes and formats: docs/review.md):
//   GET  /             the page (embedded in the binary; no external resources)
//   GET  /api/run      the run's assets grouped by item and channel, revisions, verdicts, KPIs
//   GET  /files/PATH   a file of the run folder (confined to it: no "..", no symlinks out)
//   POST /api/review   {work_id, revision, verdict, reason, note, seconds} -> one review.jsonl line
// Every request needs the token (query `token=` or header `X-Studio-Token`).
class ReviewServer {
 public:
  // UsageError when the token is not 16..128 characters of [A-Za-z0-9_-].
  explicit ReviewServer(std::filesystem::path run_dir, ReviewServerOptions options = {});
  ~ReviewServer();  // stop()s
  ReviewServer(const ReviewServer&) = delete;
  ReviewServer& operator=(const ReviewServer&) = delete;

  // Binds and serves on a background thread; returns the bound port. IoError when it cannot bind.
  int start();
  void stop();

  int port() const;
  const std::string& token() const;
  const std::filesystem::path& run_dir() const;
  // http://HOST:PORT/?token=TOKEN (an IPv6 host in brackets).
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for 127.0.0.1 (any 127/8 address), ::1 and localhost.
bool is_loopback_host(const std::string& host);

// 32 random lowercase hex characters from /dev/urandom (IoError when it cannot be read).
std::string random_review_token();

// The file named by `relative` (a request path, already %-decoded) inside the run folder `root`
// (canonical), or nullopt with the reason in *why: empty, NUL, backslash, absolute, a ".."
// component, missing, not a regular file, or resolving (through symlinks) outside `root`.
std::optional<std::filesystem::path> resolve_run_file(const std::filesystem::path& root,
                                                      const std::string& relative,
                                                      std::string* why = nullptr);

// What GET /api/run returns for a run folder: run id, job, revise command, the assets grouped by
// item and channel (each with its revisions, latest output, caption rules, previews, KPIs and
// current verdict), failed work items, headline KPIs and warnings.
nlohmann::json review_run_state(const std::filesystem::path& run_dir);

}  // namespace studio
