// `studio review RUN_DIR [--port N] [--host H] [--token T] [--reviewer NAME]`: serves the review
// page of a run folder (pipeline/review_server.h) until SIGINT/SIGTERM. Keys and formats:
// docs/review.md.
#include <signal.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "core/error.h"
#include "pipeline/commands.h"
#include "pipeline/review_server.h"

namespace studio {

namespace {

struct ReviewOptions {
  std::string run_dir;
  ReviewServerOptions server;
};

int run_review(const ReviewOptions& o) {
  namespace fs = std::filesystem;
  const fs::path dir = o.run_dir;
  if (!fs::is_directory(dir))
    throw IoError("the run folder does not exist", o.run_dir,
                  "pass the output folder of `studio run` (the job's \"output\")");
  if (!fs::is_directory(dir / "journal") && !fs::exists(dir / "run.json"))
    throw UsageError("not a run folder: it has neither journal/ nor run.json", o.run_dir,
                     "pass the output folder of `studio run` (the job's \"output\")");
  if (!is_loopback_host(o.server.host))
    std::cerr << "studio review: warning: --host " << o.server.host
              << " makes the page reachable from other machines (the token still protects it)\n";

  // SIGINT/SIGTERM are blocked before the server's threads start (they inherit the mask) and
  // taken here with sigwait, so the server stops cleanly on either.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);

  ReviewServer server(dir, o.server);
  server.start();
  std::cout << "studio review: " << server.url() << std::endl;
  std::cerr << "studio review: serving " << server.run_dir().string()
            << "; Ctrl-C (SIGINT) or SIGTERM stops\n";
  int sig = 0;
  sigwait(&stop_signals, &sig);
  server.stop();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  std::cerr << "studio review: stopped (signal " << sig << ")\n";
  return 0;
}

}  // namespace

void add_review_command(CLI::App& app, CommandAction* action) {
  auto o = std::make_shared<ReviewOptions>();
  o->server.port = 8765;
  auto* cmd = app.add_subcommand(
      "review", "Serve a local web page to accept, reject or send back a run's assets");
  cmd->add_option("run_dir", o->run_dir, "the run's output folder (with journal/)")->required();
  cmd->add_option("--port", o->server.port, "TCP port; 0 picks a free one")
      ->default_val(8765)
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--host", o->server.host,
                  "address to listen on (default 127.0.0.1; others are reachable from other "
                  "machines)")
      ->default_val("127.0.0.1");
  cmd->add_option("--token", o->server.token,
                  "the access token in the URL (default: 32 random hex characters)");
  cmd->add_option("--reviewer", o->server.reviewer, "your name, written with each verdict");
  cmd->callback([action, o] { *action = [o] { return run_review(*o); }; });
}

}  // namespace studio
