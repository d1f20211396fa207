// `studio bench run`: memory of the batch runner as a job grows. Generates jobs of N items (say
// 100 and 1,000) for the tiny models, runs each with `studio run` in a child process, samples the
// child's resident memory while it works, and reports peak RSS per job size against the smallest
// job measured in the same run: a bounded flow graph keeps the ratio near 1 however large the job.
// With --checkpoints it runs ONE job of the largest size instead and follows it (every ~200 ms:
// RSS, fds, threads, finished items), reporting memory, fds, threads and throughput at each
// checkpoint against the first: the load test of a long job (issue #11).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "pipeline/bench_run_probe.h"
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
  std::string checkpoints;  // "": the job-size comparison; else one job, followed (progress mode)
  int sample_ms = 200;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ','))
    if (!part.empty()) out.push_back(part);
  return out;
}

// The asset kinds of --make ("both" is caption,visual).
std::vector<std::string> make_kinds(const std::string& make) {
  if (make == "both") return {"caption", "visual"};
  return split_list(make);
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
  const auto kinds = make_kinds(o.make);
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

// Starts `studio run JOB` (this executable) in a child process, its output going to `log`.
pid_t spawn_studio_run(const BenchRunOptions& o, const fs::path& job_file, const fs::path& presets,
                       const fs::path& log) {
  std::vector<std::string> args = {"studio",
                                   "run",
                                   job_file.string(),
                                   "--presets",
                                   presets.string(),
                                   "--progress",
                                   "none",
                                   "--max-in-flight",
                                   std::to_string(o.max_in_flight)};
  const pid_t pid = fork();
  if (pid < 0) throw IoError("cannot start a child process", "studio bench run");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      if (fd > 2) ::close(fd);  // the child's fd count should not include this one
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  return pid;
}

Measurement run_one(const BenchRunOptions& o, const fs::path& work, const fs::path& presets,
                    int64_t n) {
  const fs::path dir = work / fmt::format("job-{}", n);
  fs::create_directories(dir);
  const fs::path job_file = dir / "job.json";
  const fs::path out_dir = dir / "out";
  write_file_atomic(job_file, make_job(o, n, out_dir).dump(1) + "\n");
  const fs::path log = dir / "studio-run.log";
  const int64_t expected = n * static_cast<int64_t>(make_kinds(o.make).size());

  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = spawn_studio_run(o, job_file, presets, log);

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

// --- progress mode (--checkpoints): one job, followed while it works ---

// One sample of the child: its /proc figures and the finished items at that moment.
struct Sample {
  double t_s = 0;     // since the child was started
  int64_t items = 0;  // finished items (journal records / asset kinds per item)
  ProcSample proc;
};

json sample_json(const Sample& s) {
  return {{"elapsed_s", s.t_s},
          {"items", s.items},
          {"rss_mib", s.proc.rss_kib / 1024.0},
          {"peak_rss_mib", s.proc.hwm_kib / 1024.0},
          {"fds", s.proc.fds},
          {"threads", s.proc.threads}};
}

// Least-squares slope of y over x (0 with fewer than two distinct x).
double slope(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  if (x.size() < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  const double d = n * sxx - sx * sx;
  return d > 0 ? (n * sxy - sx * sy) / d : 0;
}

std::vector<int64_t> parse_checkpoints(const std::string& list, int64_t n) {
  std::vector<int64_t> cps;
  for (const auto& s : split_list(list)) {
    try {
      cps.push_back(std::stoll(s));
    } catch (...) {
      throw UsageError("not a number: " + s, "--checkpoints",
                       "a comma-separated list like 100,1000");
    }
  }
  if (cps.empty()) throw UsageError("no checkpoint given", "--checkpoints");
  std::sort(cps.begin(), cps.end());
  cps.erase(std::unique(cps.begin(), cps.end()), cps.end());
  if (cps.front() < 2)
    throw UsageError("checkpoints must be at least 2", "--checkpoints",
                     "throughput is measured from the first finished item on");
  if (cps.back() > n)
    throw UsageError(fmt::format("checkpoint {} is beyond the job's {} items", cps.back(), n),
                     "--checkpoints", "pass --items at least as large as the last checkpoint");
  return cps;
}

int run_progress(const BenchRunOptions& o, const fs::path& work, const fs::path& presets, int64_t n,
                 const std::vector<int64_t>& cps) {
  const fs::path dir = work / fmt::format("job-{}", n);
  fs::create_directories(dir);
  const fs::path job_file = dir / "job.json";
  const fs::path out_dir = dir / "out";
  write_file_atomic(job_file, make_job(o, n, out_dir).dump(1) + "\n");
  const fs::path log = dir / "studio-run.log";
  const int64_t kinds = static_cast<int64_t>(make_kinds(o.make).size());

  std::cerr << fmt::format("studio bench run: one job of {} items, checkpoints {} ...", n,
                           o.checkpoints)
            << std::endl;
  const auto t0 = std::chrono::steady_clock::now();
  const double wall0 =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const pid_t pid = spawn_studio_run(o, job_file, presets, log);
  auto since_start = [&t0] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  JournalLineCounter journal(out_dir / "journal");
  std::vector<Sample> samples;  // every valid sample, in order
  std::optional<Sample> before;
  std::vector<std::optional<Sample>> at_cp(cps.size());
  int status = 0;
  struct rusage ru {};
  for (;;) {
    const pid_t r = wait4(pid, &status, WNOHANG, &ru);
    if (r == pid) break;
    if (r < 0) throw IoError("lost the studio run child", "studio bench run");
    Sample s;
    journal.poll();
    // The journal first: an item counted here was finished before the /proc sample is taken.
    s.items = journal.items() / kinds;
    if (sample_process(pid, &s.proc)) {
      s.t_s = since_start();
      samples.push_back(s);
      if (!before && s.items >= 1) before = s;
      for (std::size_t k = 0; k < cps.size(); ++k)
        if (!at_cp[k] && s.items >= cps[k]) {
          at_cp[k] = s;
          std::cerr << fmt::format(
                           "studio bench run: {} items at {:.1f} s: RSS {:.1f} MiB (peak {:.1f}), "
                           "{} fds, {} threads",
                           cps[k], s.t_s, s.proc.rss_kib / 1024.0, s.proc.hwm_kib / 1024.0,
                           s.proc.fds, s.proc.threads)
                    << std::endl;
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.sample_ms));
  }
  const double wall_s = since_start();
  journal.poll();
  const int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (exit_code != 0 && exit_code != 1)
    throw IoError(fmt::format("studio run of the {}-item job exited with {}", n, exit_code),
                  log.string(),
                  "read the log; the models must exist (run scripts/quickstart.sh "
                  "once, or pass --image-model/--text-model)");
  const int64_t finished = journal.items() / kinds;
  if (samples.empty() || !before)
    throw IoError("the job ended before a sample after its first finished item was taken",
                  "studio bench run", "pass a smaller --sample-ms or a larger --items");
  const Sample after = samples.back();

  // Checkpoints: /proc figures from the first sample that saw them reached (the last sample when
  // the job ended before the next one), times from the journal records themselves.
  json cp_rows = json::array();
  struct Row {
    int64_t items;
    Sample s;
    bool reached;
    double elapsed_s, seg_items, seg_s, rate;
  };
  std::vector<Row> rows;
  for (std::size_t k = 0; k < cps.size(); ++k) {
    Row row{cps[k], at_cp[k].value_or(after), finished >= cps[k], 0, 0, 0, 0};
    if (row.reached) {
      const int64_t prev = k == 0 ? 1 : cps[k - 1];
      const double t1 = journal.item_time(cps[k] * kinds), t_prev = journal.item_time(prev * kinds);
      row.elapsed_s = t1 - wall0;
      row.seg_items = static_cast<double>(cps[k] - prev);
      row.seg_s = t1 - t_prev;
      row.rate = row.seg_s > 0 ? row.seg_items / row.seg_s : 0;
    }
    rows.push_back(row);
  }
  const Row& first = rows.front();

  // Growth over the run, from the first checkpoint on (model loading and warm-up done): RSS
  // against finished items, and the range of fds and threads between before and after.
  std::vector<double> xs, ys;
  int64_t fd_min = before->proc.fds, fd_max = before->proc.fds;
  int64_t th_min = before->proc.threads, th_max = before->proc.threads;
  for (const auto& s : samples) {
    if (s.items >= 1) {
      fd_min = std::min(fd_min, s.proc.fds);
      fd_max = std::max(fd_max, s.proc.fds);
      th_min = std::min(th_min, s.proc.threads);
      th_max = std::max(th_max, s.proc.threads);
    }
    if (s.items >= cps.front()) {
      xs.push_back(static_cast<double>(s.items));
      ys.push_back(s.proc.rss_kib / 1024.0);
    }
  }
  const double rss_slope_per_1000 = slope(xs, ys) * 1000.0;

  std::cout << fmt::format(
      "studio bench run: one job of {} items, make {} on {} at {}x{} px, bench tier ({} image "
      "steps), max {} in flight, sampled every {} ms\n"
      "  {:>12} {:>9} {:>9} {:>9} {:>9} {:>5} {:>7} {:>9} {:>9} {:>9}\n",
      n, o.make, o.channel, o.size, o.size, o.image_steps, o.max_in_flight, o.sample_ms, "items",
      "elapsed s", "items/s", "RSS MiB", "peak MiB", "fds", "threads", "RSS vs 1", "peak vs 1",
      "rate vs 1");
  std::cout << fmt::format("  {:>12} {:>9.1f} {:>9} {:>9.1f} {:>9.1f} {:>5} {:>7}\n",
                           fmt::format("before ({})", before->items), before->t_s, "-",
                           before->proc.rss_kib / 1024.0, before->proc.hwm_kib / 1024.0,
                           before->proc.fds, before->proc.threads);
  const double base_rss = first.s.proc.rss_kib / 1024.0, base_hwm = first.s.proc.hwm_kib / 1024.0;
  for (const auto& r : rows) {
    const double rss = r.s.proc.rss_kib / 1024.0, hwm = r.s.proc.hwm_kib / 1024.0;
    const double rate_ratio = first.rate > 0 ? r.rate / first.rate : 0;
    std::cout << fmt::format(
        "  {:>12} {:>9.1f} {:>9.2f} {:>9.1f} {:>9.1f} {:>5} {:>7} {:>8.3f}x {:>8.3f}x "
        "{:>8.3f}x{}\n",
        r.items, r.elapsed_s, r.rate, rss, hwm, r.s.proc.fds, r.s.proc.threads, rss / base_rss,
        hwm / base_hwm, rate_ratio, r.reached ? "" : "  (not reached)");
    cp_rows.push_back({{"items", r.items},
                       {"reached", r.reached},
                       {"elapsed_s", r.elapsed_s},
                       {"segment_items", r.seg_items},
                       {"segment_s", r.seg_s},
                       {"items_per_s", r.rate},
                       {"sampled_at_items", r.s.items},
                       {"rss_mib", rss},
                       {"peak_rss_mib", hwm},
                       {"fds", r.s.proc.fds},
                       {"threads", r.s.proc.threads},
                       {"rss_vs_first", rss / base_rss},
                       {"peak_rss_vs_first", hwm / base_hwm},
                       {"items_per_s_vs_first", rate_ratio}});
  }
  std::cout << fmt::format("  {:>12} {:>9.1f} {:>9} {:>9.1f} {:>9.1f} {:>5} {:>7}\n",
                           fmt::format("after ({})", after.items), after.t_s, "-",
                           after.proc.rss_kib / 1024.0, after.proc.hwm_kib / 1024.0, after.proc.fds,
                           after.proc.threads);
  std::cout << fmt::format(
      "  items/s: over the segment since the previous checkpoint (the first: since item 1), from "
      "the journal's times; RSS/fds/threads: the first sample at or past the checkpoint\n"
      "  exit {}, {} items finished ({} failed records) in {:.1f} s, peak RSS {:.1f} MiB; RSS "
      "slope from {} items on: {:+.2f} MiB per 1,000 items; fds {}..{}, threads {}..{}\n",
      exit_code, finished, journal.failed(), wall_s, ru.ru_maxrss / 1024.0, cps.front(),
      rss_slope_per_1000, fd_min, fd_max, th_min, th_max);

  json j{{"benchmark", "run"},
         {"mode", "progress"},
         {"items", n},
         {"make", o.make},
         {"channel", o.channel},
         {"size", o.size},
         {"image_steps", o.image_steps},
         {"max_in_flight", o.max_in_flight},
         {"sample_ms", o.sample_ms},
         {"exit_code", exit_code},
         {"finished_items", finished},
         {"journal_records", journal.items()},
         {"failed_records", journal.failed()},
         {"wall_s", wall_s},
         {"peak_rss_mib", ru.ru_maxrss / 1024.0},
         {"before", sample_json(*before)},
         {"after", sample_json(after)},
         {"checkpoints", cp_rows},
         {"rss_slope_mib_per_1000_items", rss_slope_per_1000},
         {"fds_range", {fd_min, fd_max}},
         {"threads_range", {th_min, th_max}},
         {"samples", samples.size()}};
  std::cout << j.dump() << "\n";
  if (!o.json_out.empty()) {
    // The file also has the samples (at most 500, evenly thinned), for plots.
    json series = json::array();
    const std::size_t step = std::max<std::size_t>(1, (samples.size() + 499) / 500);
    for (std::size_t i = 0; i < samples.size(); i += step)
      series.push_back(sample_json(samples[i]));
    j["series"] = series;
    write_file_atomic(o.json_out, j.dump(2) + "\n");
  }
  return 0;  // failed items (exit 1) are in the figures; the measurement itself worked
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
  for (const auto& k : make_kinds(o.make))
    if (k != "caption" && k != "visual")
      throw UsageError("unknown asset kind: " + k, "--make", "caption, visual, or both");
  // `studio run` fails each item whose model cannot load (the other stage goes on), which would
  // make a benchmark of failures: a missing model folder is refused before anything runs.
  for (const auto& k : make_kinds(o.make)) {
    const bool caption = k == "caption";
    const fs::path dir = caption ? o.text_model : o.image_model;
    if (!fs::is_directory(dir))
      throw UsageError(
          "the " + std::string(caption ? "text" : "image") + " model folder does not exist",
          dir.string(),
          "run scripts/quickstart.sh once (it writes the random-weight starter "
          "models), or pass " +
              std::string(caption ? "--text-model" : "--image-model"));
  }
  if (o.image_steps < 1) throw UsageError("steps must be at least 1", "--image-steps");
  if (o.size < 8 || o.size % 8 != 0)
    throw UsageError("size must be a positive multiple of 8", "--size");
  std::vector<int64_t> cps;
  if (!o.checkpoints.empty()) {
    cps = parse_checkpoints(o.checkpoints, sizes.back());
    if (o.sample_ms < 1)
      throw UsageError("the sampling interval must be at least 1 ms", "--sample-ms");
  }

  fs::path work = o.work_dir;
  bool remove_work = false;
  if (work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "studio-bench-run-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw IoError("cannot make a temporary folder", tmpl);
    work = tmpl;
    remove_work = !o.keep;
  }
  fs::create_directories(work);
  // Absolute: the job's "output" is resolved against the job file's folder, not this one's.
  work = fs::absolute(work);
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

  if (!o.checkpoints.empty()) {
    const int rc = run_progress(o, work, presets, sizes.back(), cps);
    if (remove_work) fs::remove_all(work);
    return rc;
  }

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
  cmd->add_option("--make", o->make,
                  "asset kinds per item: visual, caption, or caption,visual (= both)");
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
  cmd->add_option("--checkpoints", o->checkpoints,
                  "one job of the largest --items, followed: report RSS, fds, threads and items/s "
                  "when this many items are finished (comma-separated, e.g. 100,1000,10000)");
  cmd->add_option("--sample-ms", o->sample_ms,
                  "with --checkpoints: sample the child every this many ms (default 200)");
  cmd->callback([action, o] { *action = [o] { return run_bench_run(*o); }; });
}

}  // namespace studio
