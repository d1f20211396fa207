#include "video/animatediff_pipeline.h"

#include <torch/torch.h>

#include "core/checkpoint.h"
#include "core/device.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/random.h"
#include "core/scheduler.h"
#include "image/unet.h"
#include "image/vae.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"
#include "video/unet_motion.h"

namespace studio::video {

namespace fs = std::filesystem;

struct AnimateDiffPipeline::Impl {
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = c10::kFloat;
  std::unique_ptr<ClipTokenizer> tokenizer;
  ClipTextModel text_encoder{nullptr};
  UNetMotionModel unet{nullptr};
  image::AutoencoderKL vae{nullptr};
  nlohmann::json scheduler_config;
  std::string scheduler_origin;
};

AnimateDiffPipeline::AnimateDiffPipeline() : impl_(std::make_unique<Impl>()) {}
AnimateDiffPipeline::~AnimateDiffPipeline() = default;

std::unique_ptr<AnimateDiffPipeline> AnimateDiffPipeline::load(const fs::path& sd_dir,
                                                               const fs::path& motion_dir,
                                                               const std::string& device,
                                                               const std::string& dtype) {
  const CheckpointInfo info = inspect_checkpoint(sd_dir);
  if (info.kind != CheckpointKind::DiffusersPipeline)
    throw ConfigError(
        std::string("expected a diffusers pipeline folder (model_index.json), found a ") +
            checkpoint_kind_name(info.kind),
        sd_dir.string(), "point at a Stable Diffusion 1.x folder holding model_index.json");
  fs::path adapter_dir = motion_dir;
  fs::path scheduler_path;
  if (fs::is_directory(motion_dir / "motion_adapter")) {
    adapter_dir = motion_dir / "motion_adapter";
    if (fs::is_regular_file(motion_dir / "scheduler" / "scheduler_config.json"))
      scheduler_path = motion_dir / "scheduler" / "scheduler_config.json";
  }
  std::unique_ptr<AnimateDiffPipeline> p(new AnimateDiffPipeline());
  Impl& m = *p->impl_;
  m.device = select_device(device);
  m.dtype = select_dtype(dtype, m.device);
  m.tokenizer =
      std::make_unique<ClipTokenizer>(ClipTokenizer::load(find_component(info, "tokenizer").dir));
  m.text_encoder = load_clip_text_model(find_component(info, "text_encoder"));
  m.unet = UNetMotionModel(image::load_unet(find_component(info, "unet")),
                           load_motion_adapter(adapter_dir));
  m.vae = image::load_vae(find_component(info, "vae"));
  if (!scheduler_path.empty()) {
    m.scheduler_config = read_json_file(scheduler_path);
    m.scheduler_origin = scheduler_path.string();
  } else {
    const auto& sched = find_component(info, "scheduler");
    m.scheduler_config = sched.config;
    m.scheduler_origin = (sched.dir / "scheduler_config.json").string();
  }
  make_scheduler(m.scheduler_config, m.scheduler_origin);  // validate now
  for (torch::nn::Module* mod : {static_cast<torch::nn::Module*>(m.text_encoder.get()),
                                 static_cast<torch::nn::Module*>(m.unet.get()),
                                 static_cast<torch::nn::Module*>(m.vae.get())}) {
    mod->to(m.device, m.dtype);
    mod->eval();
    for (auto& param : mod->parameters()) param.set_requires_grad(false);
  }
  return p;
}

int AnimateDiffPipeline::vae_scale_factor() const {
  return 1 << (static_cast<int>(impl_->vae->config().block_out_channels.size()) - 1);
}

int AnimateDiffPipeline::default_size() const {
  return static_cast<int>(impl_->unet->unet()->config().sample_size) * vae_scale_factor();
}

int AnimateDiffPipeline::max_frames() const {
  return static_cast<int>(impl_->unet->adapter()->config().motion_max_seq_length);
}

const nlohmann::json& AnimateDiffPipeline::scheduler_config() const {
  return impl_->scheduler_config;
}

at::Tensor AnimateDiffPipeline::encode_prompt(const std::vector<std::string>& prompts) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids;
  for (const auto& text : prompts) {
    const auto enc = impl_->tokenizer->encode_padded(text, impl_->tokenizer->model_max_length());
    ids.insert(ids.end(), enc.input_ids.begin(), enc.input_ids.end());
  }
  const int64_t n = static_cast<int64_t>(prompts.size());
  const at::Tensor t = at::tensor(ids, at::kLong).view({n, -1}).to(impl_->device);
  return impl_->text_encoder->forward(t).last_hidden_state;
}

at::Tensor AnimateDiffPipeline::decode_latents(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  if (latents.dim() != 5) throw UsageError("latents must be [B, C, F, h, w]", "decode_latents");
  const int64_t b = latents.size(0), c = latents.size(1), f = latents.size(2);
  const at::Tensor z = (latents.to(impl_->device, impl_->dtype) / impl_->vae->scaling_factor())
                           .permute({0, 2, 1, 3, 4})
                           .reshape({b * f, c, latents.size(3), latents.size(4)});
  const at::Tensor x = impl_->vae->decode(z);  // [B·F, 3, H, W]
  return (x / 2 + 0.5)
      .clamp(0, 1)
      .permute({0, 2, 3, 1})
      .reshape({b, f, x.size(2), x.size(3), x.size(1)})
      .to(at::kCPU, at::kFloat)
      .contiguous();
}

at::Tensor AnimateDiffPipeline::encode_frames(const at::Tensor& frames) {
  torch::NoGradGuard no_grad;
  const int f = vae_scale_factor();
  if (!frames.defined() || frames.dim() != 4 || frames.size(3) != 3 || frames.size(0) < 1 ||
      frames.size(1) % f != 0 || frames.size(2) % f != 0)
    throw UsageError("frames must be [F, H, W, 3] with H and W multiples of " + std::to_string(f),
                     "encode_frames");
  const int64_t n = frames.size(0);
  std::vector<at::Tensor> parts;
  // A few frames per VAE call: the encoder's activations at full resolution dominate memory.
  for (int64_t i = 0; i < n; i += 4) {
    const at::Tensor x = frames.slice(0, i, std::min(n, i + 4))
                                 .permute({0, 3, 1, 2})
                                 .to(impl_->device, impl_->dtype) *
                             2 -
                         1;
    parts.push_back(impl_->vae->encode(x).mean * impl_->vae->scaling_factor());
  }
  // [F, C, h, w] -> [1, C, F, h, w]
  return at::cat(parts).permute({1, 0, 2, 3}).unsqueeze(0).contiguous();
}

std::vector<std::pair<int, int>> context_windows(int num_frames, int context_frames, int overlap) {
  if (num_frames < 1) throw UsageError("a clip needs at least one frame", "context_windows");
  if (context_frames < 0) throw UsageError("context frames must be >= 0", "--context");
  if (context_frames == 0 || context_frames >= num_frames) return {{0, num_frames}};
  if (overlap < 0 || overlap >= context_frames)
    throw UsageError("the context overlap must be in [0, " + std::to_string(context_frames - 1) +
                         "], got " + std::to_string(overlap),
                     "--overlap", "use fewer overlapping frames than frames per window");
  std::vector<std::pair<int, int>> out;
  for (int start = 0;; start += context_frames - overlap) {
    if (start + context_frames >= num_frames) {
      out.emplace_back(num_frames - context_frames, num_frames);
      break;
    }
    out.emplace_back(start, start + context_frames);
  }
  return out;
}

at::Tensor AnimateDiffPipeline::predict_noise(const at::Tensor& latents, double timestep,
                                              const at::Tensor& context, int context_frames,
                                              int context_overlap) {
  torch::NoGradGuard no_grad;
  Impl& m = *impl_;
  if (!latents.defined() || latents.dim() != 5)
    throw UsageError("latents must be [B, C, F, h, w]", "predict_noise");
  const at::Tensor x = latents.to(m.device, m.dtype);
  const at::Tensor ctx = context.to(m.device, m.dtype);
  const int frames = static_cast<int>(x.size(2));
  const auto windows = context_windows(frames, context_frames, context_overlap);
  const int reach = windows.front().second - windows.front().first;
  if (reach > max_frames())
    throw UsageError(
        std::to_string(reach) + " frames in one motion window, the adapter reaches " +
            std::to_string(max_frames()) + " (motion_max_seq_length)",
        "predict_noise",
        "use context windows (--context) of at most " + std::to_string(max_frames()) + " frames");
  if (windows.size() == 1) return m.unet->forward(x, timestep, ctx);
  // Per-frame weights: 1 inside a window, ramping down linearly across each overlap with a
  // neighbouring window, so every frame's prediction is a weighted mean of the windows that see it.
  at::Tensor acc, weight_sum = at::zeros({frames}, at::TensorOptions().dtype(at::kFloat));
  for (std::size_t k = 0; k < windows.size(); ++k) {
    const auto [a, b] = windows[k];
    const int len = b - a;
    const int before = k > 0 ? windows[k - 1].second - a : 0;
    const int after = k + 1 < windows.size() ? b - windows[k + 1].first : 0;
    std::vector<float> w(len, 1.f);
    for (int j = 0; j < len; ++j) {
      if (j < before) w[j] *= float(j + 1) / float(before + 1);
      if (j >= len - after) w[j] *= float(len - j) / float(after + 1);
    }
    const at::Tensor wt = at::tensor(w);
    const at::Tensor eps = m.unet->forward(x.slice(2, a, b).contiguous(), timestep, ctx);
    if (!acc.defined())
      acc = at::zeros({eps.size(0), eps.size(1), frames, eps.size(3), eps.size(4)}, eps.options());
    acc.slice(2, a, b) += eps * wt.to(eps.device(), eps.scalar_type()).view({1, 1, len, 1, 1});
    weight_sum.slice(0, a, b) += wt;
  }
  return acc / weight_sum.to(acc.device(), acc.scalar_type()).view({1, 1, frames, 1, 1});
}

at::Tensor video_keep_mask(const at::Tensor& mask, const at::Tensor& latents, int vae_factor,
                           bool keep_first) {
  const int64_t frames = latents.size(2), h = latents.size(3), w = latents.size(4);
  at::Tensor m;
  if (mask.defined()) {
    m = mask.detach().to(at::kCPU, at::kFloat);
    while (m.dim() > 3 && m.size(0) == 1) m = m.squeeze(0);
    if (m.dim() == 2) m = m.unsqueeze(0);
    if (m.dim() != 3 || (m.size(0) != 1 && m.size(0) != frames))
      throw UsageError("the keep-mask must be [H, W] or [F, H, W] with F = " +
                           std::to_string(frames) + " frames",
                       "keep-mask");
    if (m.size(1) == h * vae_factor && m.size(2) == w * vae_factor && vae_factor > 1)
      m = at::adaptive_avg_pool2d(m.unsqueeze(1), {h, w}).squeeze(1);
    if (m.size(1) != h || m.size(2) != w)
      throw UsageError("the keep-mask is " + std::to_string(m.size(2)) + "x" +
                           std::to_string(m.size(1)) + ", the clip's latents are " +
                           std::to_string(w) + "x" + std::to_string(h),
                       "keep-mask", "give the mask at the clip's pixel size or at latent size");
    if (m.min().item<float>() < 0.f || m.max().item<float>() > 1.f)
      throw UsageError("keep-mask values must lie in [0, 1]", "keep-mask");
  }
  if (keep_first) {
    if (!m.defined()) m = at::zeros({1, h, w});
    if (m.size(0) != frames) m = m.expand({frames, h, w}).clone();
    m[0].fill_(1.f);
  }
  if (!m.defined()) return {};
  return m.unsqueeze(0).unsqueeze(0).to(latents.device(), latents.scalar_type());
}

VideoResult AnimateDiffPipeline::generate(const VideoRequest& r) {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  const int f = vae_scale_factor();
  const int width = r.width > 0 ? r.width : default_size();
  const int height = r.height > 0 ? r.height : default_size();
  if (width % f != 0 || height % f != 0)
    throw UsageError("size " + std::to_string(width) + "x" + std::to_string(height) +
                         " is not a multiple of " + std::to_string(f),
                     "AnimateDiffPipeline", "use multiples of " + std::to_string(f));
  if (r.steps < 1) throw UsageError("steps must be at least 1", "AnimateDiffPipeline");
  if (r.num_frames < 1) throw UsageError("num_frames must be at least 1", "AnimateDiffPipeline");
  if (r.context_frames > max_frames() || (r.context_frames == 0 && r.num_frames > max_frames()))
    throw UsageError(std::to_string(r.context_frames > 0 ? r.context_frames : r.num_frames) +
                         " frames in one motion window, more than the adapter's " +
                         std::to_string(max_frames()) + " (motion_max_seq_length)",
                     "AnimateDiffPipeline",
                     "make longer clips with context windows (--context) of at most " +
                         std::to_string(max_frames()) + " frames");
  const auto windows = context_windows(r.num_frames, r.context_frames, r.context_overlap);
  if (!r.init_frames && (r.keep_mask.defined() || r.keep_first_frame))
    throw UsageError("a keep-mask or keep_first_frame needs init frames", "AnimateDiffPipeline",
                     "give the picture to start from (--init)");
  if (r.init_frames && !(r.strength > 0.0 && r.strength <= 1.0))
    throw UsageError("strength must be in (0, 1], got " + std::to_string(r.strength), "--strength");
  if (r.prompt_embeds.has_value() != r.negative_prompt_embeds.has_value())
    throw UsageError("give both prompt_embeds and negative_prompt_embeds, or neither",
                     "AnimateDiffPipeline");
  const bool cfg = r.guidance > 1.0;
  const auto opts = at::TensorOptions().device(m.device).dtype(m.dtype);

  VideoResult out;
  const at::Tensor cond =
      r.prompt_embeds ? r.prompt_embeds->to(m.device, m.dtype) : encode_prompt({r.prompt});
  out.prompt_embeds = cond.to(at::kCPU, at::kFloat);
  at::Tensor context = cond;
  if (cfg) {
    const at::Tensor uncond = r.negative_prompt_embeds
                                  ? r.negative_prompt_embeds->to(m.device, m.dtype)
                                  : encode_prompt({r.negative_prompt});
    out.negative_prompt_embeds = uncond.to(at::kCPU, at::kFloat);
    context = at::cat({uncond, cond});
  }

  std::unique_ptr<Scheduler> sched =
      r.scheduler_config ? make_scheduler(*r.scheduler_config, "VideoRequest.scheduler_config")
                         : make_scheduler(m.scheduler_config, m.scheduler_origin);
  if (r.eta != 0.0) sched->set_eta(r.eta);
  sched->set_timesteps(r.steps);

  at::Generator gen = make_cpu_generator(r.seed);
  const int64_t lc = m.unet->unet()->config().in_channels;
  const std::vector<int64_t> shape{1, lc, r.num_frames, height / f, width / f};
  at::Tensor latents, init, noise, keep;
  const auto& ts = sched->timesteps();
  std::size_t begin = 0;
  if (r.init_frames) {
    at::Tensor frames = r.init_frames->to(at::kCPU, at::kFloat);
    if (frames.dim() == 3) frames = frames.unsqueeze(0);
    if (frames.dim() != 4 || frames.size(3) != 3 || frames.size(1) != height ||
        frames.size(2) != width || (frames.size(0) != 1 && frames.size(0) != r.num_frames))
      throw UsageError("init frames must be [H, W, 3] or [F, H, W, 3] at the output size " +
                           std::to_string(width) + "x" + std::to_string(height) +
                           " with F = " + std::to_string(r.num_frames),
                       "VideoRequest::init_frames");
    init = encode_frames(frames);
    if (init.size(2) != r.num_frames) init = init.expand(shape).contiguous();
    begin = sched->begin_index_for_strength(r.strength);
    if (begin >= ts.size())
      throw UsageError("strength " + std::to_string(r.strength) + " with " +
                           std::to_string(r.steps) + " steps runs no step",
                       "--strength", "raise the strength or the number of steps");
    noise = seeded_randn(shape, gen, opts);
    latents = sched->add_noise_at(init, noise, begin);
    keep = video_keep_mask(r.keep_mask, latents, f, r.keep_first_frame);
  } else if (r.latents) {
    if (r.latents->sizes() != at::IntArrayRef(shape))
      throw UsageError("given latents have the wrong shape for this size and frame count",
                       "AnimateDiffPipeline");
    latents = r.latents->to(m.device, m.dtype);
  } else {
    latents = seeded_randn(shape, gen, opts) * sched->init_noise_sigma();
  }
  out.init_latents = latents.to(at::kCPU, at::kFloat);

  const int total = static_cast<int>(ts.size() - begin);
  for (std::size_t i = begin; i < ts.size(); ++i) {
    at::Tensor model_in = cfg ? at::cat({latents, latents}) : latents;
    model_in = sched->scale_model_input(model_in, i);
    at::Tensor eps = predict_noise(model_in, ts[i], context, r.context_frames, r.context_overlap);
    out.unet_calls += static_cast<int>(windows.size());
    if (cfg) {
      auto parts = eps.chunk(2);
      eps = parts[0] + r.guidance * (parts[1] - parts[0]);
    }
    latents = sched->step(eps, i, latents, &gen);
    if (keep.defined()) {
      // The kept region follows the init, noised to the level the latents now have.
      const at::Tensor target = i + 1 < ts.size() ? sched->add_noise_at(init, noise, i + 1) : init;
      latents = keep * target + (1 - keep) * latents;
    }
    out.timesteps.push_back(ts[i]);
    if (r.keep_step_latents) out.step_latents.push_back(latents.to(at::kCPU, at::kFloat));
    if (r.on_step) {
      VideoStepInfo info{static_cast<int>(i - begin) + 1, total, ts[i], &latents};
      if (!r.on_step(info)) {
        out.cancelled = true;
        return out;
      }
    }
  }
  out.frames = decode_latents(latents)[0];
  return out;
}

std::string write_frames(const at::Tensor& frames, const fs::path& path, WriterOptions options) {
  if (!frames.defined() || frames.dim() != 4 || frames.size(3) != 3 || frames.size(0) < 1)
    throw UsageError("frames must be [F, H, W, 3] in [0, 1]", "write_frames");
  const int height = static_cast<int>(frames.size(1)), width = static_cast<int>(frames.size(2));
  if (options.width == 0) options.width = width;
  if (options.height == 0) options.height = height;
  if (options.width != width || options.height != height)
    throw UsageError("the writer's size differs from the frames' size", "write_frames");
  const at::Tensor rgb =
      (frames.to(at::kCPU, at::kFloat) * 255.0).round().clamp(0, 255).to(at::kByte).contiguous();
  VideoWriter writer(path, options);
  for (int64_t i = 0; i < rgb.size(0); ++i)
    writer.write(rgb[i].data_ptr<uint8_t>(), width, height, width * 3);
  writer.finish();
  return writer.encoder_name();
}

}  // namespace studio::video
