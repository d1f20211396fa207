// `studio bench run`: memory of the batch runner as a job grows. Generates jobs of N items (say
// 100 and 1,000) for the tiny models, runs each with `studio run` in a child process, samples the
// child's resident memory while it works, and reports peak RSS per job size against the smallest
// job measured in the same run: a bounded flow graph keeps the ratio near 1 however large the job.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "pipeline/commands.h"
#include "pipeline/presets.h"

namespace studio {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct BenchRunOptions {
  std::string items = "100,1000";
  std::string make = "visual";
  std::string image_model = "models/starter-tiny-random";
  std::string text_model = "models/llada-starter-tiny-random";
  std::string channel = "instagram-square";
  int image_steps = 2;
  int size = 128;  // visual width and height (the channel's own size would time the model)
  int64_t max_in_flight = 4;
  std::string work_dir;  // "": a fresh temporary folder, removed afterwards
  bool keep = false;
  std::string json_out;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ','))
    if (!part.empty()) out.push_back(part);
  return out;
}

// Resident set size of a live process (KiB), 0 when it is gone.
int64_t rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return 0;
}

int64_t count_lines(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return 0;
  return std::count(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>(), '\n');
}

// The job: `n` items, each making `make` for one channel with seed 0, under the "bench" tier.
json make_job(const BenchRunOptions& o, int64_t n, const fs::path& out_dir) {
  json items = json::array();
  for (int64_t i = 0; i < n; ++i)
    items.push_back({{"id", fmt::format("SKU-{:05d}", i)},
                     {"name", fmt::format("Product {}", i)},
                     {"facts", {fmt::format("size {}", i % 7 + 1), "recycled materials"}}});
  json models = json::object();
  const auto kinds = split_list(o.make);
  if (std::find(kinds.begin(), kinds.end(), "caption") != kinds.end())
    models["text"] = fs::absolute(o.text_model).string();
  if (std::find(kinds.begin(), kinds.end(), "visual") != kinds.end())
    models["image"] = fs::absolute(o.image_model).string();
  return {{"studio_job", 1},
          {"name", fmt::format("bench-{}", n)},
          {"output", out_dir.string()},
          {"models", models},
          {"tier", "bench"},
          {"presets", {{o.channel, {{"visual", {{"width", o.size}, {"height", o.size}}}}}}},
          {"defaults", {{"channels", {o.channel}}, {"make", kinds}, {"seeds", {0}}}},
          {"items", items}};
}

struct Measurement {
  int64_t items = 0;
  int exit_code = -1;
  double wall_s = 0;
  int64_t journal_lines = 0;
  double peak_rss_mib = 0;   // the child's ru_maxrss
  double rss_at_10_mib = 0;  // sampled when 10 % / 50 % / 90 % of the journal lines were written
  double rss_at_50_mib = 0;
  double rss_at_90_mib = 0;
  int samples = 0;
};

Measurement run_one(const BenchRunOptions& o, const fs::path& work, const fs::path& presets,
                    int64_t n) {
  const fs::path dir = work / fmt::format("job-{}", n);
  fs::create_directories(dir);
  const fs::path job_file = dir / "job.json";
  const fs::path out_dir = dir / "out";
  write_file_atomic(job_file, make_job(o, n, out_dir).dump(1) + "\n");
  const fs::path log = dir / "studio-run.log";
  const int64_t expected = n * static_cast<int64_t>(split_list(o.make).size());

  std::vector<std::string> args = {"studio",
                                   "run",
                                   job_file.string(),
                                   "--presets",
                                   presets.string(),
                                   "--progress",
                                   "none",
                                   "--max-in-flight",
                                   std::to_string(o.max_in_flight)};
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw IoError("cannot start a child process", "studio bench run");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }

  Measurement m;
  m.items = n;
  const fs::path journal = out_dir / "journal" / "0-of-1.jsonl";
  int status = 0;
  struct rusage ru {};
  int64_t polls = 0;
  for (;;) {
    const pid_t r = wait4(pid, &status, WNOHANG, &ru);
    if (r == pid) break;
    const int64_t rss = rss_kib(pid);
    // Counting journal lines costs a read of the file: every 4th poll is enough for milestones.
    if (polls++ % 4 == 0 && rss > 0) {
      const int64_t lines = count_lines(journal);
      const double mib = static_cast<double>(rss) / 1024.0;
      if (m.rss_at_10_mib == 0 && lines * 10 >= expected && lines > 0) m.rss_at_10_mib = mib;
      if (m.rss_at_50_mib == 0 && lines * 2 >= expected) m.rss_at_50_mib = mib;
      if (m.rss_at_90_mib == 0 && lines * 10 >= expected * 9) m.rss_at_90_mib = mib;
      ++m.samples;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m.peak_rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  m.journal_lines = count_lines(journal);
  if (m.exit_code != 0 && m.exit_code != 1)
    throw IoError(fmt::format("studio run of the {}-item job exited with {}", n, m.exit_code),
                  log.string(),
                  "read the log; the models must exist (run scripts/quickstart.sh "
                  "once, or pass --image-model/--text-model)");
  return m;
}

int run_bench_run(const BenchRunOptions& o) {
  std::vector<int64_t> sizes;
  for (const auto& s : split_list(o.items)) {
    try {
      sizes.push_back(std::stoll(s));
    } catch (...) {
      throw UsageError("not a number: " + s, "--items", "a comma-separated list like 100,1000");
    }
    if (sizes.back() < 1) throw UsageError("job sizes must be at least 1", "--items");
  }
  if (sizes.empty()) throw UsageError("no job size given", "--items");
  std::sort(sizes.begin(), sizes.end());
  for (const auto& k : split_list(o.make))
    if (k != "caption" && k != "visual")
      throw UsageError("unknown asset kind: " + k, "--make", "caption and/or visual");
  if (o.image_steps < 1) throw UsageError("steps must be at least 1", "--image-steps");
  if (o.size < 8 || o.size % 8 != 0)
    throw UsageError("size must be a positive multiple of 8", "--size");

  fs::path work = o.work_dir;
  bool remove_work = false;
  if (work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "studio-bench-run-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw IoError("cannot make a temporary folder", tmpl);
    work = tmpl;
    remove_work = !o.keep;
  }
  fs::create_directories(work);
  // The shipped presets plus a "bench" tier: few image steps and one caption draft, so a
  // 1,000-item job measures the runner's memory, not the models' time.
  const fs::path presets = work / "presets";
  fs::remove_all(presets);
  fs::copy(PresetLibrary::find_dir(), presets, fs::copy_options::recursive);
  write_file_atomic(presets / "tiers" / "bench.json",
                    json{{"name", "bench"},
                         {"description", "studio bench run: minimal effort per asset"},
                         {"overlay",
                          {{"caption",
                            {{"steps", 24},
                             {"drafts", 1},
                             {"repair_rounds", 0},
                             {"sampler", "fast-dllm"},
                             {"threshold", 0.9}}},
                           {"visual", {{"steps", o.image_steps}}}}}}
                            .dump(2) +
                        "\n");

  std::vector<Measurement> ms;
  for (int64_t n : sizes) {
    std::cerr << "studio bench run: " << n << " items ..." << std::endl;
    ms.push_back(run_one(o, work, presets, n));
  }
  if (remove_work) fs::remove_all(work);

  const Measurement& base = ms.front();
  json rows = json::array();
  std::cout << fmt::format(
      "studio bench run: make {} on {} at {}x{} px, bench tier ({} image steps), max {} items in "
      "flight\n"
      "  {:>7} {:>6} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>9}\n",
      o.make, o.channel, o.size, o.size, o.image_steps, o.max_in_flight, "items", "exit", "assets",
      "wall s", "RSS@10%", "RSS@50%", "RSS@90%", "peak MiB", "vs base");
  for (const auto& m : ms) {
    const double ratio = m.peak_rss_mib / base.peak_rss_mib;
    std::cout << fmt::format(
        "  {:>7} {:>6} {:>9} {:>9.1f} {:>10.1f} {:>10.1f} {:>10.1f} {:>10.1f} {:>8.3f}x\n", m.items,
        m.exit_code, m.journal_lines, m.wall_s, m.rss_at_10_mib, m.rss_at_50_mib, m.rss_at_90_mib,
        m.peak_rss_mib, ratio);
    rows.push_back({{"items", m.items},
                    {"exit_code", m.exit_code},
                    {"assets", m.journal_lines},
                    {"wall_s", m.wall_s},
                    {"assets_per_s", m.journal_lines / m.wall_s},
                    {"rss_at_10pct_mib", m.rss_at_10_mib},
                    {"rss_at_50pct_mib", m.rss_at_50_mib},
                    {"rss_at_90pct_mib", m.rss_at_90_mib},
                    {"peak_rss_mib", m.peak_rss_mib},
                    {"peak_rss_vs_smallest", ratio},
                    {"rss_samples", m.samples}});
  }
  std::cout << "  baseline: the smallest job in this run; RSS@x% is sampled when x % of the assets"
               " are journaled\n";
  const json j{{"benchmark", "run"},
               {"make", o.make},
               {"channel", o.channel},
               {"size", o.size},
               {"image_steps", o.image_steps},
               {"max_in_flight", o.max_in_flight},
               {"runs", rows}};
  std::cout << j.dump() << "\n";
  if (!o.json_out.empty()) write_file_atomic(o.json_out, j.dump(2) + "\n");
  return 0;
}

}  // namespace

void add_bench_run_command(CLI::App& bench, CommandAction* action) {
  auto* cmd = bench.add_subcommand(
      "run", "Peak memory of `studio run` as the job grows (tiny models; 100 vs 1,000 items)");
  auto o = std::make_shared<BenchRunOptions>();
  cmd->add_option("--items", o->items, "job sizes to run, comma-separated (default 100,1000)");
  cmd->add_option("--make", o->make, "asset kinds per item: visual, caption or caption,visual");
  cmd->add_option("--image-model", o->image_model,
                  "diffusers folder (default models/starter-tiny-random)");
  cmd->add_option("--text-model", o->text_model,
                  "LLaDA folder (default models/llada-starter-tiny-random)");
  cmd->add_option("--channel", o->channel, "channel preset (default instagram-square)");
  cmd->add_option("--size", o->size, "visual width and height in pixels (default 128)");
  cmd->add_option("--image-steps", o->image_steps, "denoising steps per visual (default 2)");
  cmd->add_option("--max-in-flight", o->max_in_flight, "studio run --max-in-flight (default 4)");
  cmd->add_option("--work", o->work_dir, "keep the generated jobs and outputs in this folder");
  cmd->add_flag("--keep", o->keep, "keep the temporary folder");
  cmd->add_option("--json", o->json_out, "also write the JSON result to this file");
  cmd->callback([action, o] { *action = [o] { return run_bench_run(*o); }; });
}

}  // namespace studio
