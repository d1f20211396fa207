// Crash and fault drills for `studio run` (issue #11): SIGKILL at 20 random moments of a caption +
// visual + edit job, each followed by --resume (with a torn journal line now and then, as power
// loss leaves); a file-size limit (ulimit -f), a full disk (a small tmpfs, where mounting is
// allowed) and an output folder made read-only mid-run. Each ends in a clear error with nothing
// recorded lost, and a later resume makes exactly what an uninterrupted run makes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/run_job.h"

using namespace studio;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string q(const fs::path& p) { return test::shell_quote(p.string()); }

// `studio run JOB EXTRA` with combined output in LOG; PREFIX runs first in the same shell (ulimit).
std::string run_line(const fs::path& job, const fs::path& log, const std::string& extra,
                     const std::string& wrapper = "") {
  return wrapper + q(test::studio_exe()) + " run " + q(job) + " --progress none " + extra + " > " +
         q(log) + " 2>&1";
}

int exit_code_of(const test::ProcessResult& r) {
  const size_t at = r.output.rfind("rc=");
  return at == std::string::npos ? -1 : std::atoi(r.output.c_str() + at + 3);
}

// Runs the job in the background, SIGKILLs it after `seconds` unless it ended, returns its exit
// status (137 when killed).
int run_and_kill(const fs::path& job, const fs::path& log, bool resume, double seconds) {
  const auto r = test::run_command(run_line(job, log, resume ? "--resume" : "") +
                                   " & pid=$!; sleep " + std::to_string(seconds) +
                                   "; kill -KILL $pid 2>/dev/null; wait $pid; echo rc=$?");
  return exit_code_of(r);
}

// What a finished run folder must hold: the reference assets byte for byte, every work item done
// exactly once in a journal whose every line parses and says "done", no stray temporary file.
void check_complete(const fs::path& out, const std::map<std::string, std::string>& reference,
                    size_t work_items) {
  CHECK(test::run_assets(out) == reference);
  std::map<std::string, int> done;
  for (const auto& l : test::run_journal_lines(out)) {
    CHECK(l["status"] == "done");
    ++done[l["work_id"].get<std::string>()];
  }
  CHECK(done.size() == work_items);
  for (const auto& [id, n] : done) {
    INFO(id);
    CHECK(n == 1);
  }
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    INFO(e.path());
    CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
  }
}

// Journal lines before a storage failure: all parse, none says "failed" (the storage is not the
// item's fault), fewer than the job's work items.
size_t check_recorded_prefix(const fs::path& out, size_t work_items) {
  const auto lines = test::run_journal_lines(out);  // throws on a torn or corrupt line
  for (const auto& l : lines) CHECK(l["status"] == "done");
  CHECK(lines.size() < work_items);
  return lines.size();
}

struct Reference {
  std::map<std::string, std::string> assets;
  size_t work_items = 0;
  double seconds = 0;
  uintmax_t ledger_bytes = 0, output_bytes = 0;
  uintmax_t largest_asset = 0;  // the largest asset or sidecar (not journal, ledger)
};

Reference reference_run(const std::string& name, const test::RunJobOptions& options) {
  const fs::path dir = test::temp_dir(name);
  const fs::path job = test::write_run_job(dir, options);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = test::run_command(run_line(job, dir / "log.txt", "") + "; echo rc=$?");
  Reference ref;
  ref.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(test::read_file(dir / "log.txt"));
  REQUIRE(exit_code_of(r) == 0);
  ref.assets = test::run_assets(dir / "out");
  ref.work_items = test::run_journal_lines(dir / "out").size();
  REQUIRE(ref.assets.size() == ref.work_items);
  ref.ledger_bytes = fs::file_size(dir / "out" / "ledger" / "0-of-1.jsonl");
  for (const auto& e : fs::recursive_directory_iterator(dir / "out")) {
    if (!e.is_regular_file()) continue;
    ref.output_bytes += e.file_size();
    const std::string top = fs::relative(e.path(), dir / "out").begin()->string();
    if (top != "ledger" && top != "journal")
      ref.largest_asset = std::max<uintmax_t>(ref.largest_asset, e.file_size());
  }
  return ref;
}

}  // namespace

TEST_CASE("drill: SIGKILL at 20 random moments of a caption + visual + edit job, each resumed",
          "[run][slow][drill]") {
  test::RunJobOptions options;
  options.edit = true;
  options.extra_items = 1;  // 3 products x (caption, visual, edit) = 9 work items
  const Reference ref = reference_run("drill_kill_ref", options);
  REQUIRE(ref.work_items == 9);

  // The moments are random (model loading, sampling, encoding, writes, fsyncs, journal lines);
  // the seed is printed so a failure can be replayed with STUDIO_DRILL_SEED.
  const char* env_seed = std::getenv("STUDIO_DRILL_SEED");
  const unsigned seed =
      env_seed ? unsigned(std::strtoul(env_seed, nullptr, 10)) : unsigned(std::random_device{}());
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> when(0.05, 0.9);
  INFO("STUDIO_DRILL_SEED=" << seed << ", uninterrupted run " << ref.seconds << " s");

  int kills = 0, completions = 0, torn = 0, round = 0;
  bool torn_last = false;  // the last kill left a torn journal line for the final resume
  fs::path dir;
  bool fresh = true;
  while (kills < 20) {
    if (fresh) {
      dir = test::temp_dir("drill_kill_" + std::to_string(round++));
      test::write_run_job(dir, options);
    }
    const double at = when(rng) * ref.seconds;
    const fs::path log = dir / ("log-" + std::to_string(kills) + ".txt");
    const int rc = run_and_kill(dir / "job.json", log, !fresh, at);
    INFO("kill " << kills << " at " << at << " s: " << test::read_file(log));
    if (rc == 0) {
      // Finished before the kill: check it, then start over in a fresh folder.
      check_complete(dir / "out", ref.assets, ref.work_items);
      ++completions;
      fresh = true;
      continue;
    }
    REQUIRE(rc == 137);
    ++kills;
    fresh = false;
    // Now and then, power loss mid-write: half a journal line at the end of the file.
    const fs::path journal = dir / "out" / "journal" / "0-of-1.jsonl";
    torn_last = kills % 5 == 0 && fs::exists(journal);
    if (torn_last) {
      test::run_command("printf '%s' '{\"v\":1,\"work_id\":\"0123' >> " + q(journal));
      ++torn;
    }
  }
  const fs::path log = dir / "log-final.txt";
  const auto r = test::run_command(run_line(dir / "job.json", log, "--resume") + "; echo rc=$?");
  const std::string final_log = test::read_file(log);
  INFO(final_log);
  REQUIRE(exit_code_of(r) == 0);
  check_complete(dir / "out", ref.assets, ref.work_items);
  if (torn_last) CHECK(final_log.find("torn last line") != std::string::npos);
  WARN("SIGKILL drill (seed " << seed << "): " << kills << " kills, " << completions
                              << " runs finished between kills, " << torn
                              << " torn journal lines; uninterrupted run " << ref.seconds << " s");
}

TEST_CASE(
    "drill: a file-size limit mid-run stops the run with a clear error, and a resume completes",
    "[run][slow][drill]") {
  test::RunJobOptions options;
  options.extra_items = 2;  // 4 products x (caption, visual) = 8 work items
  const Reference ref = reference_run("drill_fsize_ref", options);
  const fs::path dir = test::temp_dir("drill_fsize");
  const fs::path job = test::write_run_job(dir, options);
  // In KiB this is more than any asset and less than the ledger; /bin/sh (dash) counts
  // `ulimit -f` in 512-byte blocks, so the limit is half that, and whichever of a larger asset or
  // the ledger reaches it first does so part-way through (at least one item recorded, below).
  const uintmax_t kib = ref.largest_asset / 1024 + 1;
  REQUIRE(kib * 1024 < ref.ledger_bytes);
  const auto r = test::run_command("(ulimit -f " + std::to_string(kib) + "; " +
                                   run_line(job, dir / "log.txt", "") + "); echo rc=$?");
  const std::string log = test::read_file(dir / "log.txt");
  INFO("ulimit -f " << kib << "\n" << log);
  CHECK(exit_code_of(r) == 74);
  CHECK(log.find("storage error") != std::string::npos);
  CHECK(log.find("File too large") != std::string::npos);
  CHECK(log.find("ulimit -f") != std::string::npos);
  CHECK(log.find("--resume") != std::string::npos);
  CHECK(check_recorded_prefix(dir / "out", ref.work_items) >= 1);

  const auto resumed =
      test::run_command(run_line(job, dir / "log-resume.txt", "--resume") + "; echo rc=$?");
  INFO(test::read_file(dir / "log-resume.txt"));
  CHECK(exit_code_of(resumed) == 0);
  check_complete(dir / "out", ref.assets, ref.work_items);
}

TEST_CASE("drill: a full disk mid-run stops the run with a clear error, and a resume completes",
          "[run][slow][drill]") {
  test::RunJobOptions options;
  options.extra_items = 2;
  const Reference ref = reference_run("drill_enospc_ref", options);
  const fs::path dir = test::temp_dir("drill_enospc");
  // A tmpfs half the size the finished run folder needs: only where mounting is allowed (root
  // with CAP_SYS_ADMIN, as in CI). Elsewhere the file-size drill above covers the same path.
  const uintmax_t kib = std::max<uintmax_t>(64, ref.output_bytes / 2 / 1024);
  const auto mounted = test::run_command("mount -t tmpfs -o size=" + std::to_string(kib) +
                                         "k studio-drill " + q(dir) + " && echo mounted");
  if (mounted.output.find("mounted") == std::string::npos) {
    WARN("no full-disk drill here: cannot mount a tmpfs (" << mounted.output << ")");
    return;
  }
  struct Unmount {
    fs::path dir;
    ~Unmount() { test::run_command("umount " + q(dir)); }
  } unmount{dir};
  const fs::path job = test::write_run_job(dir, options);
  const auto r =
      test::run_command(run_line(job, dir / ".." / "drill_enospc.log", "") + "; echo rc=$?");
  const std::string log = test::read_file(dir / ".." / "drill_enospc.log");
  INFO("tmpfs of " << kib << " KiB\n" << log);
  CHECK(exit_code_of(r) == 74);
  CHECK(log.find("No space left on device") != std::string::npos);
  CHECK(log.find("free disk space") != std::string::npos);
  check_recorded_prefix(dir / "out", ref.work_items);

  // Space is freed (the tmpfs grows), and the resume finishes the job.
  REQUIRE(
      test::run_command("mount -o remount,size=64m " + q(dir) + " && echo ok").output.find("ok") !=
      std::string::npos);
  const auto resumed = test::run_command(
      run_line(job, dir / ".." / "drill_enospc-resume.log", "--resume") + "; echo rc=$?");
  INFO(test::read_file(dir / ".." / "drill_enospc-resume.log"));
  CHECK(exit_code_of(resumed) == 0);
  check_complete(dir / "out", ref.assets, ref.work_items);
}

TEST_CASE("drill: an output folder made read-only mid-run stops the run, and a resume completes",
          "[run][slow][drill]") {
  test::RunJobOptions options;
  options.extra_items = 6;  // 8 products x (caption, visual) = 16 work items
  options.visual_steps = 4;
  const Reference ref = reference_run("drill_ro_ref", options);
  const fs::path dir = test::temp_dir("drill_ro");
  const fs::path job = test::write_run_job(dir, options);
  const fs::path journal = dir / "out" / "journal" / "0-of-1.jsonl";
  // root ignores permissions: studio then runs without CAP_DAC_OVERRIDE (setpriv), as a user would.
  const std::string as_user =
      ::geteuid() == 0 ? "setpriv --bounding-set=-dac_override,-dac_read_search,-fowner " : "";
  const auto r =
      test::run_command(run_line(job, dir / "log.txt", "--max-in-flight 2", as_user) +
                        " & pid=$!; while kill -0 $pid 2>/dev/null && [ \"$(cat " + q(journal) +
                        " 2>/dev/null | wc -l)\" -lt 2 ]; do sleep 0.05; done; chmod -R a-w " +
                        q(dir / "out") + "; wait $pid; echo rc=$?");
  test::run_command("chmod -R u+w " + q(dir / "out"));
  const std::string log = test::read_file(dir / "log.txt");
  INFO(log);
  CHECK(exit_code_of(r) == 74);
  CHECK(log.find("Permission denied") != std::string::npos);
  CHECK(log.find("make the output folder writable") != std::string::npos);
  CHECK(check_recorded_prefix(dir / "out", ref.work_items) >= 2);

  const auto resumed = test::run_command(
      run_line(job, dir / "log-resume.txt", "--resume", as_user) + "; echo rc=$?");
  INFO(test::read_file(dir / "log-resume.txt"));
  CHECK(exit_code_of(resumed) == 0);
  check_complete(dir / "out", ref.assets, ref.work_items);
}

TEST_CASE("drill: inputs are only read: a read-only job folder, nothing written beside the inputs",
          "[run][drill]") {
  const fs::path dir = test::temp_dir("drill_inputs");
  const fs::path out = test::temp_dir("drill_inputs_out") / "run";
  test::RunJobOptions options;
  options.edit = true;  // reads a product photo as well as the job file and the models
  options.output = out.string();
  const fs::path job = test::write_run_job(dir, options);
  const fs::path photos = test::data_root() / "photos";
  // Every file of the input folders with its size and modification time.
  auto listing = [](const fs::path& folder) {
    std::map<std::string, std::string> m;
    for (const auto& e : fs::recursive_directory_iterator(folder))
      m[e.path().string()] = std::to_string(e.is_regular_file() ? e.file_size() : 0) +
                             " bytes, mtime " +
                             std::to_string(e.last_write_time().time_since_epoch().count());
    return m;
  };
  const auto job_before = listing(dir);
  const auto photos_before = listing(photos);
  test::run_command("chmod -R a-w " + q(dir));
  const std::string as_user =
      ::geteuid() == 0 ? "setpriv --bounding-set=-dac_override,-dac_read_search,-fowner " : "";
  const auto r =
      test::run_command(run_line(job, out.parent_path() / "log.txt", "", as_user) + "; echo rc=$?");
  test::run_command("chmod -R u+w " + q(dir));
  INFO(test::read_file(out.parent_path() / "log.txt"));
  CHECK(exit_code_of(r) == 0);
  CHECK(test::run_assets(out).size() == 6);
  CHECK(listing(dir) == job_before);
  CHECK(listing(photos) == photos_before);
}
