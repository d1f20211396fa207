// `studio video edit`: an existing clip edited by inversion with AnimateDiff (video/clip_edit.h).
// The clip is decoded (a range of it, streamed), every frame inverted together through the motion
// UNet, regenerated under the edited prompt with the product mask held to the source, composited
// back so the product keeps its filmed pixels, and re-encoded with the source's timing and audio.
// Temporal consistency and fidelity figures go to stdout and the sidecar.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/hash.h"
#include "image/edit_mask.h"
#include "image/image_metrics.h"
#include "pipeline/cli.h"
#include "pipeline/commands.h"
#include "pipeline/progress.h"
#include "pipeline/video_cli_util.h"
#include "video/animatediff_pipeline.h"
#include "video/clip_edit.h"
#include "video/clip_metrics.h"
#include "video/video_io.h"

namespace studio {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct VideoEditOptions {
  std::string model, motion, input, out, source_prompt, prompt, negative;
  int frames = 16;
  double start_s = 0;
  std::string fps;   // "" = the source's
  std::string size;  // WxH; "" = the model's native size, the clip's aspect
  int steps = 25;
  double guidance = 7.5;
  double strength = 1.0;
  std::string inversion = "direct";
  std::string mask, mask_video;
  int grow = 0, feather = 0;
  bool no_composite = false;
  int context = 0, overlap = 4;
  bool no_reconstruction = false;
  bool no_audio = false;
  int crf = 18;
  std::string device = "auto", dtype = "auto";
  bool no_sidecar = false;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Reads up to `count` frames of `reader` as [F, H, W, 3] float in [0, 1].
at::Tensor read_frames(video::VideoReader& reader, int count) {
  std::vector<at::Tensor> frames;
  video::Frame f;
  while (static_cast<int>(frames.size()) < count && reader.read(f)) {
    at::Tensor t =
        at::from_blob(f.rgb.data(), {f.height, f.width, 3}, {int64_t(f.stride), 3, 1}, at::kByte);
    frames.push_back(t.to(at::kFloat).div_(255.0));
  }
  if (frames.empty()) return {};
  return at::stack(frames);
}

// JSON has no infinity: identical pictures are reported as null with a note.
nlohmann::json db(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

int run_video_edit(const VideoEditOptions& o) {
  const auto t_start = Clock::now();
  // What can be checked before loading a model is checked first.
  if (o.prompt.empty()) throw UsageError("--prompt is required", "video edit", "describe the edit");
  const std::string ext = fs::path(o.out).extension().string();
  if (ext != ".mp4" && ext != ".mov" && ext != ".mkv")
    throw UsageError("the output must be .mp4, .mov or .mkv, not '" + o.out + "'", "--out");
  if (fs::exists(o.out) && fs::exists(o.input) && fs::equivalent(o.input, o.out))
    throw UsageError("the output is the input", o.out, "write to a different file");
  if (o.frames < 1) throw UsageError("--frames must be at least 1", "--frames");
  if (o.steps < 1) throw UsageError("--steps must be at least 1", "--steps");
  if (!(o.strength > 0 && o.strength <= 1))
    throw UsageError("--strength must be in (0, 1]", "--strength");
  if (!o.mask.empty() && !o.mask_video.empty())
    throw UsageError("give --mask or --mask-video, not both", "--mask");
  const video::ClipInversion method = video::parse_clip_inversion(o.inversion);
  int width = 0, height = 0;
  video_cli::parse_size(o.size, "--size", &width, &height);
  const video::VideoInfo src = video::probe(o.input);  // IoError / FormatError name the file
  for (const auto& f : {o.mask, o.mask_video})
    if (!f.empty() && !fs::is_regular_file(f))
      throw IoError("no such mask file", f, "check the path");

  std::cerr << "video edit: loading " << o.model << " + motion adapter " << o.motion << "\n";
  auto t0 = Clock::now();
  auto pipe = video::AnimateDiffPipeline::load(o.model, o.motion, o.device, o.dtype);
  const double load_s = seconds_since(t0);
  const int vf = pipe->vae_scale_factor();
  if (width == 0)
    video_cli::fit_size(src.width, src.height, pipe->default_size(), vf, &width, &height);
  if (width % vf != 0 || height % vf != 0)
    throw UsageError(fmt::format("--size {}x{} is not a multiple of {}", width, height, vf),
                     "--size", fmt::format("use multiples of {}", vf));
  int context = o.context;
  if (context == 0 && o.frames > pipe->max_frames()) {
    context = std::min(16, pipe->max_frames());
    std::cerr << fmt::format(
        "video edit: {} frames is more than the motion adapter reaches ({}); using windows of {} "
        "frames overlapping by {} (--context, --overlap)\n",
        o.frames, pipe->max_frames(), context, o.overlap);
  }

  // The source frames, streamed from the file at the working size (only the range is decoded).
  video::ReaderOptions ro;
  ro.width = width;
  ro.height = height;
  ro.start_s = o.start_s;
  ro.fps = o.fps.empty() ? src.fps : video::parse_fps(o.fps);
  if (!ro.fps.valid()) throw FormatError("the file states no frame rate", o.input, "pass --fps");
  t0 = Clock::now();
  video::VideoReader reader(o.input, ro);
  const at::Tensor source = read_frames(reader, o.frames);
  if (!source.defined())
    throw FormatError(fmt::format("no frames at or after {} s", o.start_s), o.input,
                      "check --start against the clip's duration");
  const int n = static_cast<int>(source.size(0));
  if (n < o.frames)
    std::cerr << fmt::format("video edit: the clip has only {} frames from {} s on\n", n,
                             o.start_s);
  at::Tensor keep;
  if (!o.mask.empty())
    keep = video_cli::load_keep_mask(o.mask, src.width, src.height, width, height, false, o.grow,
                                     o.feather);
  if (!o.mask_video.empty()) {
    // One mask frame per clip frame, over the same range at the same rate.
    video::VideoReader mr(o.mask_video, ro);
    const at::Tensor m = read_frames(mr, n);
    if (!m.defined() || m.size(0) != n)
      throw UsageError(fmt::format("the mask clip has {} frames in the range, the clip {}",
                                   m.defined() ? m.size(0) : 0, n),
                       o.mask_video, "give a mask clip as long as the clip");
    const at::Tensor level = image::mask_level(m);
    std::vector<at::Tensor> soft;
    image::ProductMaskOptions mo;
    mo.grow = o.grow;
    mo.feather = o.feather;
    for (int i = 0; i < n; ++i)
      soft.push_back(
          image::refine_mask(level[i] >= 0.5, fmt::format("{} frame {}", o.mask_video, i), mo)
              .soft);
    keep = at::stack(soft);
  }
  const double decode_s = seconds_since(t0);

  video::ClipEditOptions eo;
  eo.source_prompt = o.source_prompt;
  eo.prompt = o.prompt;
  eo.negative_prompt = o.negative;
  eo.steps = o.steps;
  eo.guidance = o.guidance;
  eo.strength = o.strength;
  eo.method = method;
  eo.keep_mask = keep;
  eo.context_frames = context;
  eo.context_overlap = o.overlap;
  eo.reconstruct = !o.no_reconstruction;
  ProgressBar bar("video edit");
  const bool tty = ProgressBar::enabled();
  eo.on_progress = [&](const video::ClipEditProgress& p) {
    if (tty)
      bar.update(p.step, p.total, p.phase);
    else if (p.step == p.total || p.step % 5 == 1)
      std::cerr << fmt::format("video edit: {} {}/{}\n", p.phase, p.step, p.total);
    return true;
  };
  const video::ClipEditResult res = video::edit_clip(*pipe, source, eo);
  bar.finish();

  // Figures: temporal consistency (the edit against the source it follows) and fidelity.
  t0 = Clock::now();
  const at::Tensor flow = video::backward_flow(source);
  nlohmann::json metrics;
  const double diff_src = video::mean_frame_difference(source);
  const double diff_edit = video::mean_frame_difference(res.frames);
  const double warp_src = video::warp_error(source, flow);
  const double warp_edit = video::warp_error(res.frames, flow);
  metrics["frames"] = n;
  metrics["temporal"] = {
      {"mean_frame_difference",
       {{"source", diff_src},
        {"edit", diff_edit},
        {"ratio", diff_src > 0 ? nlohmann::json(diff_edit / diff_src) : nlohmann::json()}}},
      {"warp_error_source_flow",
       {{"source", warp_src},
        {"edit", warp_edit},
        {"ratio", warp_src > 0 ? nlohmann::json(warp_edit / warp_src) : nlohmann::json()}}}};
  metrics["fidelity"]["vae_roundtrip_psnr_db"] = db(image::psnr(res.vae_roundtrip, source));
  if (res.reconstruction.defined())
    metrics["fidelity"]["reconstruction_psnr_db"] = db(image::psnr(res.reconstruction, source));
  at::Tensor final_frames = res.frames;
  if (keep.defined()) {
    metrics["fidelity"]["keep_region_psnr_db"] = db(video::masked_psnr(res.frames, source, keep));
    if (!o.no_composite) {
      // The product keeps its filmed pixels exactly (soft edge from --feather).
      const at::Tensor k = (keep.dim() == 2 ? keep.unsqueeze(0) : keep).unsqueeze(3);
      final_frames = k * source + (1 - k) * res.frames;
    }
    metrics["fidelity"]["composited"] = !o.no_composite;
  }
  const double metrics_s = seconds_since(t0);

  const std::string parameters = fmt::format(
      "{}\nSource prompt: {}\nNegative prompt: {}\nSteps: {}, CFG scale: {}, Strength: {}, "
      "Inversion: {}, Size: {}x{}, Frames: {}, FPS: {}, Start: {} s, Source: {}, Model: {}, "
      "Motion module: {}, Version: studio {}",
      o.prompt, o.source_prompt, o.negative, o.steps, o.guidance, o.strength,
      video::clip_inversion_name(method), width, height, n, ro.fps.str(), o.start_s,
      fs::path(o.input).filename().string(), fs::path(o.model).filename().string(),
      fs::path(o.motion).filename().string(), STUDIO_VERSION);
  video::WriterOptions wo;
  wo.fps = ro.fps;  // the source's timing
  wo.crf = o.crf;
  if (!o.no_audio && src.has_audio) {
    wo.audio_source = o.input;
    wo.audio_start_s = o.start_s;
  }
  wo.metadata = video_cli::clip_metadata(o.prompt, parameters,
                                         "AI-edited video (AnimateDiff edit by inversion of " +
                                             fs::path(o.input).filename().string() + ", studio " +
                                             STUDIO_VERSION + ")");
  const std::string encoder = video::write_frames(final_frames, o.out, wo);

  const auto fmt_db = [](const nlohmann::json& v) {
    return v.is_null() ? std::string("identical") : fmt::format("{:.2f} dB", v.get<double>());
  };
  std::cout << fmt::format("wrote {} ({} frames {}x{}, {} fps, {}{})\n", o.out, n, width, height,
                           ro.fps.str(), encoder, wo.audio_source.empty() ? "" : ", audio copied");
  std::cout << fmt::format("  mean frame difference  source {:.4f}  edit {:.4f}\n", diff_src,
                           diff_edit);
  std::cout << fmt::format("  warp error (source flow)  source {:.4f}  edit {:.4f}\n", warp_src,
                           warp_edit);
  std::cout << "  VAE round-trip PSNR " << fmt_db(metrics["fidelity"]["vae_roundtrip_psnr_db"])
            << "\n";
  if (res.reconstruction.defined())
    std::cout << "  reconstruction PSNR " << fmt_db(metrics["fidelity"]["reconstruction_psnr_db"])
              << " (" << video::clip_inversion_name(method) << " inversion)\n";
  if (keep.defined())
    std::cout << "  product region PSNR " << fmt_db(metrics["fidelity"]["keep_region_psnr_db"])
              << (o.no_composite ? "" : " before compositing") << "\n";
  std::cerr << fmt::format(
      "video edit: {} UNet passes; invert {:.1f} s, edit {:.1f} s, reconstruct {:.1f} s\n",
      res.unet_calls, res.invert_s, res.edit_s, res.reconstruct_s);

  if (!o.no_sidecar) {
    nlohmann::json side{
        {"generator", std::string("studio ") + STUDIO_VERSION},
        {"command", "video edit"},
        {"ai_generated", true},
        {"digital_source_type",
         "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"},
        {"model", "AnimateDiff (Stable Diffusion 1.x + motion adapter), edit by inversion"},
        {"source",
         {{"file", o.input},
          {"sha256", sha256_file_hex(o.input)},
          {"start_s", o.start_s},
          {"frames", n},
          {"fps", ro.fps.str()}}},
        {"parameters",
         {{"prompt", o.prompt},
          {"source_prompt", o.source_prompt},
          {"negative_prompt", o.negative},
          {"steps", o.steps},
          {"guidance", o.guidance},
          {"strength", o.strength},
          {"inversion", video::clip_inversion_name(method)},
          {"width", width},
          {"height", height},
          {"context_frames", context},
          {"context_overlap", o.overlap},
          {"mask", !o.mask.empty() ? o.mask : o.mask_video},
          {"grow", o.grow},
          {"feather", o.feather},
          {"timesteps", res.timesteps},
          {"scheduler_note", res.scheduler_note},
          {"unet_calls", res.unet_calls}}},
        {"metrics", metrics},
        {"models", video_cli::models_json(o.model, o.motion)},
        {"output", video_cli::output_json(o.out, encoder)},
        {"timings",
         {{"load_s", load_s},
          {"decode_s", decode_s},
          {"invert_s", res.invert_s},
          {"edit_s", res.edit_s},
          {"reconstruct_s", res.reconstruct_s},
          {"metrics_s", metrics_s},
          {"total_s", seconds_since(t_start)}}}};
    write_file_atomic(o.out + ".json", side.dump(2) + "\n");
  }
  return kExitOk;
}

}  // namespace

void add_video_edit_command(CLI::App& video, CommandAction* action) {
  auto o = std::make_shared<VideoEditOptions>();
  auto* cmd = video.add_subcommand(
      "edit",
      "Edit an existing clip by inversion (AnimateDiff): new prompt, product kept, same timing");
  cmd->add_option("--model", o->model, "Stable Diffusion 1.x pipeline folder")->required();
  cmd->add_option("--motion", o->motion, "AnimateDiff motion adapter folder")->required();
  cmd->add_option("--input", o->input, "the clip to edit (any format FFmpeg reads)")->required();
  cmd->add_option("--prompt", o->prompt, "the edited prompt")->required();
  cmd->add_option("--source-prompt", o->source_prompt,
                  "what the clip shows (inverted under it; default \"\")");
  cmd->add_option("--negative", o->negative, "negative prompt");
  cmd->add_option("--frames", o->frames, "frames to edit (default 16)");
  cmd->add_option("--start", o->start_s, "first frame at or after this time (s)");
  cmd->add_option("--fps", o->fps, "resample to this rate first (default: the source's)");
  cmd->add_option("--size", o->size,
                  "working size WxH (default: the model's native long side, the clip's aspect)");
  cmd->add_option("--steps", o->steps, "DDIM steps (default 25)");
  cmd->add_option("--guidance", o->guidance, "classifier-free guidance (default 7.5)");
  cmd->add_option("--strength", o->strength,
                  "how deep the edit goes, (0, 1] (default 1: from the inverted noise)");
  cmd->add_option("--inversion", o->inversion,
                  "direct (default; exact reconstruction), negative-prompt or ddim");
  cmd->add_option("--mask", o->mask, "product mask picture (white = keep), for every frame");
  cmd->add_option("--mask-video", o->mask_video, "product mask clip, one mask per frame");
  cmd->add_option("--grow", o->grow, "grow (> 0) or shrink (< 0) the mask by pixels");
  cmd->add_option("--feather", o->feather, "soft mask edge in pixels");
  cmd->add_flag("--no-composite", o->no_composite,
                "do not paste the masked source pixels back over the edit");
  cmd->add_option("--context", o->context,
                  "frames per motion window for long clips (default: all, or 16 when longer "
                  "than the adapter reaches)");
  cmd->add_option("--overlap", o->overlap, "frames shared by neighbouring windows (default 4)");
  cmd->add_flag("--no-reconstruction", o->no_reconstruction,
                "skip the reconstruction pass (no reconstruction PSNR; about a third faster)");
  cmd->add_flag("--no-audio", o->no_audio, "drop the audio (default: copied from the source)");
  cmd->add_option("--crf", o->crf, "H.264 quality, 0 (lossless) to 51 (default 18)");
  cmd->add_option("--device", o->device, "auto, cpu, cuda or cuda:N");
  cmd->add_option("--dtype", o->dtype, "auto, fp32, fp16 or bf16");
  cmd->add_option("--out", o->out, "output clip: .mp4 (or .mov, .mkv)")->required();
  cmd->add_flag("--no-sidecar", o->no_sidecar, "do not write OUT.json");
  cmd->callback([action, o] { *action = [o] { return run_video_edit(*o); }; });
}

}  // namespace studio
