// `studio video generate` (and its short form `studio video --model ...`): AnimateDiff
// text-to-video (video/animatediff_pipeline.h) on a Stable Diffusion 1.x folder and a motion
// adapter, written as an H.264 MP4 with the generation parameters and the AI-generated marking in
// the file's metadata and a JSON sidecar, with per-step progress on stderr.
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json_file.h"
#include "image/edit_mask.h"
#include "image/image_io.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/progress.h"
#include "pipeline/video_cli_util.h"
#include "video/animatediff_pipeline.h"

namespace studio {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct VideoGenerateOptions {
  std::string model, motion, prompt, negative, out;
  int frames = 16;
  std::string fps = "8";
  int steps = 25;
  double guidance = 7.5;
  uint64_t seed = 0;
  std::string size;  // WxH; "" = the model's native size
  std::string scheduler_config;
  int crf = 18;
  std::string device = "auto", dtype = "auto";
  bool no_sidecar = false;
  // Image-to-video: the product photo every frame starts from.
  std::string init, mask;
  double strength = 0.8;
  int grow = 0, feather = 0;
  bool keep_first_frame = false;
  int context = 0, overlap = 4;
};

int run_video_generate(const VideoGenerateOptions& o) {
  const auto t0 = Clock::now();
  // Everything that can be checked before loading a model is checked first.
  if (o.prompt.empty())
    throw UsageError("--prompt is required", "video generate", "describe the clip");
  const std::string ext = fs::path(o.out).extension().string();
  if (ext != ".mp4" && ext != ".mov" && ext != ".mkv")
    throw UsageError("the output must be .mp4, .mov or .mkv, not '" + o.out + "'", "--out");
  if (o.frames < 1) throw UsageError("--frames must be at least 1", "--frames");
  if (o.steps < 1) throw UsageError("--steps must be at least 1", "--steps");
  int width = 0, height = 0;
  video_cli::parse_size(o.size, "--size", &width, &height);
  if (o.init.empty() && (!o.mask.empty() || o.keep_first_frame))
    throw UsageError("--mask and --keep-first-frame need --init", "video generate",
                     "give the product photo to start from with --init");
  if (!o.init.empty() && !(o.strength > 0 && o.strength <= 1))
    throw UsageError("--strength must be in (0, 1]", "--strength");
  // The photo is read (and refused when bad) before any model loads.
  std::optional<image::Image> photo;
  if (!o.init.empty()) photo = image::read_image(o.init);
  if (!o.mask.empty() && !fs::is_regular_file(o.mask))
    throw IoError("no such mask file", o.mask, "check the path");
  const video::Rational fps = video::parse_fps(o.fps);  // UsageError for a bad rate
  video::VideoRequest r;
  r.prompt = o.prompt;
  r.negative_prompt = o.negative;
  r.seed = o.seed;
  r.num_frames = o.frames;
  r.steps = o.steps;
  r.guidance = o.guidance;
  r.context_frames = o.context;
  r.context_overlap = o.overlap;
  if (!o.scheduler_config.empty()) r.scheduler_config = read_json_file(o.scheduler_config);

  std::cerr << "video generate: loading " << o.model << " + motion adapter " << o.motion << "\n";
  auto pipe = video::AnimateDiffPipeline::load(o.model, o.motion, o.device, o.dtype);
  if (o.context > pipe->max_frames())
    throw UsageError(fmt::format("--context {} is more than the motion adapter's {} "
                                 "(motion_max_seq_length)",
                                 o.context, pipe->max_frames()),
                     "--context", fmt::format("use at most {}", pipe->max_frames()));
  if (o.context == 0 && o.frames > pipe->max_frames()) {
    r.context_frames = std::min(16, pipe->max_frames());
    std::cerr << fmt::format(
        "video generate: {} frames is more than the motion adapter reaches ({}); using windows "
        "of {} frames overlapping by {} (--context, --overlap)\n",
        o.frames, pipe->max_frames(), r.context_frames, o.overlap);
  }
  if (photo) {
    // Image-to-video: the photo, fitted to the working size, starts every frame.
    if (width == 0)
      video_cli::fit_size(photo->width, photo->height, pipe->default_size(),
                          pipe->vae_scale_factor(), &width, &height);
    const at::Tensor rgb = photo->pixels.slice(2, 0, 3);
    r.init_frames = video_cli::cover(rgb, width, height);
    r.strength = o.strength;
    r.keep_first_frame = o.keep_first_frame;
    if (!o.mask.empty()) {
      r.keep_mask = video_cli::load_keep_mask(o.mask, photo->width, photo->height, width, height,
                                              true, o.grow, o.feather);
    } else if (photo->has_alpha && photo->pixels.select(2, 3).min().item<float>() < 1.f) {
      // A cut-out product photo: its alpha is the product mask.
      const at::Tensor alpha =
          video_cli::cover(photo->pixels.select(2, 3).unsqueeze(2).contiguous(), width, height)
              .squeeze(2);
      image::ProductMaskOptions mo;
      mo.grow = o.grow;
      mo.feather = o.feather;
      r.keep_mask = image::refine_mask(alpha >= 0.5, "the alpha channel of " + o.init, mo).soft;
    }
  }
  r.width = width;
  r.height = height;
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();

  ProgressBar bar("video generate");
  const bool tty = ProgressBar::enabled();
  r.on_step = [&](const video::VideoStepInfo& s) {
    if (tty)
      bar.update(s.step, s.total, fmt::format("t={:.0f}", s.timestep));
    else
      std::cerr << fmt::format("video generate: step {}/{} (t={:.0f})\n", s.step, s.total,
                               s.timestep);
    return true;
  };
  const auto t_gen = Clock::now();
  const video::VideoResult res = pipe->generate(r);
  bar.finish();
  const double gen_s = std::chrono::duration<double>(Clock::now() - t_gen).count();
  const int out_w = int(res.frames.size(2)), out_h = int(res.frames.size(1));

  // The parameters, in the file and in the sidecar (A1111-style, as studio image writes them).
  const std::string parameters = fmt::format(
      "{}\nNegative prompt: {}\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, "
      "Frames: {}, FPS: {}, Model: {}, Motion module: {}{}, Version: studio {}",
      o.prompt, o.negative, o.steps,
      pipe->scheduler_config().value("_class_name", std::string("?")), o.guidance, o.seed, out_w,
      out_h, o.frames, fps.str(), fs::path(o.model).filename().string(),
      fs::path(o.motion).filename().string(),
      o.init.empty()
          ? std::string()
          : fmt::format(", Init image: {}, Strength: {}{}", fs::path(o.init).filename().string(),
                        o.strength, r.keep_mask.defined() ? ", Product mask: kept" : ""),
      STUDIO_VERSION);
  video::WriterOptions wo;
  wo.fps = fps;
  wo.crf = o.crf;
  wo.metadata = video_cli::clip_metadata(o.prompt, parameters,
                                         std::string("AI-generated video (AnimateDiff ") +
                                             (o.init.empty() ? "text-to-video" : "image-to-video") +
                                             ", studio " + STUDIO_VERSION + ")");
  const std::string encoder = video::write_frames(res.frames, o.out, wo);
  std::cerr << fmt::format(
      "video generate: {} frames {}x{} in {:.1f} s ({} UNet calls, {:.2f} s/step); wrote {} "
      "({}, {} fps)\n",
      o.frames, out_w, out_h, gen_s, res.unet_calls, gen_s / o.steps, o.out, encoder, fps.str());

  if (!o.no_sidecar) {
    const nlohmann::json side{
        {"generator", std::string("studio ") + STUDIO_VERSION},
        {"command", "video generate"},
        {"ai_generated", true},
        {"digital_source_type",
         "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"},
        {"model", "AnimateDiff (Stable Diffusion 1.x + motion adapter)"},
        {"parameters",
         {{"prompt", o.prompt},
          {"negative_prompt", o.negative},
          {"seed", o.seed},
          {"frames", o.frames},
          {"fps", fps.str()},
          {"steps", o.steps},
          {"guidance", o.guidance},
          {"width", out_w},
          {"height", out_h},
          {"scheduler", pipe->scheduler_config()},
          {"timesteps", res.timesteps},
          {"unet_calls", res.unet_calls},
          {"context_frames", r.context_frames},
          {"context_overlap", r.context_overlap},
          {"init_image",
           o.init.empty() ? nlohmann::json()
                          : nlohmann::json{{"file", o.init},
                                           {"sha256", sha256_file_hex(o.init)},
                                           {"strength", o.strength},
                                           {"keep_first_frame", o.keep_first_frame},
                                           {"product_mask",
                                            r.keep_mask.defined()
                                                ? (o.mask.empty() ? "alpha of " + o.init : o.mask)
                                                : std::string()}}}}},
        {"models", video_cli::models_json(o.model, o.motion)},
        {"output", video_cli::output_json(o.out, encoder)},
        {"timings", {{"load_s", load_s}, {"generate_s", gen_s}}}};
    write_file_atomic(o.out + ".json", side.dump(2) + "\n");
  }
  return kExitOk;
}

void add_generate_options(CLI::App* app, VideoGenerateOptions* o, const std::string& group) {
  const auto opt = [&](CLI::Option* option) { return option->group(group); };
  opt(app->add_option("--model", o->model,
                      "Stable Diffusion 1.x pipeline folder (diffusers layout)"));
  opt(app->add_option("--motion", o->motion,
                      "AnimateDiff motion adapter folder (MotionAdapter: config.json + "
                      "safetensors), or a folder with motion_adapter/ (+ scheduler/)"));
  opt(app->add_option("--prompt", o->prompt, "what the clip shows"));
  opt(app->add_option("--negative", o->negative, "negative prompt"));
  opt(app->add_option("--frames", o->frames,
                      "frames (default 16; longer than the adapter reaches: context windows)"));
  opt(app->add_option("--fps", o->fps, "frame rate of the file, e.g. 8 or 24000/1001 (default 8)"));
  opt(app->add_option("--steps", o->steps, "denoising steps (default 25)"));
  opt(app->add_option("--guidance", o->guidance, "classifier-free guidance (default 7.5)"));
  opt(app->add_option("--seed", o->seed, "noise seed (default 0; the same clip as diffusers)"));
  opt(app->add_option("--size", o->size, "WxH (default: the model's native size)"));
  opt(app->add_option("--scheduler-config", o->scheduler_config,
                      "a diffusers scheduler_config.json (its _class_name picks the scheduler)"));
  opt(app->add_option("--crf", o->crf, "H.264 quality, 0 (lossless) to 51 (default 18)"));
  opt(app->add_option("--device", o->device, "auto, cpu, cuda or cuda:N"));
  opt(app->add_option("--dtype", o->dtype, "auto, fp32, fp16 or bf16"));
  opt(app->add_option("--out", o->out, "output clip: .mp4 (or .mov, .mkv)"));
  opt(app->add_flag("--no-sidecar", o->no_sidecar, "do not write OUT.json"));
  opt(app->add_option("--init", o->init,
                      "image-to-video: the product photo every frame starts from"));
  opt(app->add_option("--strength", o->strength,
                      "with --init: how far from the photo, (0, 1] (default 0.8)"));
  opt(app->add_option("--mask", o->mask,
                      "with --init: product mask (white = keep in every frame; default: the "
                      "photo's alpha when it is a cut-out)"));
  opt(app->add_option("--grow", o->grow, "grow (> 0) or shrink (< 0) the mask by pixels"));
  opt(app->add_option("--feather", o->feather, "soft mask edge in pixels"));
  opt(app->add_flag("--keep-first-frame", o->keep_first_frame,
                    "with --init: the first frame is the photo itself"));
  opt(app->add_option("--context", o->context,
                      "frames per motion window for clips longer than the adapter reaches "
                      "(default: all frames, or 16 when longer)"));
  opt(app->add_option("--overlap", o->overlap,
                      "frames shared by neighbouring windows (default 4)"));
}

}  // namespace

void add_video_generate_command(CLI::App& video, CommandAction* action) {
  auto o = std::make_shared<VideoGenerateOptions>();
  auto* gen = video.add_subcommand(
      "generate", "AnimateDiff text-to-video: a prompt to an H.264 MP4 (SD 1.x + motion adapter)");
  add_generate_options(gen, o.get(), "Options");
  for (const char* required : {"--model", "--motion", "--prompt", "--out"})
    gen->get_option(required)->required();
  gen->callback([action, o] { *action = [o] { return run_video_generate(*o); }; });

  // The short form `studio video --model DIR --motion DIR --prompt TEXT --out clip.mp4`:
  // the same options on `video` itself, acted on when no sub-command was given (CLI11 runs this
  // callback after any sub-command's, so it can tell the two apart).
  auto p = std::make_shared<VideoGenerateOptions>();
  add_generate_options(&video, p.get(), "Generate (short for 'video generate')");
  CLI::App* cmd = &video;
  video.callback([action, p, cmd] {
    bool any = false;
    for (const CLI::Option* opt : cmd->get_options())
      any |= opt->count() > 0 && opt->get_name() != "--help";
    if (!cmd->get_subcommands().empty()) {
      if (any)
        *action = [sub = cmd->get_subcommands().front()->get_name()] {
          std::cerr << "studio: video: generation options given before the '" << sub
                    << "' sub-command: put them after it, or use `studio video --model DIR "
                       "--motion DIR --prompt TEXT --out clip.mp4` without one\n";
          return kExitUsage;
        };
      return;
    }
    if (p->model.empty() || p->motion.empty() || p->prompt.empty() || p->out.empty()) {
      *action = [cmd, any] {
        if (!any) std::cerr << cmd->help();
        std::cerr << "studio: video: "
                  << (any ? "the short form of 'video generate' needs --model, --motion, "
                            "--prompt and --out"
                          : "give a sub-command (probe, transcode, generate) or --model DIR "
                            "--motion DIR --prompt TEXT --out clip.mp4")
                  << "\n";
        return kExitUsage;
      };
      return;
    }
    *action = [p] { return run_video_generate(*p); };
  });
}

}  // namespace studio
