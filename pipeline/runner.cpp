#include "pipeline/runner.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <tbb/flow_graph.h>
#include <torch/torch.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <mutex>
#include <thread>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json_file.h"
#include "core/model_manifest.h"
#include "core/path_confine.h"
#ifdef STUDIO_HAVE_IMAGE
#include "image/image_io.h"
#include "image/image_metadata.h"
#include "image/photo_edit.h"
#include "image/sd_batch.h"
#include "image/sd_pipeline.h"
#endif
#include "pipeline/cli.h"
#include "pipeline/job_spec.h"
#include "pipeline/journal.h"
#include "pipeline/kpi.h"
#include "pipeline/plan.h"
#include "pipeline/revision.h"
#include "pipeline/run_progress.h"
#include "text/copywriter.h"
#include "text/text_model.h"

namespace fs = std::filesystem;

namespace studio {
namespace {

std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int sig) { g_signal.store(sig); }

// The first storage failure of the run (disk full, file-size limit, read-only folder): intake
// stops as on a signal, and items that hit it are not journalled (a resume makes them).
std::atomic<bool> g_storage_stop{false};
std::mutex g_storage_mutex;
std::string g_storage_error;

void note_storage_failure(const StorageError& ex) {
  std::lock_guard<std::mutex> lock(g_storage_mutex);
  if (!g_storage_stop.exchange(true)) g_storage_error = std::string(ex.kind()) + ": " + ex.what();
}

// Installs SIGTERM/SIGINT handlers for the run and restores the previous ones after.
class SignalScope {
 public:
  SignalScope() {
    g_signal.store(0);
    g_storage_stop.store(false);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term_);
    sigaction(SIGINT, &sa, &old_int_);
  }
  ~SignalScope() {
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
  }

 private:
  struct sigaction old_term_ {
  }, old_int_{};
};

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_maxrss) * 1024;
}

// One work item travelling through the graph.
struct Task {
  const WorkItem* item = nullptr;
  size_t seq = 0;  // emission order (the sequencer restores it before the journal)
  int64_t attempt = 1;
  bool failed = false;
  bool storage_failed = false;  // failed on the storage, not on the item: not journalled
  std::string failed_stage, error;
  double t_admitted = 0;  // entered the graph
  double t_ready = 0;     // previous stage finished (queue wait of the next = start - ready)
  std::vector<StageEvent> events;
  // Results.
  std::string text;        // caption
  at::Tensor image;        // visual: HWC [0, 1]
  nlohmann::json sidecar;  // provenance
  std::string parameters;  // visual: A1111 infotext
  // Review previews written beside the run (previews/<output stem>.<name>.png): an edit's photo
  // and product mask fitted like the asset, for the review page's before/after and mask overlay.
  std::vector<std::pair<std::string, at::Tensor>> previews;
  JournalRecord record;
};

// Per-shard selection by the work item id: stable whatever the order or the other shards.
bool in_shard(const std::string& id, int64_t index, int64_t count) {
  if (count <= 1) return true;
  const uint64_t h = std::stoull(id.substr(0, 15), nullptr, 16);
  return int64_t(h % uint64_t(count)) == index;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoll(v);
  } catch (...) {
    throw UsageError(std::string("environment variable ") + name + " is not an integer: '" + v +
                     "'");
  }
}

void resolve_shard(RunOptions& o) {
  if (o.shard_count > 0) {
    if (o.shard_index < 0 || o.shard_index >= o.shard_count)
      throw UsageError("shard " + std::to_string(o.shard_index) + " is outside 0.." +
                           std::to_string(o.shard_count - 1),
                       "--shard", "use --shard I/N with 0 <= I < N");
    return;
  }
  if (std::getenv("SLURM_ARRAY_TASK_ID") && std::getenv("SLURM_ARRAY_TASK_COUNT")) {
    o.shard_count = env_int("SLURM_ARRAY_TASK_COUNT", 1);
    o.shard_index = env_int("SLURM_ARRAY_TASK_ID", 0) - env_int("SLURM_ARRAY_TASK_MIN", 0);
  } else if (std::getenv("JOB_COMPLETION_INDEX")) {
    o.shard_index = env_int("JOB_COMPLETION_INDEX", 0);
    o.shard_count = env_int("STUDIO_SHARDS", 0);
    if (o.shard_count <= 0)
      throw UsageError("JOB_COMPLETION_INDEX is set but STUDIO_SHARDS is not", "",
                       "set STUDIO_SHARDS to the Indexed Job's completions, or pass --shard I/N");
  } else {
    o.shard_index = 0;
    o.shard_count = 1;
  }
  if (o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw UsageError("shard " + std::to_string(o.shard_index) + " from the environment is " +
                     "outside 0.." + std::to_string(o.shard_count - 1));
}

// The models, loaded on first use (a job without captions never loads the text model). A load
// failure is kept and fails every work item of that stage with the same reason.
class Models {
 public:
  Models(const JobSpec& job, const RunOptions& o) : job_(job), o_(o) {}

  TextModel& text() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (text_error_) std::rethrow_exception(text_error_);
    if (!text_) {
      try {
        if (job_.text_model_path.empty())
          throw ConfigError("the job makes captions but names no text model", job_.file.string(),
                            "set \"models\": {\"text\": DIR}");
        if (!job_.text_model_sha256.empty())
          require_folder_digest(job_.text_model_path, job_.text_model_sha256,
                                "models.text_sha256 of " + job_.file.string());
        text_ =
            std::make_unique<TextModel>(TextModel::load(job_.text_model_path, o_.device, o_.dtype));
        text_sha_ = text_->weight_file().empty() ? "" : sha256_file_hex(text_->weight_file());
      } catch (...) {
        text_error_ = std::current_exception();
        throw;
      }
    }
    return *text_;
  }
#ifdef STUDIO_HAVE_IMAGE
  image::SdPipeline& image() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (image_error_) std::rethrow_exception(image_error_);
    if (!image_) {
      try {
        if (job_.image_model_path.empty())
          throw ConfigError("the job makes visuals but names no image model", job_.file.string(),
                            "set \"models\": {\"image\": DIR}");
        if (!job_.image_model_sha256.empty())
          require_folder_digest(job_.image_model_path, job_.image_model_sha256,
                                "models.image_sha256 of " + job_.file.string());
        image_ = image::SdPipeline::load(job_.image_model_path, o_.device, o_.dtype);
        const auto& unet = find_component(image_->checkpoint(), "unet");
        unet_sha_ = sha256_file_hex(unet.weight_files.at(0));
      } catch (...) {
        image_error_ = std::current_exception();
        throw;
      }
    }
    return *image_;
  }
#endif
  const std::string& text_sha() const { return text_sha_; }
  const std::string& unet_sha() const { return unet_sha_; }

 private:
  const JobSpec& job_;
  const RunOptions& o_;
  std::mutex mutex_;
  std::unique_ptr<TextModel> text_;
#ifdef STUDIO_HAVE_IMAGE
  std::unique_ptr<image::SdPipeline> image_;
#endif
  std::exception_ptr text_error_, image_error_;
  std::string text_sha_, unet_sha_;
};

StageEvent base_event(const Task& t, const std::string& stage) {
  StageEvent e;
  const WorkItem& w = *t.item;
  e.work_id = w.id;
  e.item = w.item_id;
  e.kind = w.kind;
  e.channel = w.channel;
  e.variant = w.variant;
  e.seed = w.seed;
  e.stage = stage;
  e.attempt = t.attempt;
  e.revision = w.revision;
  e.base_work_id = w.base_work_id;
  return e;
}

// Runs `body` as stage `stage` of `t` unless it failed earlier: timing, the ledger event and
// the failure (any exception) are recorded here, so one item's failure never stops the others.
template <typename Body>
void run_stage(Task& t, const std::string& stage, bool gpu, Body&& body) {
  if (t.failed) return;
  StageEvent e = base_event(t, stage);
  e.t_start = unix_time_now();
  e.queue_wait_s = std::max(0.0, e.t_start - t.t_ready);
  try {
    body(e);
  } catch (const StorageError& ex) {
    e.status = "failed";
    e.error = std::string(ex.kind()) + ": " + ex.what();
    t.storage_failed = true;
    note_storage_failure(ex);
  } catch (const Error& ex) {
    e.status = "failed";
    e.error = std::string(ex.kind()) + ": " + ex.what();
  } catch (const std::exception& ex) {
    e.status = "failed";
    e.error = std::string("internal error: ") + ex.what();
  }
  e.t_end = unix_time_now();
  e.compute_s = e.t_end - e.t_start;
  if (gpu) e.gpu_s = e.compute_s;
  e.peak_mem_bytes = peak_rss_bytes();
  t.t_ready = e.t_end;
  if (e.status == "failed") {
    t.failed = true;
    t.failed_stage = stage;
    t.error = e.error;
  }
  t.events.push_back(std::move(e));
}

CopyBrief brief_of(const WorkItem& w) {
  CopyBrief b;
  b.product = w.name;
  b.facts = w.facts;
  b.brand = w.brand;
  b.tone = w.tone;
  b.language = w.language.empty() ? "en" : w.language;
  return b;
}

[[maybe_unused]] std::string a1111_sampler_name(const std::string& alias) {
  if (alias == "ddim") return "DDIM";
  if (alias == "ddpm") return "DDPM";
  if (alias == "euler") return "Euler";
  if (alias == "euler_a") return "Euler a";
  if (alias == "dpmpp_2m" || alias == "dpmpp_2m_karras") return "DPM++ 2M";
  return alias;
}

// A revision's seed: a rejected asset is made again with seed + 1000 x revision (a fresh attempt
// that no other seed of a job with fewer than 1000 seeds per item uses).
uint64_t revision_seed(const WorkItem& w) { return uint64_t(w.seed) + 1000 * uint64_t(w.revision); }

// The reviewed output a revision starts from (captions: its text without the final newline).
std::string read_revision_source(const fs::path& run_dir, const WorkItem& w) {
  const fs::path file = run_dir / w.revision_source;
  std::string text = read_file_bytes(
      file, "the reviewed output is gone: run the job with --resume to make it again");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// The prompt the reviewed output was made with (its sidecar's edit or image prompt), so notes
// of successive revisions add up; the work item's own prompt when the sidecar is missing.
[[maybe_unused]] std::string revision_source_prompt(const fs::path& run_dir, const WorkItem& w) {
  const fs::path side = run_dir / fs::path(w.revision_source.string() + ".json");
  if (!fs::exists(side)) return w.prompt;
  const nlohmann::json j = read_json_file(side);
  for (const char* k : {"edit", "image"})
    if (j.contains(k) && j[k].is_object() && j[k].contains("prompt") && j[k]["prompt"].is_string())
      return j[k]["prompt"].get<std::string>();
  return w.prompt;
}

// A revised prompt: the reviewed output's prompt (revision_source_prompt) with the reviewer's
// note appended.
[[maybe_unused]] std::string revised_prompt(const std::string& source_prompt, const WorkItem& w) {
  return w.revision_note.empty() ? source_prompt : source_prompt + ", " + w.revision_note;
}

nlohmann::json revision_json(const WorkItem& w) {
  return {{"revision", w.revision},
          {"base_work_id", w.base_work_id},
          {"verdict", w.revision_verdict},
          {"note", w.revision_note},
          {"source", w.revision_source.generic_string()}};
}

// Temporary files a killed write left beside OUTPUT, its sidecar and its review previews
// (AtomicFile's "<name>.tmp-<pid>-<n>"). Only this shard writes these outputs, so whatever matches
// is stale and goes before the item is made again.
void remove_stale_temp_files(const fs::path& run_dir, const fs::path& output) {
  const std::string name = output.filename().string();
  const std::string stem = output.stem().string();
  auto sweep = [](const fs::path& dir, const std::function<bool(const std::string&)>& stale) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string f = it->path().filename().string();
      if (f.find(".tmp-") != std::string::npos && stale(f)) fs::remove(it->path(), ec);
    }
  };
  sweep((run_dir / output).parent_path(), [&](const std::string& f) {
    return f.rfind(name + ".tmp-", 0) == 0 || f.rfind(name + ".json.tmp-", 0) == 0;
  });
  sweep((run_dir / "previews" / output).parent_path(),
        [&](const std::string& f) { return f.rfind(stem + ".", 0) == 0; });
}

// STUDIO_TEST_KILL="<point>:<n>": SIGKILL at the n-th pass through `point` (crash drills).
void kill_point(const char* point, int64_t n) {
  static const char* spec = std::getenv("STUDIO_TEST_KILL");
  if (!spec) return;
  const std::string s(spec);
  const size_t colon = s.find(':');
  if (colon == std::string::npos || s.compare(0, colon, point) != 0) return;
  if (std::atoll(s.c_str() + colon + 1) == n) ::raise(SIGKILL);
}

}  // namespace

int run_job(const RunOptions& options) {
  RunOptions o = options;
  resolve_shard(o);
  if (o.max_in_flight < 1)
    throw UsageError("--max-in-flight must be at least 1", "--max-in-flight");
  if (o.image_batch < 1) throw UsageError("--image-batch must be at least 1", "--image-batch");
  const PresetLibrary presets = PresetLibrary::find(o.presets_dir);
  const JobSpec job = load_job(o.job_file, presets);
  Plan plan = make_plan(job);
  const fs::path run_dir = plan.output_dir;
  const std::string shard = std::to_string(o.shard_index) + "-of-" + std::to_string(o.shard_count);
  const std::string run_id =
      std::getenv("STUDIO_RUN_ID")
          ? std::string(std::getenv("STUDIO_RUN_ID"))
          : sha256_hex(job.name + "\n" + fs::absolute(run_dir).string()).substr(0, 12);

  const fs::path journal_file = run_dir / "journal" / (shard + ".jsonl");
  const bool resuming = fs::exists(journal_file);
  if (o.revise) {
    if (o.resume)
      throw UsageError("--revise and --resume do not go together", "--revise",
                       "a revision round resumes by running --revise again");
    if (!fs::exists(run_dir / "journal"))
      throw UsageError("there is no run of this job to revise in " + run_dir.string(), o.job_file,
                       "run the job first, review it (studio review), then --revise");
    RevisionPlan rp = plan_revisions(plan, run_dir);
    for (const auto& w : rp.warnings) std::cerr << "studio run: warning: " << w << "\n";
    std::cerr << fmt::format(
        "studio run {}: revision round: {} asset(s) reviewed, {} accepted, {} sent back ({} "
        "waiting for the review of their last revision)\n",
        job.name, rp.reviewed, rp.accepted, rp.items.size() + rp.already_revised,
        rp.already_revised);
    plan.items = std::move(rp.items);
  } else if (resuming && !o.resume)
    throw UsageError(
        "this output folder already holds a run of the job (" + journal_file.string() + ")",
        run_dir.string(),
        "pass --resume to continue it (finished assets are kept), or set another "
        "\"output\" in the job");
  fs::create_directories(run_dir);
  Journal journal(run_dir, shard);
  for (const auto& w : journal.warnings()) std::cerr << "studio run: warning: " << w << "\n";
  LedgerWriter ledger(run_dir, shard, run_id);

  // run.json: what `studio kpi report` needs (written by shard 0, identical from every shard).
  {
    nlohmann::json kpi = {{"gpu_price_per_hour", job.kpi.gpu_price_per_hour},
                          {"cpu_price_per_hour", job.kpi.cpu_price_per_hour},
                          {"manual_price_per_hour", job.kpi.manual_price_per_hour},
                          {"manual_minutes", job.kpi.manual_minutes},
                          {"review_minutes", job.kpi.review_minutes}};
    nlohmann::json rj = {{"run_id", run_id},
                         {"job_name", job.name},
                         {"job_file", fs::absolute(job.file).string()},
                         {"kpi", kpi},
                         {"shards", o.shard_count},
                         {"studio_version", STUDIO_VERSION}};
    write_file_atomic(run_dir / "run.json", rj.dump(2) + "\n");
  }

  // The shard's work and what is already safely on disk.
  std::vector<Task> tasks;
  size_t skipped = 0, in_shard_total = 0;
  for (const WorkItem& w : plan.items) {
    if (!in_shard(w.id, o.shard_index, o.shard_count)) continue;
    ++in_shard_total;
    std::string why;
    if (journal.done_and_verified(w.id, &why)) {
      ++skipped;
      continue;
    }
    if (journal.done(w.id))
      std::cerr << "studio run: redoing " << w.id << " (" << w.output.string() << "): " << why
                << "\n";
    if (resuming) remove_stale_temp_files(run_dir, w.output);  // a fresh run has none
    Task t;
    t.item = &w;
    t.attempt = journal.attempts(w.id) + 1;
    tasks.push_back(std::move(t));
  }
  for (size_t i = 0; i < tasks.size(); ++i) tasks[i].seq = i;

  RunEvent start;
  start.event = resuming && !o.revise ? "resumed" : "start";
  start.restart_count = env_int("SLURM_RESTART_COUNT", 0);
  start.items_total = int64_t(in_shard_total);
  ledger.write(start);

  RunProgress progress(o.progress, int64_t(tasks.size()), int64_t(skipped));
  std::cerr << fmt::format(
      "studio run {}: {} work item(s) in shard {}, {} already done, {} to make\n", job.name,
      in_shard_total, shard, skipped, tasks.size());

  Models models(job, o);
  const bool gpu = select_device(o.device).is_cuda();  // GPU seconds are counted for GPU stages
  std::mutex device_mutex;                             // GPU stages run one at a time per device
  SignalScope signals;
  std::atomic<bool> stopping{false};
  std::atomic<int64_t> recorded{0}, written{0};
  size_t failures = 0;
  size_t storage_unrecorded = 0;  // items stopped by a storage failure (made again on resume)
  // Visuals waiting for the image stage when batching (--image-batch > 1): the text node queues
  // each one and sends the image node a token (a null Task*); on each token the image node takes
  // the oldest waiting visual and up to image_batch - 1 compatible ones. Every visual has its own
  // token, so none is left behind; tokens whose visuals were already taken make nothing.
  const bool batching = o.image_batch > 1;
  std::mutex visual_mutex;
  std::deque<Task*> visual_queue;

  // A watchdog: after a stop signal, in-flight items get grace_seconds, then the process exits
  // with what the journal holds (every finished item was fsynced when it finished).
  std::atomic<bool> graph_done{false};
  std::thread watchdog([&] {
    while (!graph_done.load()) {
      if (g_signal.load() != 0 && !stopping.exchange(true)) {
        std::cerr << "\nstudio run: signal " << g_signal.load()
                  << ": no new work; finishing the items in flight (up to " << o.grace_seconds
                  << " s)\n";
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::duration<double>(o.grace_seconds);
        while (!graph_done.load() && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (!graph_done.load()) {
          RunEvent ev;
          ev.event = "interrupted";
          ledger.write(ev);
          ledger.flush();
          std::cerr << "studio run: grace period over; exiting with the journal as it is\n";
          std::_Exit(kExitInterrupted);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  using namespace tbb::flow;
  graph g;
  size_t next = 0;
  input_node<Task*> source(g, [&](tbb::flow_control& fc) -> Task* {
    if (g_signal.load() != 0 || g_storage_stop.load() || next >= tasks.size()) {
      fc.stop();
      return nullptr;
    }
    Task* t = &tasks[next++];
    t->t_admitted = t->t_ready = unix_time_now();
    return t;
  });
  limiter_node<Task*> limiter(g, size_t(o.max_in_flight));

  // decode: inputs present and readable (parallel, CPU).
  function_node<Task*, Task*> decode(g, unlimited, [&](Task* t) {
    run_stage(*t, "decode", false, [&](StageEvent&) {
      if (!t->item->input_error.empty())
        throw IoError(t->item->input_error, t->item->item_id,
                      "fix the input and run with --resume");
    });
    progress.stage_done("decode", t->failed);
    return t;
  });

  // text: captions with the copywriter (serial: one model call at a time per device).
  function_node<Task*, Task*> text(g, serial, [&](Task* t) -> Task* {
    if (batching && t->item->kind == "visual" && t->item->revision == 0 && !t->failed) {
      std::lock_guard<std::mutex> lock(visual_mutex);
      visual_queue.push_back(t);
      return nullptr;  // the token
    }
    if (t->item->kind != "caption") return t;
    run_stage(*t, "text", gpu, [&](StageEvent& e) {
      std::lock_guard<std::mutex> lock(device_mutex);
      TextModel& m = models.text();
      const WorkItem& w = *t->item;
      CopyPreset preset = CopyPreset::from_json(
          w.preset, w.channel, presets.channel_file(w.channel).string(), "/caption");
      preset.instruction = w.instruction;
      CopyOptions co;
      co.seed = uint64_t(w.seed);
      CopyResult r;
      if (w.revision > 0) {
        // A rejected caption is written again with a new seed; a revised one is rewritten from
        // the reviewed text under the reviewer's note (revise_copy).
        co.seed = revision_seed(w);
        const std::string source = read_revision_source(run_dir, w);
        r = w.revision_verdict == "revise"
                ? revise_copy(m, brief_of(w), preset, source, w.revision_note, co)
                : write_copy(m, brief_of(w), preset, co);
        t->sidecar["revision"] = revision_json(w);
        t->sidecar["revision"]["source_text"] = source;
        t->sidecar["revision"]["seed"] = co.seed;
      } else {
        r = write_copy(m, brief_of(w), preset, co);
      }
      int64_t tokens = 0;
      bool first_pass = false;
      double ttft = r.ttft_seconds, tpot = 0;
      if (r.best >= 0) {
        const CaptionRecord& b = r.drafts[size_t(r.best)];
        tokens = b.tokens;
        tpot = b.tpot_seconds;
      }
      for (const auto& d : r.drafts) first_pass = first_pass || d.first_pass;
      e.nfe = r.nfe;
      e.steps = r.nfe;
      e.tokens = tokens;
      e.ttft_s = ttft;
      e.tpot_s = tpot;
      e.tokens_per_s = r.seconds > 0 ? double(tokens) / r.seconds : 0;
      e.rounds = r.rounds;
      e.first_pass = first_pass;
      t->sidecar["caption"] = r.to_json();
      t->sidecar["preset"] = preset.to_json();
      t->sidecar["model"] = {{"dir", m.dir().string()},
                             {"weights_sha256", models.text_sha()},
                             {"device", m.device().str()}};
      if (!r.passed)
        throw Error("no draft passed the preset's rules after " + std::to_string(r.rounds) +
                        " repair round(s): " + r.failure,
                    w.channel, "loosen the preset's rules or raise repair_rounds");
      t->text = r.text;
    });
    progress.stage_done("text", t->failed);
    return t;
  });

#ifdef STUDIO_HAVE_IMAGE
  // A finished edit (an edit work item, or a visual revised by inversion): its image, ledger
  // fields, infotext and sidecar.
  auto finish_edit = [&](Task& t, StageEvent& e, const image::PhotoEditRequest& r,
                         const image::PhotoEditResult& res) {
    t.image = res.output;
    e.nfe = res.unet_calls;
    e.steps = r.steps;
    e.images = 1;
    image::GenerationParams gp;
    gp.prompt = r.prompt;
    gp.negative_prompt = r.negative_prompt;
    gp.steps = r.steps;
    gp.sampler = "DDIM";
    gp.cfg_scale = r.guidance;
    gp.width = int(t.image.size(1));
    gp.height = int(t.image.size(0));
    gp.model_hash = models.unet_sha().substr(0, 10);
    gp.model_name = job.image_model_path.filename().string();
    gp.extra.push_back({"Denoising strength", image::a1111_number(r.strength)});
    gp.extra.push_back({"Inversion", image::inversion_method_name(r.method)});
    gp.extra.push_back({"Source prompt", r.source_prompt});
    gp.extra.push_back({"Version", std::string("studio ") + STUDIO_VERSION});
    t.parameters = image::a1111_parameters(gp);
    t.sidecar["edit"] = res.parameters;
    t.sidecar["model"] = {{"dir", job.image_model_path.string()},
                          {"unet_sha256", models.unet_sha()}};
  };
#endif
  // edit: a product photo edited by inversion (image/photo_edit.h), fitted to the channel.
  auto run_edit_stage = [&](Task& t) {
#ifdef STUDIO_HAVE_IMAGE
    run_stage(t, "image", gpu, [&](StageEvent& e) {
      std::lock_guard<std::mutex> lock(device_mutex);
      image::SdPipeline& pipe = models.image();
      const WorkItem& w = *t.item;
      const nlohmann::json& v = w.preset;
      const nlohmann::json& ed = v.at("edit");
      image::PhotoEditRequest r;
      r.photo = w.photo;
      r.source_prompt = w.source_prompt;
      r.prompt = w.prompt;
      // A revision edits the photo again under the reviewed edit's prompt + the reviewer's note
      // (or reason: an edit has no seed to vary).
      if (w.revision > 0) r.prompt = revised_prompt(revision_source_prompt(run_dir, w), w);
      r.negative_prompt = v.value("negative_prompt", std::string());
      r.method = image::parse_inversion_method(ed.at("inversion").get<std::string>());
      r.steps = v.value("steps", 25);
      r.guidance = v.value("guidance", 7.5);
      r.strength = ed.at("strength").get<double>();
      r.p2p = ed.at("p2p").get<std::string>();
      r.cross_replace = ed.at("cross_replace").get<double>();
      r.self_replace = ed.at("self_replace").get<double>();
      r.mask = w.mask.empty() ? ed.at("mask").get<std::string>() : w.mask.string();
      r.mask_options.grow = ed.at("grow").get<int>();
      r.mask_options.feather = ed.at("feather").get<int>();
      r.fit = image::parse_fit_mode(ed.at("fit").get<std::string>());
      r.outpaint = ed.at("outpaint").get<bool>();
      r.channel_width = v.value("width", 0);
      r.channel_height = v.value("height", 0);
      const image::PhotoEditResult res = image::edit_photo(pipe, r);
      finish_edit(t, e, r, res);
      t.sidecar["photo_sha256"] = w.photo_sha256;
      if (w.revision > 0) t.sidecar["revision"] = revision_json(w);
      // Previews for review: the photo and the product mask fitted as the asset was.
      at::Tensor before = res.photo, mask = res.has_mask ? res.mask.hard : at::Tensor();
      if (res.fitted) {
        const image::ChannelFit f = image::fit_to_channel(res.photo, mask, int(res.output.size(1)),
                                                          int(res.output.size(0)), res.fit.mode);
        before = f.pixels;
        mask = f.mask;
      }
      t.previews.emplace_back("before", before);
      if (mask.defined())
        t.previews.emplace_back("mask", mask.unsqueeze(-1).expand({-1, -1, 3}).contiguous());
    });
#else
    run_stage(t, "image", gpu, [&](StageEvent&) {
      throw ConfigError("this studio was built without the image stage (STUDIO_WITH_IMAGE=OFF)",
                        t.item->item_id, "build with the image stage to edit photos");
    });
#endif
  };

#ifdef STUDIO_HAVE_IMAGE
  // A visual's request from its preset section.
  auto visual_request = [](const WorkItem& w) {
    const nlohmann::json& v = w.preset;
    image::GenerateRequest r;
    r.prompt = w.prompt;
    r.negative_prompt = v.value("negative_prompt", std::string());
    r.seed = uint64_t(w.seed);
    r.steps = v.value("steps", 25);
    r.guidance = v.value("guidance", 7.5);
    r.width = v.value("width", 0);
    r.height = v.value("height", 0);
    r.scheduler = v.value("scheduler", std::string());
    return r;
  };
  // Visuals batch together when their preset sections agree on everything but the per-row
  // settings (negative prompt, seeds) and the edit stage's settings.
  auto batch_key = [](const WorkItem& w) {
    nlohmann::json v = w.preset;
    for (const char* k : {"negative_prompt", "seeds", "edit"}) v.erase(std::string(k));
    return v.dump();
  };
  // A finished visual: its image, ledger fields, infotext and sidecar.
  auto finish_visual = [&](Task& t, StageEvent& e, const image::GenerateRequest& r,
                           const at::Tensor& img, const std::vector<double>& timesteps,
                           const std::string& scheduler_class, int unet_calls, int64_t batch) {
    t.image = img;
    e.nfe = unet_calls;
    e.steps = int64_t(timesteps.size());
    e.images = 1;
    image::GenerationParams gp;
    gp.prompt = r.prompt;
    gp.negative_prompt = r.negative_prompt;
    gp.steps = r.steps;
    gp.sampler = a1111_sampler_name(r.scheduler);
    gp.schedule_type = r.scheduler == "dpmpp_2m_karras" ? "Karras" : "";
    gp.cfg_scale = r.guidance;
    gp.seed = r.seed;
    gp.width = int(t.image.size(1));
    gp.height = int(t.image.size(0));
    gp.model_hash = models.unet_sha().substr(0, 10);
    gp.model_name = job.image_model_path.filename().string();
    gp.extra.push_back({"Version", std::string("studio ") + STUDIO_VERSION});
    t.parameters = image::a1111_parameters(gp);
    t.sidecar["image"] = {{"prompt", r.prompt},
                          {"negative_prompt", r.negative_prompt},
                          {"seed", r.seed},
                          {"steps", r.steps},
                          {"guidance", r.guidance},
                          {"width", gp.width},
                          {"height", gp.height},
                          {"scheduler", scheduler_class},
                          {"scheduler_alias", r.scheduler},
                          {"timesteps", timesteps},
                          {"unet_calls", unet_calls},
                          {"batch", batch}};
    t.sidecar["model"] = {{"dir", job.image_model_path.string()},
                          {"unet_sha256", models.unet_sha()}};
  };
  // A visual's revision: a rejected visual is made again with a new seed; a revised one is
  // re-edited by inversion (the reviewed image inverted under its prompt, regenerated under the
  // prompt + the reviewer's note; no mask: the note may change anything, the inversion keeps the
  // composition).
  auto run_visual_revision = [&](Task& t) {
    run_stage(t, "image", gpu, [&](StageEvent& e) {
      std::lock_guard<std::mutex> lock(device_mutex);
      image::SdPipeline& pipe = models.image();
      const WorkItem& w = *t.item;
      if (w.revision_verdict != "revise") {
        image::GenerateRequest r = visual_request(w);
        r.seed = revision_seed(w);
        const image::GenerateResult res = pipe.generate(r);
        finish_visual(t, e, r, res.images[0], res.timesteps, res.scheduler_class, res.unet_calls,
                      1);
      } else {
        const nlohmann::json& v = w.preset;
        image::PhotoEditRequest r;
        r.photo = run_dir / w.revision_source;
        r.source_prompt = revision_source_prompt(run_dir, w);  // its sidecar, read once
        r.prompt = revised_prompt(r.source_prompt, w);
        r.negative_prompt = v.value("negative_prompt", std::string());
        r.steps = v.value("steps", 25);
        r.guidance = v.value("guidance", 7.5);
        r.mask = "none";
        finish_edit(t, e, r, image::edit_photo(pipe, r));
      }
      t.sidecar["revision"] = revision_json(w);
    });
  };
  // One visual alone (SdPipeline::generate).
  auto run_visual = [&](Task& t) {
    run_stage(t, "image", gpu, [&](StageEvent& e) {
      std::lock_guard<std::mutex> lock(device_mutex);
      image::SdPipeline& pipe = models.image();
      const image::GenerateRequest r = visual_request(*t.item);
      const image::GenerateResult res = pipe.generate(r);
      finish_visual(t, e, r, res.images[0], res.timesteps, res.scheduler_class, res.unet_calls, 1);
    });
  };
  // Compatible visuals as one batch (image/sd_batch.h); each gets the batch's time divided among
  // them. If the batch fails, its visuals are made one by one so only a bad one fails.
  auto run_visual_batch = [&](const std::vector<Task*>& batch) {
    if (batch.size() == 1) return run_visual(*batch[0]);
    std::vector<image::GenerateRequest> requests;
    for (Task* t : batch) requests.push_back(visual_request(*t->item));
    const double t_start = unix_time_now();
    image::BatchResult res;
    try {
      std::lock_guard<std::mutex> lock(device_mutex);
      image::SdPipeline& pipe = models.image();
      const image::GenerateRequest& r0 = requests[0];
      image::BatchRequest b;
      for (const auto& r : requests) b.rows.push_back({r.prompt, r.negative_prompt, r.seed});
      b.steps = r0.steps;
      b.guidance = r0.guidance;
      b.width = r0.width;
      b.height = r0.height;
      b.scheduler = r0.scheduler;
      res = image::generate_batch(pipe, b);
    } catch (const std::exception& ex) {
      progress.message(fmt::format("image batch of {} failed ({}); making its visuals one by one",
                                   batch.size(), ex.what()));
      for (Task* t : batch) run_visual(*t);
      return;
    }
    const double t_end = unix_time_now();
    const double share = (t_end - t_start) / double(batch.size());
    for (size_t k = 0; k < batch.size(); ++k) {
      Task& t = *batch[k];
      const double ready = t.t_ready;
      run_stage(t, "image", gpu, [&](StageEvent& e) {
        finish_visual(t, e, requests[k], res.images[int64_t(k)].clone(), res.timesteps,
                      res.scheduler_class, res.unet_calls, int64_t(batch.size()));
      });
      StageEvent& e = t.events.back();
      e.t_start = t_start;
      e.t_end = std::max(t_end, e.t_end);
      e.queue_wait_s = std::max(0.0, t_start - ready);
      e.compute_s = share;
      e.gpu_s = gpu ? share : 0.0;
      t.t_ready = e.t_end;
    }
  };
#endif

  // image: visuals and edits (serial per device). A token (null) stands for a queued visual.
  using ImageNode = multifunction_node<Task*, std::tuple<Task*>>;
  ImageNode image_node(g, serial, [&](Task* t, ImageNode::output_ports_type& ports) {
    auto& out = std::get<0>(ports);
    if (t == nullptr) {
#ifdef STUDIO_HAVE_IMAGE
      std::vector<Task*> batch;
      {
        std::lock_guard<std::mutex> lock(visual_mutex);
        if (!visual_queue.empty()) {
          batch.push_back(visual_queue.front());
          visual_queue.pop_front();
          const std::string key = batch_key(*batch[0]->item);
          for (auto it = visual_queue.begin();
               it != visual_queue.end() && int64_t(batch.size()) < o.image_batch;) {
            if (batch_key(*(*it)->item) == key) {
              batch.push_back(*it);
              it = visual_queue.erase(it);
            } else {
              ++it;
            }
          }
        }
      }
      if (!batch.empty()) run_visual_batch(batch);
#else
      std::vector<Task*> batch;
      {
        std::lock_guard<std::mutex> lock(visual_mutex);
        if (!visual_queue.empty()) {
          batch.push_back(visual_queue.front());
          visual_queue.pop_front();
        }
      }
      for (Task* b : batch)
        run_stage(*b, "image", gpu, [&](StageEvent&) {
          throw ConfigError("this studio was built without the image stage (STUDIO_WITH_IMAGE=OFF)",
                            b->item->item_id, "build with the image stage to make visuals");
        });
#endif
      for (Task* b : batch) {
        progress.stage_done("image", b->failed);
        out.try_put(b);
      }
      return;
    }
    if (t->item->kind == "edit") {
      run_edit_stage(*t);
      progress.stage_done("image", t->failed);
      out.try_put(t);
      return;
    }
    if (t->item->kind != "visual") {
      out.try_put(t);
      return;
    }
#ifdef STUDIO_HAVE_IMAGE
    if (t->item->revision > 0)
      run_visual_revision(*t);
    else
      run_visual(*t);
#else
    run_stage(*t, "image", gpu, [&](StageEvent&) {
      throw ConfigError("this studio was built without the image stage (STUDIO_WITH_IMAGE=OFF)",
                        t->item->item_id, "build with the image stage to make visuals");
    });
#endif
    progress.stage_done("image", t->failed);
    out.try_put(t);
  });

  // write: encode and write the asset atomically, then its sidecar (parallel, CPU).
  function_node<Task*, Task*> write(g, unlimited, [&](Task* t) {
    run_stage(*t, "write", false, [&](StageEvent&) {
      const WorkItem& w = *t->item;
      // Inside the run folder even when a symbolic link there points elsewhere (refused).
      const fs::path out = confined_output_path(run_dir, w.output);
      if (w.kind == "caption") {
        write_file_atomic(out, t->text + "\n");
#ifdef STUDIO_HAVE_IMAGE
      } else if (w.kind == "visual" || w.kind == "edit") {
        image::ImageWriteOptions wo;
        wo.parameters = t->parameters;
        wo.software_version = STUDIO_VERSION;
        if (w.kind == "edit")
          wo.digital_source_type = image::kDigitalSourceCompositeWithTrainedAlgorithmicMedia;
        nlohmann::json previews = nlohmann::json::object();
        for (const auto& [name, pixels] : t->previews) {
          fs::path rel = fs::path("previews") / w.output;
          rel.replace_filename(w.output.stem().string() + "." + name + ".png");
          image::write_image(confined_output_path(run_dir, rel), pixels, {});
          previews[name] = rel.generic_string();
        }
        if (!previews.empty()) t->sidecar["previews"] = previews;
        image::write_image(out, t->image, wo);
#endif
      } else {
        throw UsageError("no stage makes '" + w.kind + "' in this version");
      }
      t->record.output = w.output.generic_string();
      hash_output(run_dir, t->record);
      nlohmann::json side = t->sidecar;
      side["studio_version"] = STUDIO_VERSION;
      side["job"] = {
          {"name", job.name}, {"file", fs::absolute(job.file).string()}, {"run_id", run_id}};
      side["work_item"] = w.to_json();
      side["output"] = {
          {"file", t->record.output}, {"sha256", t->record.sha256}, {"bytes", t->record.bytes}};
      nlohmann::json timings = nlohmann::json::array();
      for (const auto& e : t->events)
        timings.push_back(
            {{"stage", e.stage}, {"seconds", e.compute_s}, {"queue_wait_s", e.queue_wait_s}});
      side["timings"] = timings;
      write_file_atomic(fs::path(out.string() + ".json"), side.dump(2) + "\n");
      kill_point("write", ++written);
    });
    t->image = at::Tensor();  // memory stays flat: pixels are on disk now
    t->previews.clear();
    progress.stage_done("write", t->failed);
    return t;
  });

  sequencer_node<Task*> order(g, [](Task* t) { return t->seq; });

  // journal + ledger, in plan order (serial).
  int since_trim = 0;  // items since the last malloc_trim (the sink is serial)
  // Everything a recorded task holds goes, capacity included: the tasks live until the run
  // ends, and a cleared-but-allocated events vector alone kept ~4 KiB per item (RSS grew ~6 KiB
  // per item over a 10,000-item job, docs/benchmarks.md).
  auto release = [](Task* t) {
    std::vector<StageEvent>().swap(t->events);
    t->sidecar = nlohmann::json();
    std::string().swap(t->parameters);
    std::string().swap(t->text);
    std::string().swap(t->error);
    t->record = JournalRecord();
    t->image = at::Tensor();
    t->previews.clear();
  };
  function_node<Task*, continue_msg> sink(g, serial, [&](Task* t) {
    const WorkItem& w = *t->item;
    if (t->storage_failed) {
      // Not the item's fault and nothing of it is on disk: left for the resume to make.
      ++storage_unrecorded;
      release(t);
      return continue_msg();
    }
    JournalRecord& r = t->record;
    r.work_id = w.id;
    r.item = w.item_id;
    r.kind = w.kind;
    r.channel = w.channel;
    r.variant = w.variant;
    r.seed = w.seed;
    r.attempt = t->attempt;
    r.revision = w.revision;
    r.base_work_id = w.base_work_id;
    if (t->failed) {
      r.status = "failed";
      r.stage = t->failed_stage;
      r.error = t->error;
      r.output.clear();
      r.sha256.clear();
      r.bytes = 0;
      ++failures;
      progress.message(fmt::format("{} {}/{} {} failed at {}: {}", w.id, w.item_id, w.channel,
                                   w.kind, t->failed_stage, t->error));
    } else {
      r.status = "done";
      r.stage = "write";
    }
    try {
      for (auto& e : t->events) ledger.write(e);
      journal.append(r);
    } catch (const StorageError& ex) {
      // The journal or ledger could not grow: the item's files are on disk but unrecorded, so a
      // resume makes it again (atomically over them). A half-written line was cut off again.
      note_storage_failure(ex);
      ++storage_unrecorded;
      release(t);
      return continue_msg();
    }
    progress.item_done(w, !t->failed);
    release(t);
#if defined(__GLIBC__)
    // Tensors are made on one worker thread and freed on another, so glibc's per-thread arenas
    // keep the freed pages: without this, RSS grew by ~0.15 MiB per item over a 1,000-item job
    // (`studio bench run`, docs/benchmarks.md). Returning free pages every few items keeps it flat.
    if (++since_trim >= 8) {
      malloc_trim(0);
      since_trim = 0;
    }
#endif
    kill_point("journal", ++recorded);
    return continue_msg();
  });

  make_edge(source, limiter);
  make_edge(limiter, decode);
  make_edge(decode, text);
  make_edge(text, image_node);
  make_edge(output_port<0>(image_node), write);
  make_edge(write, order);
  make_edge(order, sink);
  make_edge(sink, limiter.decrementer());
  source.activate();
  g.wait_for_all();
  graph_done.store(true);
  watchdog.join();
  progress.finish();

  if (g_storage_stop.load()) {
    std::string why;
    {
      std::lock_guard<std::mutex> lock(g_storage_mutex);
      why = g_storage_error;
    }
    try {  // the ledger may be what filled up
      RunEvent ev;
      ev.event = "interrupted";
      ev.items_total = int64_t(in_shard_total);
      ledger.write(ev);
      ledger.close();
    } catch (const std::exception&) {
    }
    std::cerr << fmt::format(
        "studio run {}: stopped: the output storage failed: {}\n"
        "studio run {}: {} made and recorded, {} failed, {} already done, {} not recorded; "
        "everything recorded is kept. Fix the storage, then run again with --resume.\n",
        job.name, why, job.name, recorded.load() - int64_t(failures), failures, skipped,
        storage_unrecorded + (tasks.size() - std::min(tasks.size(), next)));
    return kExitStorage;
  }

  const bool interrupted = g_signal.load() != 0 && recorded.load() < int64_t(tasks.size());
  RunEvent stop;
  stop.event = interrupted ? "interrupted" : "stop";
  stop.items_total = int64_t(in_shard_total);
  ledger.write(stop);
  ledger.close();
  std::cerr << fmt::format("studio run {}: {} made, {} failed, {} already done{}\n", job.name,
                           recorded.load() - int64_t(failures), failures, skipped,
                           interrupted ? ", interrupted (resume with --resume)" : "");
  if (o.revise && !interrupted && o.shard_count == 1) {
    // The round changes the review figures: the report is made again (sharded rounds: kpi merge).
    try {
      write_kpi_report(compute_kpis(run_dir), run_dir);
      std::cerr << "studio run: report updated: " << (run_dir / "report.html").string() << "\n";
    } catch (const std::exception& ex) {
      std::cerr << "studio run: warning: the KPI report was not updated: " << ex.what() << "\n";
    }
  }
  if (interrupted) return kExitInterrupted;
  return failures > 0 ? kExitError : kExitOk;
}

}  // namespace studio
