// `studio bench image`: the real Stable Diffusion architectures built from their config files with
// random weights (same FLOPs as the trained models), timed per component and end to end; the
// baseline in the same run is classifier-free guidance as two sequential UNet calls, against the
// one batched call the pipeline makes. Printed as a table and as JSON. This file also makes the
// `bench` parent command; `bench text` lives in bench_text_command.cpp, and `bench image` is only
// built with the image stage (STUDIO_HAVE_IMAGE).
#include "pipeline/commands.h"

#include "pipeline/bench_util.h"

#ifdef STUDIO_HAVE_IMAGE
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <iostream>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/random.h"
#include "core/scheduler.h"
#include "image/blocks.h"
#include "image/unet.h"
#include "image/vae.h"
#include "text/clip_text_model.h"

namespace fs = std::filesystem;
#endif

namespace studio {

#ifdef STUDIO_HAVE_IMAGE
namespace {

struct BenchOptions {
  std::string arch = "configs/sd15";
  std::string device = "auto";
  std::string dtype = "auto";
  int size = 0;   // 0: 512 on CUDA, 256 on CPU
  int steps = 0;  // 0: 20 on CUDA, 2 on CPU
  int batch = 1;
  int repeat = 3;
  std::string json_out;
};

nlohmann::json read_component_config(const fs::path& arch, const char* component) {
  const fs::path p = arch / component / "config.json";
  if (!fs::is_regular_file(p))
    throw IoError(std::string("no ") + component + "/config.json", arch.string(),
                  "--arch takes a folder laid out like a diffusers pipeline (configs/sd15, "
                  "configs/sd21, or a real model folder)");
  return read_json_file(p);
}

int run_bench_image(const BenchOptions& o) {
  torch::NoGradGuard no_grad;
  const fs::path arch(o.arch);
  const c10::Device device = select_device(o.device);
  const c10::ScalarType dtype = select_dtype(o.dtype, device);
  const int size = o.size > 0 ? o.size : (device.is_cuda() ? 512 : 256);
  const int steps = o.steps > 0 ? o.steps : (device.is_cuda() ? 20 : 2);
  if (o.batch < 1 || o.repeat < 1) throw UsageError("--batch and --repeat must be >= 1");

  std::cerr << "bench: building " << arch.string() << " with random weights on " << device.str()
            << "\n";
  const auto unet_cfg = read_component_config(arch, "unet");
  const auto vae_cfg = read_component_config(arch, "vae");
  const auto te_cfg = read_component_config(arch, "text_encoder");
  image::UNet2DConditionModel unet(unet_cfg, (arch / "unet/config.json").string());
  image::AutoencoderKL vae(vae_cfg, (arch / "vae/config.json").string());
  ClipTextModel te(ClipTextConfig::from_json(te_cfg, (arch / "text_encoder/config.json").string()));
  const int64_t unet_params = image::parameter_count(*unet);
  const int64_t vae_params = image::parameter_count(*vae);
  const int64_t te_params = image::parameter_count(*te);
  for (torch::nn::Module* m :
       {static_cast<torch::nn::Module*>(unet.get()), static_cast<torch::nn::Module*>(vae.get()),
        static_cast<torch::nn::Module*>(te.get())}) {
    m->to(device, dtype);
    m->eval();
  }

  const int f = 1 << (static_cast<int>(vae->config().block_out_channels.size()) - 1);
  if (size % f != 0) throw UsageError("--size must be a multiple of " + std::to_string(f));
  const int64_t b = o.batch, lat = size / f;
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  const at::Tensor ids = at::randint(0, te->config().vocab_size, {2 * b, 77},
                                     at::TensorOptions().dtype(at::kLong).device(device));
  const at::Tensor context = te->forward(ids).last_hidden_state;
  const at::Tensor x = seeded_randn({b, unet->config().in_channels, lat, lat}, 0, opts);
  const at::Tensor x2 = at::cat({x, x});

  const double text_ms = bench_median_ms(device, o.repeat, [&] { te->forward(ids); });
  const double unet_batched_ms =
      bench_median_ms(device, o.repeat, [&] { unet->forward(x2, 500.0, context); });
  const double unet_sequential_ms = bench_median_ms(device, o.repeat, [&] {
    unet->forward(x, 500.0, context.slice(0, 0, b));
    unet->forward(x, 500.0, context.slice(0, b, 2 * b));
  });
  const double vae_ms = bench_median_ms(device, o.repeat, [&] { vae->decode(x); });

  // End to end: text encoding, `steps` DDIM steps with batched CFG, VAE decode.
  auto sched = make_scheduler(nlohmann::json{{"_class_name", "DDIMScheduler"},
                                             {"beta_schedule", "scaled_linear"},
                                             {"beta_start", 0.00085},
                                             {"beta_end", 0.012},
                                             {"steps_offset", 1},
                                             {"set_alpha_to_one", false}},
                              "bench");
  const double e2e_ms = bench_median_ms(device, 1, [&] {
    const at::Tensor ctx = te->forward(ids).last_hidden_state;
    sched->set_timesteps(steps);
    at::Tensor lat_t = x.clone();
    for (std::size_t i = 0; i < sched->timesteps().size(); ++i) {
      at::Tensor eps = unet->forward(at::cat({lat_t, lat_t}), sched->timesteps()[i], ctx);
      auto parts = eps.chunk(2);
      lat_t = sched->step(parts[0] + 7.5 * (parts[1] - parts[0]), i, lat_t);
    }
    vae->decode(lat_t);
  });

  nlohmann::json j{
      {"benchmark", "image"},
      {"arch", arch.string()},
      {"device", device.str()},
      {"dtype", c10::toString(dtype)},
      {"runtime", runtime_summary()},
      {"size", size},
      {"latent_size", lat},
      {"batch", b},
      {"steps", steps},
      {"repeat", o.repeat},
      {"parameters", {{"unet", unet_params}, {"vae", vae_params}, {"text_encoder", te_params}}},
      {"text_encoder_ms", text_ms},
      {"unet_step_ms", unet_batched_ms},
      {"unet_step_cfg_sequential_ms", unet_sequential_ms},
      {"cfg_batched_speedup", unet_sequential_ms / unet_batched_ms},
      {"vae_decode_ms", vae_ms},
      {"end_to_end_s_per_image", e2e_ms / 1000.0 / static_cast<double>(b)},
      {"images_per_s", 1000.0 * static_cast<double>(b) / e2e_ms},
      {"peak_rss_mib", peak_rss_mib()},
  };
  std::cout << fmt::format(
      "studio bench image: {} on {} ({}), {}x{} px, batch {}, {} steps\n"
      "  {:<44} {:>12}\n"
      "  {:<44} {:>12.1f}\n"
      "  {:<44} {:>12.1f}\n"
      "  {:<44} {:>12.1f}\n"
      "  {:<44} {:>12.2f}x\n"
      "  {:<44} {:>12.1f}\n"
      "  {:<44} {:>12.2f}\n"
      "  {:<44} {:>12.0f}\n",
      arch.string(), device.str(), c10::toString(dtype), size, size, b, steps, "measure", "value",
      "text encoder (ms, CFG batch)", text_ms, "UNet step, CFG batched in one call (ms)",
      unet_batched_ms, "UNet step, CFG as two calls (ms, baseline)", unet_sequential_ms,
      "batched CFG speed-up vs baseline", unet_sequential_ms / unet_batched_ms, "VAE decode (ms)",
      vae_ms, "end to end (s per image)", e2e_ms / 1000.0 / b, "peak RSS (MiB)", peak_rss_mib());
  std::cout << j.dump() << "\n";
  if (!o.json_out.empty()) write_file_atomic(o.json_out, j.dump(2) + "\n");
  return 0;
}

void add_bench_image_command(CLI::App& bench, CommandAction* action) {
  auto* img = bench.add_subcommand(
      "image", "Stable Diffusion text encoder, UNet step, VAE decode and end-to-end timings");
  auto o = std::make_shared<BenchOptions>();
  img->add_option("--arch", o->arch,
                  "folder with unet/, vae/, text_encoder/ config.json (default configs/sd15)");
  img->add_option("--device", o->device, "auto, cpu, cuda, cuda:N");
  img->add_option("--dtype", o->dtype, "auto (fp32 on CPU, fp16 on CUDA), fp32, fp16, bf16");
  img->add_option("--size", o->size, "image size in pixels (default 512 on CUDA, 256 on CPU)");
  img->add_option("--steps", o->steps, "denoising steps end to end (default 20 CUDA, 2 CPU)");
  img->add_option("--batch", o->batch, "images per batch");
  img->add_option("--repeat", o->repeat, "timed repetitions (median reported)");
  img->add_option("--json", o->json_out, "also write the JSON result to this file");
  img->callback([action, o] { *action = [o] { return run_bench_image(*o); }; });
}

}  // namespace
#endif  // STUDIO_HAVE_IMAGE

void add_bench_command(CLI::App& app, CommandAction* action) {
  auto* bench = app.add_subcommand("bench", "Benchmarks at the real model sizes (random weights)");
  bench->require_subcommand(1);
#ifdef STUDIO_HAVE_IMAGE
  add_bench_image_command(*bench, action);
#endif
  add_bench_text_command(*bench, action);
  add_bench_run_command(*bench, action);
#ifdef STUDIO_HAVE_MESH
  add_bench_mesh_command(*bench, action);
#endif
#if defined(STUDIO_HAVE_VIDEO) && defined(STUDIO_HAVE_IMAGE)
  add_bench_video_command(*bench, action);
#endif
}

}  // namespace studio
