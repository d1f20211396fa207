// studio on a real single-node Slurm (scripts/local-slurm.sh: munged + slurmctld + slurmd in a
// private folder), driven through the samples users run (samples/slurm/submit.sh and its sbatch
// scripts): a 3-shard array equals an unsharded run; a requeued shard resumes with nothing lost or
// made twice; a preempted shard is requeued and completes; the merge job waits for every shard.
// Each test brings the cluster up and tears it down (CTest also runs `cluster:teardown` after
// them); a machine where Slurm cannot start makes them skip (exit 77) with the reason.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "core/json_file.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/run_job.h"

using namespace studio;
using nlohmann::json;
namespace fs = std::filesystem;
using test::shell_quote;

namespace {

fs::path cluster_dir() {
  const char* d = std::getenv("STUDIO_SLURM_DIR");
  return d && *d ? fs::path(d) : fs::path("/tmp/studio-slurm-test");
}

std::string local_slurm(const std::string& verb) {
  // A port of its own, so a cluster someone started by hand (default 6917) does not collide.
  return "STUDIO_SLURM_DIR=" + shell_quote(cluster_dir().string()) + " STUDIO_SLURM_PORT=6927 " +
         shell_quote((test::source_dir() / "scripts" / "local-slurm.sh").string()) + " " + verb;
}

// The cluster for one test: up in the constructor, down in the destructor (also when a REQUIRE
// throws). Exits the test process with 77 (CTest: skipped) when Slurm cannot start here.
class Cluster {
 public:
  Cluster() {
    // A fresh cluster: whatever an earlier test left (it may have been killed) goes first.
    test::run_command(local_slurm("down") + " 2>&1");
    const auto r = test::run_command(local_slurm("up") + " 2>&1");
    if (r.exit_code == 77) {
      std::cout << "SKIPPED: " << r.output << std::flush;
      std::exit(77);
    }
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    setenv("SLURM_CONF", (cluster_dir() / "slurm.conf").c_str(), 1);
  }
  ~Cluster() {
    const auto r = test::run_command(local_slurm("down") + " 2>&1");
    if (r.exit_code != 0) std::cerr << "local-slurm down: " << r.output << "\n";
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
};

std::string sh(const std::string& cmd, int expected_exit = 0) {
  const auto r = test::run_command(cmd + " 2>&1");
  INFO(cmd << "\n" << r.output);
  REQUIRE(r.exit_code == expected_exit);
  return r.output;
}

// Key=Value fields of `scontrol show job ID`: one map per job record (an array gives one per task).
std::vector<std::map<std::string, std::string>> job_records(const std::string& id) {
  const std::string text = sh("scontrol show job " + id);
  std::vector<std::map<std::string, std::string>> recs;
  static const std::regex kv(R"(([A-Za-z:/]+)=(\S*))");
  std::map<std::string, std::string> cur;
  size_t at = 0;
  while (at <= text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(at, nl - at);
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (!cur.empty()) recs.push_back(cur);
      cur.clear();
    } else {
      for (auto it = std::sregex_iterator(line.begin(), line.end(), kv);
           it != std::sregex_iterator(); ++it)
        cur.emplace((*it)[1].str(), (*it)[2].str());
    }
    at = nl + 1;
  }
  if (!cur.empty()) recs.push_back(cur);
  return recs;
}

// Waits until none of the jobs is pending or running; fails after timeout_s with the queue.
void wait_done(const std::vector<std::string>& ids, double timeout_s) {
  std::string list;
  for (const auto& id : ids) list += (list.empty() ? "" : ",") + id;
  const auto t0 = std::chrono::steady_clock::now();
  std::string last;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
    const auto r = test::run_command("squeue -h -o '%i %T %r' -j " + list + " 2>&1");
    last = r.output;
    if (r.exit_code == 0 && r.output.find_first_not_of(" \n") == std::string::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  FAIL("jobs " << list << " still queued after " << timeout_s << " s:\n" << last);
}

struct Submitted {
  std::string array, merge;
};

// samples/slurm/submit.sh JOB RUN_DIR N K [sbatch options], run in DIR (logs land there).
Submitted submit(const fs::path& dir, const fs::path& job, int shards, int at_once,
                 const std::string& sbatch_options, const std::string& run_args = "") {
  const std::string out = sh(
      "cd " + shell_quote(dir.string()) + " && STUDIO=" + shell_quote(test::studio_exe().string()) +
      " STUDIO_RUN_ARGS=" + shell_quote(run_args) + " " +
      shell_quote((test::source_dir() / "samples" / "slurm" / "submit.sh").string()) + " " +
      shell_quote(job.string()) + " " + shell_quote((dir / "out").string()) + " " +
      std::to_string(shards) + " " + std::to_string(at_once) + " " + sbatch_options);
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex(R"(array job (\d+) .* merge job (\d+))")));
  return {m[1].str(), m[2].str()};
}

// The unsharded run of the same job, made without Slurm: the reference.
std::map<std::string, std::string> reference_assets(const test::RunJobOptions& o, json* kpis) {
  const fs::path dir = test::temp_dir("slurm_reference");
  const fs::path job = test::write_run_job(dir, o);
  sh(shell_quote(test::studio_exe().string()) + " run " + shell_quote(job.string()) +
         " --progress none --max-in-flight 1",
     o.missing_photo ? 1 : 0);  // exit 1: some items failed (recorded)
  sh(shell_quote(test::studio_exe().string()) + " kpi report " +
     shell_quote((dir / "out").string()) + " --json " + shell_quote((dir / "kpi.json").string()));
  *kpis = read_json_file(dir / "kpi.json");
  return test::run_assets(dir / "out");
}

json merged_kpis(const fs::path& dir) {
  sh(shell_quote(test::studio_exe().string()) + " kpi report " +
     shell_quote((dir / "out-merged").string()) + " --json " +
     shell_quote((dir / "kpi.json").string()));
  return read_json_file(dir / "kpi.json");
}

// The totals an unsharded and a sharded run must share.
void check_same_totals(const json& got, const json& want) {
  for (const char* k : {"work_items", "assets", "failed", "incomplete"}) {
    INFO(k);
    CHECK(got[k] == want[k]);
  }
  CHECK(got["yield"]["first_pass_n"] == want["yield"]["first_pass_n"]);
  CHECK(got["yield"]["first_pass_ok"] == want["yield"]["first_pass_ok"]);
  REQUIRE(got["by_kind"].size() == want["by_kind"].size());
  for (size_t i = 0; i < got["by_kind"].size(); ++i) {
    CHECK(got["by_kind"][i]["name"] == want["by_kind"][i]["name"]);
    CHECK(got["by_kind"][i]["assets"] == want["by_kind"][i]["assets"]);
  }
}

// Every work item is recorded done exactly once over all shards' journals.
void check_done_once(const fs::path& out, size_t expected) {
  std::map<std::string, int> done;
  for (const auto& l : test::run_journal_lines(out))
    if (l["status"] == "done") ++done[l["work_id"].get<std::string>()];
  CHECK(done.size() == expected);
  for (const auto& [id, n] : done) {
    INFO(id);
    CHECK(n == 1);
  }
}

size_t line_count(const fs::path& file) {
  const std::string s = test::read_file(file);
  return size_t(std::count(s.begin(), s.end(), '\n'));
}

// The array index of the largest shard of JOB split `shards` ways, computed as studio assigns work
// items: the first 15 hex digits of the work id modulo the shard count (studio plan --json).
std::string largest_shard(const fs::path& job, int shards) {
  const json plan = json::parse(sh(shell_quote(test::studio_exe().string()) + " plan " +
                                   shell_quote(job.string()) + " --json 2>/dev/null"));
  std::vector<int> sizes(shards, 0);
  for (const auto& w : plan.at("work_items"))
    ++sizes[std::stoull(w.at("id").get<std::string>().substr(0, 15), nullptr, 16) % shards];
  const auto it = std::max_element(sizes.begin(), sizes.end());
  INFO("shard sizes " << sizes[0] << " " << sizes[1] << " " << sizes[2]);
  REQUIRE(*it >= 3);
  return std::to_string(it - sizes.begin());
}

// Waits until FILE has at least one line; fails after timeout_s.
void wait_first_line(const fs::path& file, double timeout_s) {
  const auto t0 = std::chrono::steady_clock::now();
  while (line_count(file) == 0) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s)
      FAIL("no journal line in " << file << " after " << timeout_s << " s:\n"
                                 << test::run_command("squeue 2>&1").output);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string logs(const fs::path& dir) {
  std::string all;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".out")
      all += "== " + e.path().filename().string() + "\n" + test::read_file(e.path());
  return all;
}

}  // namespace

TEST_CASE("slurm: an array of 3 shards makes exactly the assets and KPI totals of one run",
          "[cluster]") {
  test::RunJobOptions o;
  o.extra_items = 4;  // 6 items x (caption + visual)
  json want;
  const auto reference = reference_assets(o, &want);
  REQUIRE(reference.size() == 12);

  Cluster cluster;
  const fs::path dir = test::temp_dir("slurm_array");
  const fs::path job = test::write_run_job(dir, o);
  const Submitted s = submit(dir, job, 3, 3, "--cpus-per-task=1", "--max-in-flight 1");
  wait_done({s.array, s.merge}, 240);
  INFO(logs(dir));
  const auto tasks = job_records(s.array);
  REQUIRE(tasks.size() == 3);
  for (const auto& t : tasks) {
    CHECK(t.at("JobState") == "COMPLETED");
    CHECK(t.at("ExitCode") == "0:0");
  }
  for (int i = 0; i < 3; ++i)
    CHECK(fs::exists(dir / "out" / "journal" / (std::to_string(i) + "-of-3.jsonl")));
  CHECK(test::run_assets(dir / "out") == reference);
  check_done_once(dir / "out", 12);
  const json got = merged_kpis(dir);
  check_same_totals(got, want);
  CHECK(got["restarts"]["preemptions"] == 0);
}

TEST_CASE(
    "slurm: a shard requeued mid-run resumes, nothing lost or made twice, 1 restart in the KPIs",
    "[cluster]") {
  test::RunJobOptions o;
  o.extra_items = 7;  // 9 items x 2 = 18 work items, about 6 per shard
  o.visual_steps = 6;
  json want;
  const auto reference = reference_assets(o, &want);
  REQUIRE(reference.size() == 18);

  Cluster cluster;
  const fs::path dir = test::temp_dir("slurm_requeue");
  const fs::path job = test::write_run_job(dir, o);
  // Shards are split by work-item hash, so their sizes vary from run to run (the ids depend on the
  // run folder): requeue the largest, which holds at least 6 of the 18.
  const std::string k = largest_shard(job, 3);
  const Submitted s = submit(dir, job, 3, 3, "--cpus-per-task=1", "--max-in-flight 1");
  // As soon as shard k has recorded its first item, requeue it (Slurm: CONT+TERM to its
  // processes; studio stops intake, finishes the item in flight, flushes and exits 75; at least
  // 4 items are then still to make).
  const fs::path journal_k = dir / "out" / "journal" / (k + "-of-3.jsonl");
  wait_first_line(journal_k, 120);
  sh("scontrol requeue " + s.array + "_" + k);
  const size_t at_requeue = line_count(journal_k);
  wait_done({s.array, s.merge}, 300);
  INFO(logs(dir));

  std::map<std::string, std::string> task_k;
  for (const auto& t : job_records(s.array)) {
    CHECK(t.at("JobState") == "COMPLETED");
    if (t.at("ArrayTaskId") == k) task_k = t;
  }
  REQUIRE_FALSE(task_k.empty());
  CHECK(task_k.at("Restarts") == "1");
  const std::string log = logs(dir);
  CHECK(log.find("DUE TO JOB REQUEUE") != std::string::npos);
  CHECK(log.find("task " + k + " restart 0 exit 75") != std::string::npos);  // the script's line
  CHECK(line_count(journal_k) > at_requeue);  // the requeued run made the rest

  CHECK(test::run_assets(dir / "out") == reference);
  check_done_once(dir / "out", 18);
  const json got = merged_kpis(dir);
  check_same_totals(got, want);
  CHECK(got["restarts"]["preemptions"] == 1);
  CHECK(got["restarts"]["max_restart_count"] == 1);
  CHECK(got["restarts"]["interruptions"] == 1);
  CHECK(got["restarts"]["resumes"] == 1);
  CHECK(got["restarts"]["recovered_items"].get<int>() >= 1);
  // The human-readable report says so too.
  const std::string report = sh(shell_quote(test::studio_exe().string()) + " kpi report " +
                                shell_quote((dir / "out-merged").string()) + " --out " +
                                shell_quote((dir / "report").string()));
  CHECK(report.find("1 preempted/requeued") != std::string::npos);
  CHECK(test::read_file(dir / "report" / "report.html").find("preempted or requeued") !=
        std::string::npos);
}

TEST_CASE("slurm: a preempted shard is requeued and completes afterwards", "[cluster]") {
  test::RunJobOptions o;
  o.extra_items = 10;  // 12 items x 2 = 24 work items, about 8 per shard
  o.visual_steps = 6;
  json want;
  const auto reference = reference_assets(o, &want);
  REQUIRE(reference.size() == 24);

  Cluster cluster;
  // Every shard takes the whole node, so a job in the higher-priority partition must preempt.
  const int ncpu = std::stoi(sh("sinfo -h -p debug -o %c"));
  const fs::path dir = test::temp_dir("slurm_preempt");
  const fs::path job = test::write_run_job(dir, o);
  // The largest shard is preempted (shard sizes vary with the work-item hashes; a small one could
  // end before the preemption lands). Its task runs when its turn comes (one at a time: each needs
  // every CPU); once it has recorded an item, a high-priority job is submitted.
  const std::string running = largest_shard(job, 3);
  const Submitted s =
      submit(dir, job, 3, 3, "--cpus-per-task=" + std::to_string(ncpu), "--max-in-flight 1");
  std::string now;
  for (int i = 0; i < 3000 && now != running; ++i) {
    now = sh("squeue -h -r -t R -o %K -j " + s.array);
    now = now.substr(0, now.find_first_of(" \n"));
    if (now != running) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(now == running);
  wait_first_line(dir / "out" / "journal" / (running + "-of-3.jsonl"), 120);
  const std::string high =
      sh("cd " + shell_quote(dir.string()) + " && sbatch --parsable -p high --cpus-per-task=" +
         std::to_string(ncpu) + " -o high_%j.out --wrap 'echo high priority work; sleep 1'");
  const std::string high_id = high.substr(0, high.find_first_of("\n;"));
  wait_done({s.array, s.merge, high_id}, 300);
  INFO("preempted task " << running << "\n" << logs(dir));

  CHECK(job_records(high_id).at(0).at("JobState") == "COMPLETED");
  for (const auto& t : job_records(s.array)) {
    CHECK(t.at("JobState") == "COMPLETED");
    CHECK(t.at("Restarts") == (t.at("ArrayTaskId") == running ? "1" : "0"));
  }
  const std::string log = test::read_file(dir / ("studio_" + s.array + "_" + running + ".out"));
  CHECK(log.find("DUE TO PREEMPTION") != std::string::npos);
  CHECK(log.find("task " + running + " restart 0 exit 75") != std::string::npos);
  CHECK(log.find("task " + running + " restart 1 exit 0") != std::string::npos);
  CHECK(test::run_assets(dir / "out") == reference);
  check_done_once(dir / "out", reference.size());
  const json got = merged_kpis(dir);
  check_same_totals(got, want);
  CHECK(got["restarts"]["preemptions"] == 1);
  CHECK(got["restarts"]["recovered_items"].get<int>() >= 1);
}

TEST_CASE("slurm: the merge job runs after every shard, even a failed one, and writes the report",
          "[cluster]") {
  test::RunJobOptions o;
  o.missing_photo = true;  // LAMP-003 fails in decode: its shard exits 1
  json want;
  const auto reference = reference_assets(o, &want);

  Cluster cluster;
  const fs::path dir = test::temp_dir("slurm_merge");
  const fs::path job = test::write_run_job(dir, o);
  const Submitted s = submit(dir, job, 3, 1, "--cpus-per-task=1");  // one shard at a time
  wait_done({s.array, s.merge}, 240);
  INFO(logs(dir));

  const auto tasks = job_records(s.array);
  REQUIRE(tasks.size() == 3);
  std::string last_end;
  int failed_tasks = 0;
  for (const auto& t : tasks) {
    last_end = std::max(last_end, t.at("EndTime"));  // ISO 8601: text order is time order
    if (t.at("JobState") == "FAILED") {
      ++failed_tasks;
      CHECK(t.at("ExitCode") == "1:0");
    } else {
      CHECK(t.at("JobState") == "COMPLETED");
    }
  }
  CHECK(failed_tasks >= 1);  // the shards that hold a LAMP-003 work item
  const auto merge = job_records(s.merge).at(0);
  CHECK(merge.at("JobState") == "COMPLETED");
  CHECK(merge.at("StartTime") >= last_end);
  CHECK(merge.at("Dependency") == "(null)");  // satisfied and cleared
  // The merge wrote the joined ledger and journal, kpi.csv and report.html.
  for (const char* f : {"kpi.csv", "report.html", "run.json"})
    CHECK(fs::exists(dir / "out-merged" / f));
  const std::string merge_log = test::read_file(dir / ("studio_merge_" + s.merge + ".out"));
  CHECK(merge_log.find("first-pass yield") != std::string::npos);
  CHECK(test::run_assets(dir / "out") == reference);
  const json got = merged_kpis(dir);
  check_same_totals(got, want);
  CHECK(got["failed"] == 2);
}

TEST_CASE("slurm: the time-limit warning stops a shard, which requeues itself and completes",
          "[cluster]") {
  test::RunJobOptions o;
  // 96 work items: about 25 s on a 2-core machine, longer than the 20 s before the warning, so the
  // warning comes first and the requeued run has the rest.
  o.extra_items = 46;
  o.visual_steps = 6;

  Cluster cluster;
  const fs::path dir = test::temp_dir("slurm_timelimit");
  const fs::path job = test::write_run_job(dir, o);
  // A 1-minute limit with USR1 40 s before it: the warning comes about 20 s in (Slurm checks
  // limits lazily), the script forwards it as TERM, studio exits 75 after its in-flight item, the
  // script requeues its task, and the next run resumes (and may be warned again if slow).
  const Submitted s =
      submit(dir, job, 1, 1, "--cpus-per-task=1 --time=1 --signal=B:USR1@40", "--max-in-flight 1");
  wait_done({s.array, s.merge}, 400);
  const std::string log = test::read_file(dir / ("studio_" + s.array + "_0.out"));
  INFO(log);
  const auto task = job_records(s.array).at(0);
  CHECK(task.at("JobState") == "COMPLETED");
  const int restarts = std::stoi(task.at("Restarts"));
  CHECK(restarts >= 1);
  CHECK(log.find("task 0 restart 0 exit 75") != std::string::npos);
  CHECK(log.find("exit 0") != std::string::npos);
  CHECK(log.find("TIME LIMIT") == std::string::npos);  // never killed by the limit itself
  check_done_once(dir / "out", 96);
  CHECK(test::run_assets(dir / "out").size() == 96);
  const json got = merged_kpis(dir);
  CHECK(got["assets"] == 96);
  CHECK(got["restarts"]["preemptions"] == restarts);
  CHECK(got["restarts"]["interruptions"] == restarts);
}
