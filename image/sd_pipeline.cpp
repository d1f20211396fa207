#include "image/sd_pipeline.h"

#include <torch/torch.h>

#include "core/checkpoint.h"
#include "core/device.h"
#include "core/error.h"
#include "core/random.h"
#include "image/unet.h"
#include "image/vae.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"

namespace studio::image {

struct SdPipeline::Impl {
  std::filesystem::path path;
  CheckpointInfo checkpoint;
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = c10::kFloat;
  std::unique_ptr<ClipTokenizer> tokenizer;
  ClipTextModel text_encoder{nullptr};
  UNet2DConditionModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  nlohmann::json scheduler_config;
  std::string scheduler_origin;
};

SdPipeline::SdPipeline() : impl_(std::make_unique<Impl>()) {}
SdPipeline::~SdPipeline() = default;

std::unique_ptr<SdPipeline> SdPipeline::load(const std::filesystem::path& dir,
                                             const std::string& device, const std::string& dtype,
                                             const std::string& variant) {
  const CheckpointInfo info = inspect_checkpoint(dir, variant);
  if (info.kind != CheckpointKind::DiffusersPipeline)
    throw ConfigError(std::string("expected a diffusers pipeline folder (model_index.json), found a ") +
                          checkpoint_kind_name(info.kind),
                      dir.string(), "point --model at the folder holding model_index.json");
  std::unique_ptr<SdPipeline> p(new SdPipeline());
  Impl& m = *p->impl_;
  m.path = dir;
  m.checkpoint = info;
  m.device = select_device(device);
  m.dtype = select_dtype(dtype, m.device);
  m.tokenizer = std::make_unique<ClipTokenizer>(
      ClipTokenizer::load(find_component(info, "tokenizer").dir));
  m.text_encoder = load_clip_text_model(find_component(info, "text_encoder"));
  m.unet = load_unet(find_component(info, "unet"));
  m.vae = load_vae(find_component(info, "vae"));
  const auto& sched = find_component(info, "scheduler");
  m.scheduler_config = sched.config;
  m.scheduler_origin = (sched.dir / "scheduler_config.json").string();
  make_scheduler(m.scheduler_config, m.scheduler_origin);  // validate now, not mid-batch
  for (torch::nn::Module* mod : {static_cast<torch::nn::Module*>(m.text_encoder.get()),
                                 static_cast<torch::nn::Module*>(m.unet.get()),
                                 static_cast<torch::nn::Module*>(m.vae.get())}) {
    mod->to(m.device, m.dtype);
    mod->eval();
    // Frozen: inference never needs weight gradients, and null-text inversion differentiates
    // through the UNet with respect to its inputs only.
    for (auto& param : mod->parameters()) param.set_requires_grad(false);
  }
  return p;
}

const ClipTokenizer& SdPipeline::tokenizer() const { return *impl_->tokenizer; }
const std::filesystem::path& SdPipeline::path() const { return impl_->path; }
const CheckpointInfo& SdPipeline::checkpoint() const { return impl_->checkpoint; }
const nlohmann::json& SdPipeline::scheduler_config() const { return impl_->scheduler_config; }

int SdPipeline::vae_scale_factor() const {
  return 1 << (static_cast<int>(impl_->vae->config().block_out_channels.size()) - 1);
}

int SdPipeline::default_size() const {
  return static_cast<int>(impl_->unet->config().sample_size) * vae_scale_factor();
}

at::Tensor SdPipeline::encode_prompt(const std::vector<std::string>& prompts, int clip_skip) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids;
  for (const auto& p : prompts) {
    const auto enc = impl_->tokenizer->encode_padded(p, impl_->tokenizer->model_max_length());
    ids.insert(ids.end(), enc.input_ids.begin(), enc.input_ids.end());
  }
  const int64_t n = static_cast<int64_t>(prompts.size());
  at::Tensor t = at::tensor(ids, at::kLong).view({n, -1}).to(impl_->device);
  return impl_->text_encoder->forward(t, clip_skip).last_hidden_state;
}

std::unique_ptr<Scheduler> SdPipeline::make_request_scheduler(const GenerateRequest& r) const {
  if (r.scheduler_config) return make_scheduler(*r.scheduler_config, "--scheduler-config");
  if (!r.scheduler.empty())
    return make_scheduler(r.scheduler, impl_->scheduler_config, impl_->scheduler_origin);
  return make_scheduler(impl_->scheduler_config, impl_->scheduler_origin);
}

at::Tensor SdPipeline::vae_encode_mean(const at::Tensor& image_nchw) {
  torch::NoGradGuard no_grad;
  return impl_->vae->encode(image_nchw.to(impl_->device, impl_->dtype)).mean *
         impl_->vae->scaling_factor();
}

at::Tensor SdPipeline::vae_decode(const at::Tensor& latents) {
  torch::NoGradGuard no_grad;
  at::Tensor x = impl_->vae->decode(latents.to(impl_->device, impl_->dtype) /
                                    impl_->vae->scaling_factor());
  return (x / 2 + 0.5).clamp(0, 1).permute({0, 2, 3, 1}).to(at::kCPU, at::kFloat).contiguous();
}

at::Tensor SdPipeline::predict_noise(const at::Tensor& latents, double timestep,
                                     const at::Tensor& context) {
  if (!latents.defined() || latents.dim() != 4 || !context.defined() || context.dim() != 3 ||
      latents.size(0) != context.size(0))
    throw UsageError("predict_noise expects latents [B, C, h, w] and context [B, L, D] of one batch",
                     "SdPipeline::predict_noise");
  return impl_->unet->forward(latents.to(impl_->device, impl_->dtype), timestep,
                              context.to(impl_->device, impl_->dtype));
}

c10::Device SdPipeline::device() const { return impl_->device; }
c10::ScalarType SdPipeline::dtype() const { return impl_->dtype; }
int64_t SdPipeline::latent_channels() const { return impl_->unet->config().in_channels; }

GenerateResult SdPipeline::generate(const GenerateRequest& r) {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  const int f = vae_scale_factor();
  const int width = r.width > 0 ? r.width : default_size();
  const int height = r.height > 0 ? r.height : default_size();
  if (width % f != 0 || height % f != 0)
    throw UsageError("size " + std::to_string(width) + "x" + std::to_string(height) +
                         " is not a multiple of " + std::to_string(f),
                     "--size", "use multiples of " + std::to_string(f) + " (e.g. 512x512)");
  if (r.num_images < 1) throw UsageError("the number of images must be at least 1", "-n");
  if (r.steps < 1) throw UsageError("steps must be at least 1", "--steps");
  const bool cfg = r.guidance > 1.0;
  const int64_t n = r.num_images;

  GenerateResult out;
  at::Tensor cond = encode_prompt({r.prompt}, r.clip_skip);
  out.prompt_embeds = cond.to(at::kCPU, at::kFloat);
  at::Tensor context = cond.repeat({n, 1, 1});
  if (cfg) {
    at::Tensor uncond = encode_prompt({r.negative_prompt}, r.clip_skip);
    out.negative_prompt_embeds = uncond.to(at::kCPU, at::kFloat);
    context = at::cat({uncond.repeat({n, 1, 1}), context});
  }

  std::unique_ptr<Scheduler> sched = make_request_scheduler(r);
  out.scheduler_class = sched->class_name();
  if (r.eta != 0.0) sched->set_eta(r.eta);
  sched->set_timesteps(r.steps);

  at::Generator gen = make_cpu_generator(r.seed);
  const int64_t lc = m.unet->config().in_channels;
  const std::vector<int64_t> shape{n, lc, height / f, width / f};
  const auto opts = at::TensorOptions().device(m.device).dtype(m.dtype);
  std::size_t begin = 0;
  at::Tensor latents;
  if (r.init_image) {
    const at::Tensor& img = *r.init_image;
    if (img.dim() != 4 || img.size(0) != 1 || img.size(1) != 3 || img.size(2) != height ||
        img.size(3) != width)
      throw UsageError("init image must be [1, 3, " + std::to_string(height) + ", " +
                       std::to_string(width) + "]");
    begin = sched->begin_index_for_strength(r.strength);
    if (begin >= sched->timesteps().size())
      throw UsageError("strength " + std::to_string(r.strength) + " with " +
                           std::to_string(r.steps) + " steps runs no step",
                       "--strength", "raise the strength or the number of steps");
    // diffusers: latent_dist.sample(generator) first, then the noise, from the same generator.
    const DiagonalGaussian post = m.vae->encode(img.to(m.device, m.dtype).repeat({n, 1, 1, 1}));
    at::Tensor init = post.sample(gen) * m.vae->scaling_factor();
    const at::Tensor noise = seeded_randn(shape, gen, opts);
    latents = sched->add_noise_at(init, noise, begin);
  } else if (r.latents) {
    if (r.latents->sizes() != at::IntArrayRef(shape))
      throw UsageError("given latents have the wrong shape for this size and batch");
    latents = r.latents->to(m.device, m.dtype);
  } else {
    latents = seeded_randn(shape, gen, opts) * sched->init_noise_sigma();
  }
  out.init_latents = latents.to(at::kCPU, at::kFloat);

  const auto& ts = sched->timesteps();
  const int total = static_cast<int>(ts.size() - begin);
  for (std::size_t i = begin; i < ts.size(); ++i) {
    at::Tensor model_in = cfg ? at::cat({latents, latents}) : latents;
    model_in = sched->scale_model_input(model_in, i);
    at::Tensor eps = m.unet->forward(model_in, ts[i], context);
    ++out.unet_calls;
    if (cfg) {
      auto parts = eps.chunk(2);
      eps = parts[0] + r.guidance * (parts[1] - parts[0]);
    }
    latents = sched->step(eps, i, latents, &gen);
    out.timesteps.push_back(ts[i]);
    if (r.keep_step_latents) out.step_latents.push_back(latents.to(at::kCPU, at::kFloat));
    if (r.on_step) {
      StepInfo info{static_cast<int>(i - begin) + 1, total, ts[i], &latents};
      if (!r.on_step(info)) {
        out.cancelled = true;
        return out;
      }
    }
  }
  out.images = vae_decode(latents);
  return out;
}

}  // namespace studio::image
