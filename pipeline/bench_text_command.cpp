// `studio bench text`: the real LLaDA architecture built from its config.json with random weights
// (same FLOPs as trained ones), timed through llada_generate (Fast-dLLM sampler) with a fixed
// number of tokens committed per step (random weights make confidence thresholds meaningless), for
// no / prefix / dual KV cache and several batch sizes. Ratios are against the baseline measured in
// the same run: no cache, 1 token per step, batch 1. Printed as a table and as JSON.
#include <fmt/format.h>
#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <random>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/json_file.h"
#include "pipeline/bench_util.h"
#include "pipeline/commands.h"
#include "text/llada_model.h"
#include "text/llada_sampler.h"

namespace fs = std::filesystem;

namespace studio {

namespace {

struct TextBenchOptions {
  std::string config = "configs/llada-8b";
  std::string device = "auto";
  std::string dtype = "auto";  // bf16 on CUDA (LLaDA's precision), fp32 on CPU
  int64_t gen_length = 256;
  int64_t block_length = 32;
  std::vector<int64_t> tokens_per_step{1, 2, 4, 8};
  std::vector<int64_t> batch;  // empty: 1,16 on CUDA, 1,4 on CPU
  std::vector<std::string> cache{"none", "prefix", "dual"};
  int64_t prompt_length = 64;
  int repeat = 1;
  int scale = 0;  // 0: 1 on CUDA, 16 on CPU
  uint64_t seed = 0;
  std::string json_out;
};

struct Row {
  int64_t batch = 1;
  std::string cache;
  int64_t tokens_per_step = 1;
  int64_t nfe = 0;
  double total_s = 0, ms_per_forward = 0, tokens_per_s = 0, ttft_ms = 0, tpot_ms = 0;
  double peak_gpu_mib = -1;  // < 0: unknown
};

LLaDACacheMode parse_cache(const std::string& s) {
  if (s == "none") return LLaDACacheMode::kNone;
  if (s == "prefix") return LLaDACacheMode::kPrefix;
  if (s == "dual") return LLaDACacheMode::kDual;
  throw UsageError("unknown --cache '" + s + "'", "--cache", "use none, prefix or dual");
}

// The real config divided by `scale`: d_model, heads (head size kept), MLP, layers and vocabulary
// (embedding rows) each / scale (at least 1); mask, EOS and pad ids moved to the top of the
// smaller vocabulary. scale 1: the config as it is.
nlohmann::json scaled_config(nlohmann::json j, int scale, const std::string& origin) {
  if (scale == 1) return j;
  auto div = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_number_integer()) return;
    j[key] = std::max<int64_t>(1, j[key].get<int64_t>() / scale);
  };
  if (!j.contains("d_model") || !j["d_model"].is_number_integer() ||
      j["d_model"].get<int64_t>() % scale != 0)
    throw UsageError("--scale " + std::to_string(scale) + " does not divide d_model", origin,
                     "pick a --scale that divides d_model (e.g. 2, 4, 8, 16)");
  for (const char* key : {"d_model", "n_heads", "n_kv_heads", "mlp_hidden_size", "n_layers",
                          "vocab_size", "embedding_size"})
    div(key);
  const int64_t vocab = j.value("vocab_size", int64_t{0});
  if (vocab < 3) throw UsageError("--scale leaves a vocabulary of fewer than 3 ids", origin);
  j["mask_token_id"] = vocab - 1;
  j["eos_token_id"] = vocab - 2;
  j["pad_token_id"] = vocab - 2;
  return j;
}

std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case at::kBFloat16:
      return "bf16";
    case at::kHalf:
      return "fp16";
    case at::kFloat:
      return "fp32";
    default:
      return c10::toString(t);
  }
}

nlohmann::json row_json(const Row& r, const Row& base) {
  nlohmann::json j{{"batch", r.batch},
                   {"cache", r.cache},
                   {"tokens_per_step", r.tokens_per_step},
                   {"nfe", r.nfe},
                   {"total_s", r.total_s},
                   {"ms_per_forward", r.ms_per_forward},
                   {"tokens_per_s", r.tokens_per_s},
                   {"ttft_ms", r.ttft_ms},
                   {"tpot_ms", r.tpot_ms},
                   {"speedup", base.tokens_per_s > 0 ? r.tokens_per_s / base.tokens_per_s : 0.0},
                   {"peak_gpu_mib", nullptr}};
  if (r.peak_gpu_mib >= 0) j["peak_gpu_mib"] = r.peak_gpu_mib;
  return j;
}

int run_bench_text(TextBenchOptions o) {
  torch::NoGradGuard no_grad;
  const c10::Device device = select_device(o.device);
  const c10::ScalarType dtype = o.dtype == "auto" ? (device.is_cuda() ? at::kBFloat16 : at::kFloat)
                                                  : select_dtype(o.dtype, device);
  if (o.scale == 0) o.scale = device.is_cuda() ? 1 : 16;
  if (o.batch.empty())
    o.batch = device.is_cuda() ? std::vector<int64_t>{1, 16} : std::vector<int64_t>{1, 4};
  if (o.scale < 1) throw UsageError("--scale must be >= 1");
  if (o.repeat < 1) throw UsageError("--repeat must be >= 1");
  if (o.prompt_length < 1) throw UsageError("--prompt-length must be >= 1");
  if (o.gen_length < 1 || o.block_length < 1 || o.gen_length % o.block_length != 0)
    throw UsageError("--gen-length must be a positive multiple of --block-length");
  for (int64_t b : o.batch)
    if (b < 1) throw UsageError("--batch values must be >= 1");
  for (int64_t k : o.tokens_per_step)
    if (k < 1 || k > o.block_length)
      throw UsageError("--tokens-per-step values must be in [1, block length]");
  for (const auto& c : o.cache) parse_cache(c);

  const fs::path cfg_path = fs::path(o.config) / "config.json";
  if (!fs::is_regular_file(cfg_path))
    throw IoError("no config.json", o.config,
                  "--config takes a folder with LLaDA's config.json (configs/llada-8b or a model "
                  "folder)");
  const nlohmann::json cfg_json =
      scaled_config(read_json_file(cfg_path), o.scale, cfg_path.string());
  const LLaDAConfig cfg = LLaDAConfig::from_json(cfg_json, cfg_path.string());
  const int64_t params = llada_parameter_count(cfg);

  std::cerr << "bench text: building " << cfg_path.string()
            << (o.scale > 1 ? fmt::format(" scaled down by {}", o.scale) : std::string())
            << " with random weights on " << device.str() << " (" << dtype_name(dtype) << ")\n";
  reset_peak_gpu(device);
  LLaDAModelLM model(cfg);
  llada_randomize_parameters(model, device, dtype, o.seed);
  bench_sync(device);
  const double weights_gpu_mib = peak_gpu_mib(device, "bench text");

  // Prompts: fixed-length random ids below vocab_size (never the mask id), seeded.
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> dist(0, cfg.vocab_size - 1);
  const int64_t max_batch = *std::max_element(o.batch.begin(), o.batch.end());
  std::vector<std::vector<int64_t>> all_prompts(static_cast<size_t>(max_batch));
  for (auto& p : all_prompts)
    for (int64_t i = 0; i < o.prompt_length; ++i) {
      int64_t id = dist(rng);
      if (id == cfg.mask_token_id) id = (id + 1) % cfg.vocab_size;
      p.push_back(id);
    }

  auto sampler_options = [&](int64_t k, LLaDACacheMode mode, int64_t gen) {
    LLaDASamplerOptions so;
    so.sampler = LLaDASampler::kFastDLLM;
    so.gen_length = gen;
    so.block_length = o.block_length;
    so.steps = gen;  // a multiple of the number of blocks; unused with tokens_per_step
    so.tokens_per_step = k;
    so.cache = mode;
    so.seed = o.seed;
    return so;
  };
  auto measure = [&](int64_t batch, const std::string& cache, int64_t k) {
    const std::vector<std::vector<int64_t>> prompts(all_prompts.begin(),
                                                    all_prompts.begin() + batch);
    const LLaDASamplerOptions so = sampler_options(k, parse_cache(cache), o.gen_length);
    reset_peak_gpu(device);
    std::vector<LLaDASamplerResult> runs;
    for (int i = 0; i < o.repeat; ++i) {
      bench_sync(device);
      runs.push_back(llada_generate(model, prompts, so));
      bench_sync(device);
    }
    std::sort(runs.begin(), runs.end(),
              [](const auto& a, const auto& b) { return a.total_seconds < b.total_seconds; });
    const LLaDASamplerResult& r = runs[runs.size() / 2];  // the median run
    Row row;
    row.batch = batch;
    row.cache = cache;
    row.tokens_per_step = k;
    row.nfe = r.nfe;
    row.total_s = r.total_seconds;
    row.ms_per_forward = r.nfe > 0 ? 1000.0 * r.total_seconds / double(r.nfe) : 0.0;
    row.tokens_per_s = r.total_seconds > 0 ? double(r.generated_tokens()) / r.total_seconds : 0.0;
    row.ttft_ms = 1000.0 * r.ttft_seconds;
    row.tpot_ms = 1000.0 * r.tpot_seconds();
    row.peak_gpu_mib = peak_gpu_mib(device, "bench text");
    return row;
  };

  nlohmann::json j{
      {"benchmark", "text"},
      {"config", cfg_path.string()},
      {"scale", o.scale},
      {"model",
       {{"d_model", cfg.d_model},
        {"n_layers", cfg.n_layers},
        {"n_heads", cfg.n_heads},
        {"n_kv_heads", cfg.n_kv_heads},
        {"mlp_hidden_size", cfg.mlp_hidden_size},
        {"vocab_size", cfg.vocab_size},
        {"embedding_size", cfg.embedding_size}}},
      {"parameters", params},
      {"device", device.str()},
      {"dtype", dtype_name(dtype)},
      {"runtime", runtime_summary()},
      {"sampler", "fastdllm"},
      {"gen_length", o.gen_length},
      {"block_length", o.block_length},
      {"prompt_length", o.prompt_length},
      {"repeat", o.repeat},
      {"seed", o.seed},
      {"weights_gpu_mib", nullptr},
      {"peak_gpu_mib", nullptr},
      {"rows", nlohmann::json::array()},
      {"complete", false},
  };
  if (weights_gpu_mib >= 0) j["weights_gpu_mib"] = weights_gpu_mib;
  std::cerr << fmt::format(
      "bench text: {} parameters (d_model {}, {} layers, {} heads, MLP {}, vocab {}), prompt {}, "
      "gen {}, block {}\n",
      params, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.mlp_hidden_size, cfg.vocab_size,
      o.prompt_length, o.gen_length, o.block_length);

  // Untimed warm-up (CUDA context, kernels, allocators) at the baseline's shapes and at the largest
  // batch: a whole block per step, so a few forward calls each.
  {
    const std::vector<std::vector<int64_t>> prompts(all_prompts.begin(),
                                                    all_prompts.begin() + max_batch);
    llada_generate(model, {all_prompts[0]},
                   sampler_options(o.block_length, LLaDACacheMode::kNone, o.gen_length));
    llada_generate(model, prompts,
                   sampler_options(o.block_length, LLaDACacheMode::kDual, o.gen_length));
    bench_sync(device);
  }

  // The baseline first, then every requested combination (the baseline once).
  std::vector<Row> rows;
  double peak_all = weights_gpu_mib;
  auto write_json = [&](bool complete) {
    j["complete"] = complete;
    j["rows"] = nlohmann::json::array();
    for (const Row& r : rows) j["rows"].push_back(row_json(r, rows.front()));
    j["baseline"] = row_json(rows.front(), rows.front());
    if (peak_all >= 0) j["peak_gpu_mib"] = peak_all;
    j["peak_rss_mib"] = peak_rss_mib();
    if (!o.json_out.empty()) write_file_atomic(o.json_out, j.dump(2) + "\n");
  };
  auto add_row = [&](int64_t batch, const std::string& cache, int64_t k) {
    rows.push_back(measure(batch, cache, k));
    const Row& r = rows.back();
    peak_all = std::max(peak_all, r.peak_gpu_mib);
    std::cerr << fmt::format(
        "  batch {:>3} cache {:<6} k {:>2}: {:>5} forwards, {:8.2f} ms/forward, {:9.1f} tok/s, "
        "TTFT {:8.1f} ms, TPOT {:7.2f} ms, {:.2f}x\n",
        r.batch, r.cache, r.tokens_per_step, r.nfe, r.ms_per_forward, r.tokens_per_s, r.ttft_ms,
        r.tpot_ms, r.tokens_per_s / rows.front().tokens_per_s);
    write_json(false);  // a partial result survives an interrupted run
  };
  add_row(1, "none", 1);
  for (int64_t batch : o.batch)
    for (const std::string& cache : o.cache)
      for (int64_t k : o.tokens_per_step)
        if (!(batch == 1 && cache == "none" && k == 1)) add_row(batch, cache, k);
  write_json(true);

  std::string table = fmt::format(
      "studio bench text: {} ({} parameters{}) on {} ({}), prompt {}, gen {}, block {}, median "
      "of {}\n"
      "| batch | cache  | tokens/step | forwards | ms/forward | tokens/s | TTFT ms | TPOT ms | "
      "speed-up |\n"
      "|------:|--------|------------:|---------:|-----------:|---------:|--------:|--------:|"
      "---------:|\n",
      cfg_path.string(), params, o.scale > 1 ? fmt::format(", scaled down by {}", o.scale) : "",
      device.str(), dtype_name(dtype), o.prompt_length, o.gen_length, o.block_length, o.repeat);
  for (const Row& r : rows)
    table += fmt::format(
        "| {:>5} | {:<6} | {:>11} | {:>8} | {:>10.2f} | {:>8.1f} | {:>7.1f} | "
        "{:>7.2f} | {:>7.2f}x |\n",
        r.batch, r.cache, r.tokens_per_step, r.nfe, r.ms_per_forward, r.tokens_per_s, r.ttft_ms,
        r.tpot_ms, r.tokens_per_s / rows.front().tokens_per_s);
  table +=
      "speed-up: tokens/s against the baseline (batch 1, no cache, 1 token/step) of this run\n";
  if (peak_all >= 0)
    table += fmt::format("peak GPU memory allocated: {:.0f} MiB (weights {:.0f} MiB)\n", peak_all,
                         weights_gpu_mib);
  table += fmt::format("peak RSS: {:.0f} MiB\n", peak_rss_mib());
  std::cout << table;
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace

void add_bench_text_command(CLI::App& bench, CommandAction* action) {
  auto* text = bench.add_subcommand(
      "text",
      "LLaDA (random weights): ms per forward, tokens/s, TTFT, TPOT per KV cache mode, "
      "tokens per step and batch");
  auto o = std::make_shared<TextBenchOptions>();
  text->add_option("--config", o->config,
                   "folder with LLaDA's config.json (default configs/llada-8b)");
  text->add_option("--device", o->device, "auto, cpu, cuda, cuda:N");
  text->add_option("--dtype", o->dtype, "auto (bf16 on CUDA, fp32 on CPU), bf16, fp16, fp32");
  text->add_option("--gen-length", o->gen_length, "generated tokens per prompt (default 256)");
  text->add_option("--block-length", o->block_length, "semi-autoregressive block (default 32)");
  text->add_option("--tokens-per-step", o->tokens_per_step,
                   "tokens committed per step, a list (default 1,2,4,8)")
      ->delimiter(',');
  text->add_option("--batch", o->batch, "batch sizes, a list (default 1,16 on CUDA, 1,4 on CPU)")
      ->delimiter(',');
  text->add_option("--cache", o->cache,
                   "KV cache modes, a list of none, prefix, dual (default all)")
      ->delimiter(',');
  text->add_option("--prompt-length", o->prompt_length, "random prompt ids per row (default 64)");
  text->add_option("--repeat", o->repeat, "timed runs per row (median reported; default 1)");
  text->add_option("--scale", o->scale,
                   "divide d_model, heads, MLP, layers and vocabulary by N (default 1 on CUDA, 16 "
                   "on CPU)");
  text->add_option("--seed", o->seed, "seed of the random weights and prompts (default 0)");
  text->add_option("--json", o->json_out, "also write the JSON result to this file");
  text->callback([action, o] { *action = [o] { return run_bench_text(*o); }; });
}

}  // namespace studio
