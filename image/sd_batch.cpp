#include "image/sd_batch.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/random.h"

namespace studio::image {

BatchResult generate_batch(SdPipeline& pipe, const BatchRequest& r) {
  torch::NoGradGuard no_grad;
  if (r.rows.empty()) throw UsageError("a batch needs at least one row", "generate_batch");
  const int f = pipe.vae_scale_factor();
  const int width = r.width > 0 ? r.width : pipe.default_size();
  const int height = r.height > 0 ? r.height : pipe.default_size();
  if (width % f != 0 || height % f != 0)
    throw UsageError("size " + std::to_string(width) + "x" + std::to_string(height) +
                         " is not a multiple of " + std::to_string(f),
                     "--size", "use multiples of " + std::to_string(f) + " (e.g. 512x512)");
  if (r.steps < 1) throw UsageError("steps must be at least 1", "--steps");
  const bool cfg = r.guidance > 1.0;
  const size_t n = r.rows.size();

  // The scheduler settings every row shares, as a GenerateRequest for make_request_scheduler.
  GenerateRequest shared;
  shared.steps = r.steps;
  shared.scheduler = r.scheduler;
  shared.scheduler_config = r.scheduler_config;

  // Conditioning: each prompt encoded on its own, as generate() encodes it.
  std::vector<at::Tensor> conds, unconds;
  for (const BatchRow& row : r.rows) {
    conds.push_back(pipe.encode_prompt({row.prompt}, r.clip_skip));
    if (cfg) unconds.push_back(pipe.encode_prompt({row.negative_prompt}, r.clip_skip));
  }
  at::Tensor context = at::cat(conds);
  if (cfg) context = at::cat({at::cat(unconds), context});

  // Per row: a scheduler (multistep history) and a generator (initial and ancestral noise).
  std::vector<std::unique_ptr<Scheduler>> scheds;
  std::vector<at::Generator> gens;
  std::vector<at::Tensor> latents;
  const std::vector<int64_t> shape{1, pipe.latent_channels(), height / f, width / f};
  const auto opts = at::TensorOptions().device(pipe.device()).dtype(pipe.dtype());
  for (const BatchRow& row : r.rows) {
    std::unique_ptr<Scheduler> s = pipe.make_request_scheduler(shared);
    if (r.eta != 0.0) s->set_eta(r.eta);
    s->set_timesteps(r.steps);
    at::Generator gen = make_cpu_generator(row.seed);
    latents.push_back(seeded_randn(shape, gen, opts) * s->init_noise_sigma());
    scheds.push_back(std::move(s));
    gens.push_back(std::move(gen));
  }

  BatchResult out;
  out.scheduler_class = scheds[0]->class_name();
  const std::vector<double> ts = scheds[0]->timesteps();
  for (size_t i = 0; i < ts.size(); ++i) {
    std::vector<at::Tensor> scaled;
    for (size_t k = 0; k < n; ++k) scaled.push_back(scheds[k]->scale_model_input(latents[k], i));
    at::Tensor x = at::cat(scaled);
    at::Tensor model_in = cfg ? at::cat({x, x}) : x;
    at::Tensor eps = pipe.predict_noise(model_in, ts[i], context);
    ++out.unet_calls;
    const int64_t rows = static_cast<int64_t>(n);
    for (size_t k = 0; k < n; ++k) {
      const int64_t kk = static_cast<int64_t>(k);
      at::Tensor e;
      if (cfg) {
        const at::Tensor u = eps.narrow(0, kk, 1), c = eps.narrow(0, rows + kk, 1);
        e = u + r.guidance * (c - u);
      } else {
        e = eps.narrow(0, kk, 1);
      }
      latents[k] = scheds[k]->step(e, i, latents[k], &gens[k]);
    }
    out.timesteps.push_back(ts[i]);
  }
  // Decoded row by row: the VAE at full resolution is the memory peak, and per-row decoding keeps
  // it at a single run's.
  std::vector<at::Tensor> images;
  for (size_t k = 0; k < n; ++k) images.push_back(pipe.vae_decode(latents[k]));
  out.images = at::cat(images);
  return out;
}

}  // namespace studio::image
