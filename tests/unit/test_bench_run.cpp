// `studio bench run`: the /proc sampler and the incremental journal line counter behind its
// progress mode (--checkpoints), and both modes end to end on the tiny SD fixture.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "pipeline/bench_run_probe.h"
#include "tests/support/process.h"

using namespace studio::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string record(const std::string& id, const std::string& status, const std::string& time) {
  return json{{"v", 1}, {"work_id", id}, {"status", status}, {"time", time}}.dump();
}

void append(const fs::path& file, const std::string& bytes) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

}  // namespace

TEST_CASE("parse_iso8601_utc reads the journal's time stamps", "[unit][bench]") {
  CHECK(studio::parse_iso8601_utc("1970-01-01T00:00:00Z") == 0.0);
  CHECK(studio::parse_iso8601_utc("1970-01-02T00:00:01.500Z") == Approx(86400 + 1.5));
  CHECK(studio::parse_iso8601_utc("2000-03-01T00:00:00.000Z") == 951868800.0);
  CHECK(std::isnan(studio::parse_iso8601_utc("2000-03-01 00:00:00")));
  CHECK(std::isnan(studio::parse_iso8601_utc("2000-03-01T00:00:00.12")));  // no Z
  CHECK(std::isnan(studio::parse_iso8601_utc("")));
}

TEST_CASE("the journal line counter counts whole lines only, across polls and shards",
          "[unit][bench]") {
  const fs::path dir = temp_dir("bench_journal_counter") / "journal";
  studio::JournalLineCounter c(dir);
  c.poll();  // no folder yet
  CHECK(c.items() == 0);
  fs::create_directories(dir);
  const fs::path a = dir / "0-of-2.jsonl";
  const std::string third = record("w3", "done", "2026-01-01T00:00:03.000Z");
  append(a, record("w1", "done", "2026-01-01T00:00:01.000Z") + "\n" +
                record("w2", "failed", "2026-01-01T00:00:02.000Z") + "\n" +
                third.substr(0, third.size() / 2));
  c.poll();
  CHECK(c.items() == 2);  // the half-written third line is not an item
  CHECK(c.done() == 1);
  CHECK(c.failed() == 1);
  c.poll();  // nothing new: nothing counted twice
  CHECK(c.items() == 2);
  append(a, third.substr(third.size() / 2));
  c.poll();
  CHECK(c.items() == 2);  // whole now, but still no '\n'
  append(a, "\n\n{not json}\n");
  c.poll();
  CHECK(c.items() == 3);
  CHECK(c.bad_lines() == 1);  // the blank line is skipped, the broken one is not an item
  // A second shard whose record is earlier than the first shard's last ones.
  append(dir / "1-of-2.jsonl", record("w4", "done", "2026-01-01T00:00:01.500Z") + "\n");
  append(dir / "notes.txt", record("x", "done", "2026-01-01T00:00:00.000Z") + "\n");
  c.poll();
  CHECK(c.items() == 4);
  CHECK(c.done() == 3);
  const double t0 = studio::parse_iso8601_utc("2026-01-01T00:00:00Z");
  CHECK(c.item_time(1) - t0 == Approx(1.0));
  CHECK(c.item_time(2) - t0 == Approx(1.5));  // in time order over the shards
  CHECK(c.item_time(3) - t0 == Approx(2.0));
  CHECK(c.item_time(4) - t0 == Approx(3.0));
  CHECK(std::isnan(c.item_time(5)));
  CHECK(std::isnan(c.item_time(0)));
}

TEST_CASE("sample_process sees a process's fds and threads change, and not a zombie",
          "[unit][bench]") {
  studio::ProcSample s0, s1, s2;
  REQUIRE(studio::sample_process(getpid(), &s0));
  CHECK(s0.rss_kib > 0);
  CHECK(s0.hwm_kib >= s0.rss_kib);
  CHECK(s0.threads >= 1);
  const int fd = ::open("/proc/self/status", O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(studio::sample_process(getpid(), &s1));
  CHECK(s1.fds == s0.fds + 1);
  ::close(fd);

  std::mutex m;
  std::condition_variable cv;
  bool started = false, stop = false;
  std::thread t([&] {
    std::unique_lock<std::mutex> lock(m);
    started = true;
    cv.notify_all();
    cv.wait(lock, [&] { return stop; });
  });
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return started; });
  }
  REQUIRE(studio::sample_process(getpid(), &s2));
  CHECK(s2.threads == s0.threads + 1);
  {
    std::lock_guard<std::mutex> lock(m);
    stop = true;
  }
  cv.notify_all();
  t.join();

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(0);
  // Not reaped yet: a zombie once it has exited.
  studio::ProcSample z;
  bool zombie_sampled = true;
  for (int i = 0; i < 200 && zombie_sampled; ++i) {
    zombie_sampled = studio::sample_process(child, &z);
    if (zombie_sampled) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK_FALSE(zombie_sampled);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK_FALSE(studio::sample_process(child, &z));  // gone
}

#ifdef STUDIO_HAVE_IMAGE
TEST_CASE("studio bench run --checkpoints follows one job and reports every checkpoint",
          "[unit][cli][bench]") {
  const fs::path dir = temp_dir("bench_run_progress");
  const fs::path json_file = dir / "bench.json";
  const std::string common = " --make visual --image-model " +
                             shell_quote((fixtures_root() / "sd-tiny").string()) +
                             " --size 64 --image-steps 1";
  const auto r = run_studio("bench run --items 30 --checkpoints 30,10 --sample-ms 20" + common +
                            " --work " + shell_quote((dir / "work").string()) + " --json " +
                            shell_quote(json_file.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("items/s") && Catch::Contains("before (") &&
                           Catch::Contains("after ("));
  const json j = read_json(json_file);
  CHECK(j["benchmark"] == "run");
  CHECK(j["mode"] == "progress");
  CHECK(j["items"] == 30);
  CHECK(j["exit_code"] == 0);
  CHECK(j["finished_items"] == 30);
  CHECK(j["failed_records"] == 0);
  // The journal the child wrote holds as many whole records as the bench counted.
  const std::string journal =
      read_file(dir / "work" / "job-30" / "out" / "journal" / "0-of-1.jsonl");
  CHECK(std::count(journal.begin(), journal.end(), '\n') == j["journal_records"].get<int64_t>());

  for (const char* when : {"before", "after"}) {
    INFO(when);
    const json& s = j[when];
    CHECK(s["fds"].get<int64_t>() >= 3);
    CHECK(s["threads"].get<int64_t>() >= 1);
    CHECK(s["rss_mib"].get<double>() > 0);
    CHECK(s["peak_rss_mib"].get<double>() >= s["rss_mib"].get<double>());
    CHECK(s["items"].get<int64_t>() >= 1);
  }
  CHECK(j["after"]["elapsed_s"].get<double>() >= j["before"]["elapsed_s"].get<double>());

  const json& cps = j["checkpoints"];
  REQUIRE(cps.size() == 2);
  CHECK(cps[0]["items"] == 10);  // sorted
  CHECK(cps[1]["items"] == 30);
  CHECK(cps[0]["segment_items"].get<double>() == 9);  // from item 1
  CHECK(cps[1]["segment_items"].get<double>() == 20);
  for (const auto& cp : cps) {
    INFO(cp.dump());
    CHECK(cp["reached"] == true);
    CHECK(cp["items_per_s"].get<double>() > 0);
    CHECK(cp["items_per_s"].get<double>() ==
          Approx(cp["segment_items"].get<double>() / cp["segment_s"].get<double>()));
    CHECK(cp["rss_mib"].get<double>() > 0);
    CHECK(cp["fds"].get<int64_t>() >= 3);
    CHECK(cp["threads"].get<int64_t>() >= 1);
    CHECK(cp["rss_vs_first"].get<double>() ==
          Approx(cp["rss_mib"].get<double>() / cps[0]["rss_mib"].get<double>()));
    CHECK(cp["items_per_s_vs_first"].get<double>() ==
          Approx(cp["items_per_s"].get<double>() / cps[0]["items_per_s"].get<double>()));
  }
  CHECK(cps[1]["elapsed_s"].get<double>() > cps[0]["elapsed_s"].get<double>());
  CHECK(cps[1]["peak_rss_mib"].get<double>() >= cps[0]["peak_rss_mib"].get<double>());
  // The file's series: every sample, or every k-th one when there are more than 500 (a slow
  // machine, or a sanitizer build, samples a 30-item job more than 500 times at 20 ms).
  const auto n = j["samples"].get<std::size_t>();
  const std::size_t every = (n + 499) / 500;
  CHECK(j["series"].size() == (n + every - 1) / every);
  CHECK(j["series"].size() <= 500);

  // Checkpoints beyond the job, or below 2, are usage errors before anything runs.
  const auto beyond = run_studio("bench run --items 30 --checkpoints 10,40" + common);
  CHECK(beyond.exit_code != 0);
  CHECK_THAT(beyond.output, Catch::Contains("beyond the job's 30 items"));
  const auto one = run_studio("bench run --items 30 --checkpoints 1,30" + common);
  CHECK(one.exit_code != 0);
  CHECK_THAT(one.output, Catch::Contains("at least 2"));
  // A model folder that is not there is refused before a job of failures is run.
  const auto no_model =
      run_studio("bench run --items 30 --checkpoints 10,30 --make visual --image-model " +
                 shell_quote((dir / "no-such-model").string()));
  CHECK(no_model.exit_code == 1);
  CHECK_THAT(no_model.output, Catch::Contains("image model folder does not exist") &&
                                  Catch::Contains("no-such-model") &&
                                  Catch::Contains("--image-model"));
}

TEST_CASE("studio bench run without --checkpoints still compares job sizes", "[unit][cli][bench]") {
  const fs::path json_file = temp_dir("bench_run_sizes") / "bench.json";
  const auto r = run_studio("bench run --items 6,3 --make visual --image-model " +
                            shell_quote((fixtures_root() / "sd-tiny").string()) +
                            " --size 64 --image-steps 1 --json " + shell_quote(json_file.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const json j = read_json(json_file);
  CHECK(j["benchmark"] == "run");
  CHECK_FALSE(j.contains("mode"));
  const json& runs = j["runs"];
  REQUIRE(runs.size() == 2);
  CHECK(runs[0]["items"] == 3);
  CHECK(runs[1]["items"] == 6);
  CHECK(runs[0]["assets"] == 3);
  CHECK(runs[1]["assets"] == 6);
  CHECK(runs[0]["peak_rss_vs_smallest"].get<double>() == Approx(1.0));
  CHECK(runs[1]["peak_rss_mib"].get<double>() > 0);
}
#endif
