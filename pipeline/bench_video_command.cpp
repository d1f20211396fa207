// `studio bench video`: the AnimateDiff motion UNet (an SD 1.5 UNet + a v1-5-2-sized motion
// adapter, both built from their config files with random weights: the same FLOPs as the trained
// models) timed per denoising step over F frames, against the baseline measured in the same run:
// the image UNet alone on the same F frames as a batch of pictures (what the motion modules add).
#include <fmt/format.h>
#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/random.h"
#include "image/unet.h"
#include "pipeline/bench_util.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "video/motion_module.h"
#include "video/unet_motion.h"

namespace studio {

namespace {

namespace fs = std::filesystem;

struct BenchVideoOptions {
  std::string arch = "configs/sd15";
  std::string motion = "configs/animatediff/motion_adapter";
  std::string device = "auto", dtype = "auto";
  int frames = 0;  // 0: 16 on CUDA, 4 on CPU
  int size = 0;    // pixels; 0: 512 on CUDA, 128 on CPU
  int repeat = 3;
  std::string json_out;
};

int64_t parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

int run_bench_video(const BenchVideoOptions& o) {
  torch::NoGradGuard no_grad;
  const c10::Device device = select_device(o.device);
  const c10::ScalarType dtype = select_dtype(o.dtype, device);
  const int frames = o.frames > 0 ? o.frames : (device.is_cuda() ? 16 : 4);
  const int size = o.size > 0 ? o.size : (device.is_cuda() ? 512 : 128);
  if (o.repeat < 1) throw UsageError("--repeat must be >= 1", "--repeat");
  if (size % 64 != 0) throw UsageError("--size must be a multiple of 64", "--size");
  const fs::path unet_file = fs::path(o.arch) / "unet" / "config.json";
  const fs::path motion_file = fs::path(o.motion) / "config.json";
  if (!fs::is_regular_file(unet_file))
    throw IoError("no unet/config.json", o.arch, "--arch takes a folder like configs/sd15");
  if (!fs::is_regular_file(motion_file))
    throw IoError("no config.json", o.motion,
                  "--motion-config takes a MotionAdapter folder like configs/animatediff/"
                  "motion_adapter");

  std::cerr << "bench: building " << o.arch << " + " << o.motion << " with random weights on "
            << device.str() << "\n";
  image::UNet2DConditionModel unet(read_json_file(unet_file), unet_file.string());
  const auto adapter_cfg =
      video::MotionAdapterConfig::from_json(read_json_file(motion_file), motion_file.string());
  if (frames > adapter_cfg.motion_max_seq_length)
    throw UsageError(fmt::format("--frames {} is more than the adapter's motion_max_seq_length {}",
                                 frames, adapter_cfg.motion_max_seq_length),
                     "--frames");
  video::MotionAdapter adapter(adapter_cfg);
  const int64_t unet_params = parameters(*unet), adapter_params = parameters(*adapter);
  video::UNetMotionModel motion(unet, adapter);  // shares the UNet's weights
  motion->to(device, dtype);
  motion->eval();

  const int64_t lat = size / 8, c = unet->config().in_channels;
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  // CFG: unconditional + conditional rows in one batch, as the pipeline runs them.
  const at::Tensor x = seeded_randn({2, c, frames, lat, lat}, 0, opts);
  const at::Tensor ctx = seeded_randn({2, 77, unet->config().cross_attention_dim.at(0)}, 1, opts);
  const at::Tensor images = x.permute({0, 2, 1, 3, 4}).reshape({2 * frames, c, lat, lat});
  const at::Tensor ctx_frames = ctx.repeat_interleave(frames, 0);

  reset_peak_gpu(device);
  const double motion_ms =
      bench_median_ms(device, o.repeat, [&] { motion->forward(x, 500.0, ctx); });
  const double motion_gpu_mib = peak_gpu_mib(device, "bench video");
  reset_peak_gpu(device);
  const double image_ms =
      bench_median_ms(device, o.repeat, [&] { unet->forward(images, 500.0, ctx_frames); });
  const double image_gpu_mib = peak_gpu_mib(device, "bench video");

  const double overhead = motion_ms / image_ms;
  nlohmann::json j{{"benchmark", "video"},
                   {"arch", o.arch},
                   {"motion_config", o.motion},
                   {"device", device.str()},
                   {"dtype", c10::toString(dtype)},
                   {"runtime", runtime_summary()},
                   {"frames", frames},
                   {"size", size},
                   {"latent_size", lat},
                   {"repeat", o.repeat},
                   {"parameters", {{"unet", unet_params}, {"motion_adapter", adapter_params}}},
                   {"motion_unet_step_ms", motion_ms},
                   {"image_unet_step_ms", image_ms},
                   {"motion_vs_image_unet", overhead},
                   {"ms_per_frame_step", motion_ms / frames},
                   {"peak_rss_mib", peak_rss_mib()},
                   {"peak_gpu_mib_motion",
                    motion_gpu_mib < 0 ? nlohmann::json(nullptr) : nlohmann::json(motion_gpu_mib)},
                   {"peak_gpu_mib_image",
                    image_gpu_mib < 0 ? nlohmann::json(nullptr) : nlohmann::json(image_gpu_mib)}};
  std::cout << fmt::format(
      "studio bench video: {} + {} on {} ({}), {} frames of {}x{} px, CFG batch 2\n"
      "  {:<52} {:>12}\n"
      "  {:<52} {:>12.1f}\n"
      "  {:<52} {:>12.1f}\n"
      "  {:<52} {:>12.2f}x\n"
      "  {:<52} {:>12.1f}\n"
      "  {:<52} {:>12.0f}\n",
      o.arch, o.motion, device.str(), c10::toString(dtype), frames, size, size, "measure", "value",
      "motion UNet step, all frames (ms)", motion_ms,
      "image UNet step, the frames as pictures (ms, baseline)", image_ms, "motion UNet vs baseline",
      overhead, "motion UNet per frame and step (ms)", motion_ms / frames, "peak RSS (MiB)",
      peak_rss_mib());
  std::cout << j.dump() << "\n";
  if (!o.json_out.empty()) write_file_atomic(o.json_out, j.dump(2) + "\n");
  return kExitOk;
}

}  // namespace

void add_bench_video_command(CLI::App& bench, CommandAction* action) {
  auto o = std::make_shared<BenchVideoOptions>();
  auto* v = bench.add_subcommand(
      "video",
      "AnimateDiff motion UNet step vs the image UNet on the same frames (random "
      "weights at the real sizes)");
  v->add_option("--arch", o->arch, "folder with unet/config.json (default configs/sd15)");
  v->add_option("--motion-config", o->motion,
                "MotionAdapter folder with config.json (default configs/animatediff/"
                "motion_adapter: guoyww/animatediff-motion-adapter-v1-5-2's sizes)");
  v->add_option("--frames", o->frames, "frames (default 16 on CUDA, 4 on CPU)");
  v->add_option("--size", o->size, "frame size in pixels (default 512 on CUDA, 128 on CPU)");
  v->add_option("--device", o->device, "auto, cpu, cuda, cuda:N");
  v->add_option("--dtype", o->dtype, "auto (fp32 on CPU, fp16 on CUDA), fp32, fp16, bf16");
  v->add_option("--repeat", o->repeat, "timed repetitions (median reported)");
  v->add_option("--json", o->json_out, "also write the JSON result to this file");
  v->callback([action, o] { *action = [o] { return run_bench_video(*o); }; });
}

}  // namespace studio
