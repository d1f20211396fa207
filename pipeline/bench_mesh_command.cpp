// `studio bench mesh`: Point-E's text pipeline (base40M-textvec + upsample + sdf, configs in
// configs/pointe/) built at its real widths and depths with seeded random weights, timed per
// stage: base sampler s/step, upsampler s/step, SDF grid evaluation, marching cubes, peak RSS (and
// the CUDA allocator's peak). On the CPU the point counts, steps and grid are reduced by default.
// Ratios are each stage's share of the run's total, and the upsampler's step against the base's,
// all measured in the same run. Printed as a table and as JSON.
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <iostream>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/json_file.h"
#include "mesh/mesh_generate.h"
#include "pipeline/bench_util.h"
#include "pipeline/commands.h"

namespace fs = std::filesystem;

namespace studio {

namespace {

using Clock = std::chrono::steady_clock;

struct MeshBenchOptions {
  std::string config_dir = "configs/pointe";
  std::string device = "auto";
  std::vector<int64_t>
      points;  // empty: the configs' n_ctx on CUDA; 256 / 768 (at most n_ctx) on CPU
  std::vector<int64_t> steps;  // empty: 64,64 on CUDA, 3,3 on CPU
  int64_t grid = 0;            // 0: 128 on CUDA, 32 on CPU
  uint64_t seed = 0;
  std::string json_out;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

nlohmann::json read_model_json(const fs::path& dir) {
  const fs::path p = dir / "config.json";
  const nlohmann::json j = read_json_file(p);
  if (!j.contains("model_config") || !j["model_config"].is_object())
    throw ConfigError("config.json has no 'model_config'", p.string());
  return j;
}

int run_bench_mesh(const MeshBenchOptions& o) {
  torch::NoGradGuard no_grad;
  const c10::Device device = select_device(o.device);
  const bool cuda = device.is_cuda();
  const fs::path dir(o.config_dir);
  const pointe::ModelSet set = resolve_model_set(dir, pointe::ConditioningKind::kVector);
  if (set.sdf.empty())
    throw ConfigError("no SDF model config in the folder", dir.string(),
                      "--config-dir needs base (text vector), upsample and sdf configs");
  nlohmann::json base_j = read_model_json(set.base), up_j = read_model_json(set.upsample),
                 sdf_j = read_model_json(set.sdf);
  const int64_t base_ctx = base_j["model_config"].value("n_ctx", int64_t{1024});
  const int64_t up_ctx = up_j["model_config"].value("n_ctx", int64_t{3072});
  std::array<int64_t, 2> points{base_ctx, up_ctx};
  if (!o.points.empty()) {
    if (o.points.size() != 2 || o.points[0] < 1 || o.points[1] < 1)
      throw UsageError("--points takes two positive counts: base,upsampler", "--points");
    points = {o.points[0], o.points[1]};
  } else if (!cuda) {
    points = {std::min<int64_t>(base_ctx, 256), std::min<int64_t>(up_ctx, 768)};
  }
  std::array<int64_t, 2> steps =
      cuda ? std::array<int64_t, 2>{64, 64} : std::array<int64_t, 2>{3, 3};
  if (!o.steps.empty()) {
    if (o.steps.size() != 2 || o.steps[0] < 1 || o.steps[1] < 1)
      throw UsageError("--steps takes two positive counts: base,upsampler", "--steps");
    steps = {o.steps[0], o.steps[1]};
  }
  const int64_t grid = o.grid > 0 ? o.grid : (cuda ? 128 : 32);
  if (grid < 2) throw UsageError("--grid must be >= 2", "--grid");
  // The models take exactly n_ctx points and have no positional embeddings, so a reduced point
  // count only changes n_ctx (and the upsampler's cond_ctx): the weights keep their real shapes.
  base_j["model_config"]["n_ctx"] = points[0];
  up_j["model_config"]["n_ctx"] = points[1];
  up_j["model_config"]["cond_ctx"] = points[0];

  std::cerr << "bench mesh: building " << dir.string() << " with random weights on " << device.str()
            << "\n";
  auto t0 = Clock::now();
  torch::manual_seed(o.seed);
  pointe::PointEModels m;
  m.base = pointe::PointDiffusionTransformer(
      pointe::ModelConfig::from_json(base_j["model_config"], (set.base / "config.json").string()));
  m.upsample = pointe::PointDiffusionTransformer(pointe::ModelConfig::from_json(
      up_j["model_config"], (set.upsample / "config.json").string()));
  m.sdf = pointe::PointCloudSdfModel(
      pointe::ModelConfig::from_json(sdf_j["model_config"], (set.sdf / "config.json").string()));
  for (auto* j : {&base_j, &up_j})
    if (!j->contains("diffusion_config"))
      throw ConfigError("a diffusion model's config.json has no 'diffusion_config'", dir.string());
  m.base_diffusion = pointe::GaussianDiffusion(pointe::DiffusionConfig::from_json(
      base_j["diffusion_config"], (set.base / "config.json").string()));
  m.upsample_diffusion = pointe::GaussianDiffusion(pointe::DiffusionConfig::from_json(
      up_j["diffusion_config"], (set.upsample / "config.json").string()));
  const int64_t params_base = parameter_count(*m.base), params_up = parameter_count(*m.upsample),
                params_sdf = parameter_count(*m.sdf);
  for (torch::nn::Module* mod : {static_cast<torch::nn::Module*>(m.base.get()),
                                 static_cast<torch::nn::Module*>(m.upsample.get()),
                                 static_cast<torch::nn::Module*>(m.sdf.get())}) {
    mod->to(device);
    mod->eval();
  }
  bench_sync(device);
  const double build_s = seconds_since(t0);

  pointe::Conditioning cond;
  cond.kind = pointe::ConditioningKind::kVector;
  cond.embedding = torch::randn({1, 768}, torch::TensorOptions(torch::kFloat));
  cond.embedding /= cond.embedding.norm();
  cond.source = "random unit vector";
  pointe::SamplingOptions so = pointe::PointE::text_defaults();
  so.num_points = points;
  so.steps = steps;
  pointe::MeshOptions mo;
  mo.grid_size = grid;

  if (cuda) {  // untimed warm-up: CUDA context, kernels, allocator
    pointe::SamplingOptions warm = so;
    warm.steps = {1, 1};
    pointe::sample_points(m, cond, o.seed, warm);
    bench_sync(device);
    reset_peak_gpu(device);
  }

  // Sampling: stage 0 ends with its last model call (progress(0, n, n)).
  Clock::time_point base_end{};
  const auto sample_start = Clock::now();
  const at::Tensor samples =
      pointe::sample_points(m, cond, o.seed, so, [&](int stage, int64_t step, int64_t total) {
        if (stage == 0 && step == total) {
          bench_sync(device);
          base_end = Clock::now();
        }
      });
  bench_sync(device);
  const auto sample_end = Clock::now();
  const double base_s = std::chrono::duration<double>(base_end - sample_start).count();
  const double up_s = std::chrono::duration<double>(sample_end - base_end).count();

  const at::Tensor pts = samples[0];
  const at::Tensor coords = pts.narrow(0, 0, 3).t().contiguous();
  const at::Tensor rgb = pts.narrow(0, 3, 3).clamp(0, 255).round().div(255.0).t().contiguous();
  t0 = Clock::now();
  const at::Tensor sdf = pointe::sdf_grid(m.sdf, coords, mo).to(at::kCPU);
  bench_sync(device);
  const double sdf_s = seconds_since(t0);
  t0 = Clock::now();
  const pointe::ColoredMesh mesh =
      pointe::grid_to_mesh(sdf, mo.side_length, coords.to(at::kCPU), rgb.to(at::kCPU));
  const double mc_s = seconds_since(t0);
  const double total_s = base_s + up_s + sdf_s + mc_s;
  const double gpu_peak = peak_gpu_mib(device, "bench mesh");
  const double rss = peak_rss_mib();
  const bool real_points = points[0] == base_ctx && points[1] == up_ctx;

  nlohmann::json j{
      {"benchmark", "mesh"},
      {"config_dir", dir.string()},
      {"models",
       {{"base", set.base.filename().string()},
        {"upsample", set.upsample.filename().string()},
        {"sdf", set.sdf.filename().string()}}},
      {"parameters", {{"base", params_base}, {"upsample", params_up}, {"sdf", params_sdf}}},
      {"device", device.str()},
      {"dtype", "fp32"},
      {"runtime", runtime_summary()},
      {"seed", o.seed},
      {"points", {points[0], points[1]}},
      {"config_points", {base_ctx, up_ctx}},
      {"steps", {steps[0], steps[1]}},
      {"model_calls", {2 * steps[0] - 1, 2 * steps[1] - 1}},
      {"guidance", {so.guidance[0], 0.0}},
      {"grid", grid},
      {"build_s", build_s},
      {"base_s", base_s},
      {"base_s_per_step", base_s / static_cast<double>(steps[0])},
      {"upsample_s", up_s},
      {"upsample_s_per_step", up_s / static_cast<double>(steps[1])},
      {"sdf_grid_s", sdf_s},
      {"marching_cubes_s", mc_s},
      {"total_s", total_s},
      {"share",
       {{"base", base_s / total_s},
        {"upsample", up_s / total_s},
        {"sdf_grid", sdf_s / total_s},
        {"marching_cubes", mc_s / total_s}}},
      {"upsample_step_vs_base_step",
       (up_s / static_cast<double>(steps[1])) / (base_s / static_cast<double>(steps[0]))},
      {"mesh", {{"vertices", mesh.positions.size()}, {"faces", mesh.faces.size()}}},
      {"peak_rss_mib", rss},
      {"peak_gpu_mib", nullptr},
      {"estimated_default_run_s", nullptr},
  };
  if (gpu_peak >= 0) j["peak_gpu_mib"] = gpu_peak;
  // Point-E's defaults are 64 + 64 Karras steps (127 model calls per stage); with the real point
  // counts the per-call times extrapolate to a full text-to-mesh run at this grid.
  const double base_call_s = base_s / static_cast<double>(2 * steps[0] - 1);
  const double up_call_s = up_s / static_cast<double>(2 * steps[1] - 1);
  j["base_s_per_model_call"] = base_call_s;
  j["upsample_s_per_model_call"] = up_call_s;
  if (real_points) j["estimated_default_run_s"] = 127 * (base_call_s + up_call_s) + sdf_s + mc_s;

  std::string table = fmt::format(
      "studio bench mesh: {} on {} (fp32), points {}+{}{}, steps {}+{}, grid {}^3\n"
      "| stage | parameters | s | s/step | share |\n"
      "|---|---:|---:|---:|---:|\n",
      dir.string(), device.str(), points[0], points[1],
      real_points ? "" : fmt::format(" (configs: {}+{})", base_ctx, up_ctx), steps[0], steps[1],
      grid);
  table += fmt::format(
      "| base sampler ({} model calls, CFG batch 2) | {} | {:.3f} | {:.3f} | "
      "{:.1f} % |\n",
      2 * steps[0] - 1, params_base, base_s, base_s / steps[0], 100 * base_s / total_s);
  table += fmt::format("| upsampler ({} model calls) | {} | {:.3f} | {:.3f} | {:.1f} % |\n",
                       2 * steps[1] - 1, params_up, up_s, up_s / steps[1], 100 * up_s / total_s);
  table += fmt::format("| SDF grid ({}^3 queries) | {} | {:.3f} | | {:.1f} % |\n", grid, params_sdf,
                       sdf_s, 100 * sdf_s / total_s);
  table += fmt::format("| marching cubes ({} vertices, {} faces) | | {:.3f} | | {:.1f} % |\n",
                       mesh.positions.size(), mesh.faces.size(), mc_s, 100 * mc_s / total_s);
  table += fmt::format("| total | {} | {:.3f} | | 100 % |\n", params_base + params_up + params_sdf,
                       total_s);
  table += fmt::format("upsampler step / base step: {:.2f}x; build {:.2f} s; peak RSS {:.0f} MiB\n",
                       j["upsample_step_vs_base_step"].get<double>(), build_s, rss);
  if (gpu_peak >= 0) table += fmt::format("peak GPU memory allocated: {:.0f} MiB\n", gpu_peak);
  if (real_points)
    table += fmt::format("estimated Point-E default run (64+64 steps, grid {}): {:.1f} s\n", grid,
                         j["estimated_default_run_s"].get<double>());
  std::cout << table;
  std::cout << j.dump() << "\n";
  if (!o.json_out.empty()) write_file_atomic(o.json_out, j.dump(2) + "\n");
  return 0;
}

}  // namespace

void add_bench_mesh_command(CLI::App& bench, CommandAction* action) {
  auto* cmd = bench.add_subcommand(
      "mesh",
      "Point-E text-to-mesh (random weights): base and upsampler s/step, SDF grid, "
      "marching cubes, peak memory");
  auto o = std::make_shared<MeshBenchOptions>();
  cmd->add_option("--config-dir", o->config_dir,
                  "Point-E model set of config.json files (default configs/pointe)");
  cmd->add_option("--device", o->device, "auto, cpu, cuda, cuda:N");
  cmd->add_option("--points", o->points,
                  "points base,upsampler (default: the configs' on CUDA; 256,768 on CPU)")
      ->delimiter(',');
  cmd->add_option("--steps", o->steps, "Karras steps base,upsampler (default 64,64 CUDA; 3,3 CPU)")
      ->delimiter(',');
  cmd->add_option("--grid", o->grid, "SDF grid size per axis (default 128 CUDA, 32 CPU)");
  cmd->add_option("--seed", o->seed, "seed of the random weights and noise (default 0)");
  cmd->add_option("--json", o->json_out, "also write the JSON result to this file");
  cmd->callback([action, o] { *action = [o] { return run_bench_mesh(*o); }; });
}

}  // namespace studio
