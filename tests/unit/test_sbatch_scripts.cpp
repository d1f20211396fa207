// The sbatch scripts' signal handling without a cluster: a fake `studio` (a shell script) and a
// fake `scontrol` on PATH stand in, and the signals Slurm would send are sent by the fake itself.
// The requeue case races studio's exit against the batch shell's trap on purpose; the script must
// report studio's own exit status every time (bash's job status lost it: "exit 143" / "-1").
#include <catch2/catch.hpp>

#include <fstream>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace fs = std::filesystem;
using studio::test::shell_quote;

namespace {

void write_exec(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
  fs::permissions(p, fs::perms::owner_all, fs::perm_options::add);
}

struct Sandbox {
  fs::path dir;
  explicit Sandbox(const std::string& name) : dir(studio::test::temp_dir(name)) {
    fs::create_directories(dir / "bin");
    // scontrol records its arguments (the time-limit path calls `scontrol requeue JOBID`).
    write_exec(dir / "bin" / "scontrol",
               "#!/bin/sh\necho \"$*\" >>" + shell_quote((dir / "scontrol.log").string()) + "\n");
  }
  // Runs SCRIPT in a session of its own (Slurm signals a job's processes as a group) with STUDIO
  // set to the fake; returns the exit code and the output.
  studio::test::ProcessResult run(const std::string& script, const std::string& fake_body) const {
    write_exec(dir / "studio", "#!/bin/sh\n" + fake_body);
    const fs::path sbatch = studio::test::source_dir() / "samples" / "slurm" / script;
    return studio::test::run_command(
        "cd " + shell_quote(dir.string()) + " && PATH=" + shell_quote((dir / "bin").string()) +
        ":$PATH STUDIO=" + shell_quote((dir / "studio").string()) +
        " SLURM_ARRAY_TASK_ID=1 SLURM_JOB_ID=42 TMPDIR=" + shell_quote(dir.string()) +
        " setsid -w bash " + shell_quote(sbatch.string()) + " job.json 2>&1");
  }
  std::string scontrol_log() const { return studio::test::read_file(dir / "scontrol.log"); }
};

}  // namespace

TEST_CASE("sbatch scripts report studio's exit status under a requeue's TERM every time",
          "[slurm][unit]") {
  for (const std::string script : {"studio-array.sbatch", "studio-array-gpu.sbatch"}) {
    Sandbox box("sbatch_requeue");
    // Like a requeue: TERM to every process of the job; studio exits 75 at once, so its exit and
    // the batch shell's trap race.
    const std::string fake = "trap 'exit 75' TERM\nsleep 0.05\nkill -TERM 0\nsleep 5\nexit 3\n";
    int right = 0;
    std::string wrong;
    for (int i = 0; i < 15; ++i) {
      const auto r = box.run(script, fake);
      if (r.exit_code == 75 && r.output.find("task 1 restart 0 exit 75") != std::string::npos)
        ++right;
      else
        wrong = "exit code " + std::to_string(r.exit_code) + ":\n" + r.output;
    }
    INFO(script << "\n" << wrong);
    CHECK(right == 15);
    // A requeue (TERM, not the time-limit warning) leaves the requeueing to Slurm.
    CHECK_FALSE(fs::exists(box.dir / "scontrol.log"));
    // The status file is removed.
    for (const auto& e : fs::directory_iterator(box.dir))
      CHECK(e.path().filename().string().rfind("studio-rc.", 0) != 0);
  }
}

TEST_CASE("sbatch scripts: the time-limit warning stops studio and requeues the task",
          "[slurm][unit]") {
  Sandbox box("sbatch_timelimit");
  // USR1 reaches only the batch shell (--signal=B:USR1; here the session leader): the script must
  // forward TERM to studio.
  const std::string fake =
      "trap 'echo studio got TERM; exit 75' TERM\n"
      "sleep 0.05\nkill -USR1 \"$(ps -o sid= -p $$ | tr -d ' ')\"\n"
      "i=0; while [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\nexit 3\n";
  const auto r = box.run("studio-array.sbatch", fake);
  INFO(r.output);
  CHECK(r.exit_code == 75);
  CHECK(r.output.find("studio got TERM") != std::string::npos);
  CHECK(r.output.find("task 1 restart 0 exit 75") != std::string::npos);
  CHECK(box.scontrol_log() == "requeue 42\n");
}

TEST_CASE("sbatch scripts pass studio's other exit codes through", "[slurm][unit]") {
  Sandbox box("sbatch_exit");
  for (const auto& [body, code] : std::vector<std::pair<std::string, int>>{
           {"exit 0\n", 0}, {"exit 1\n", 1}, {"kill -KILL $$\n", 137}}) {
    const auto r = box.run("studio-array.sbatch", body);
    INFO(body << r.output);
    CHECK(r.exit_code == code);
    CHECK(r.output.find("exit " + std::to_string(code)) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(box.dir / "scontrol.log"));
}
