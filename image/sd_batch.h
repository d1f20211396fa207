// Cross-request batching for txt2img: several independent requests that share size, steps,
// guidance and scheduler run through one UNet call per step, each row keeping its own prompt,
// negative prompt, seed, scheduler state and generator, so a row means what a single run means.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/sd_pipeline.h"

namespace studio::image {

// One row of a batch: what differs between the requests that are batched together.
struct BatchRow {
  std::string prompt;
  std::string negative_prompt;  // "" = unconditional
  uint64_t seed = 0;
};

// Settings every row shares (the same meaning as GenerateRequest's fields of the same names).
struct BatchRequest {
  std::vector<BatchRow> rows;
  int steps = 25;
  double guidance = 7.5;       // <= 1 disables classifier-free guidance
  int width = 0, height = 0;   // 0: the pipeline's default size
  double eta = 0.0;            // DDIM only
  int clip_skip = 0;
  std::string scheduler;       // class name or alias; empty: the model's
  std::optional<nlohmann::json> scheduler_config;
};

struct BatchResult {
  at::Tensor images;              // NHWC float32 [0, 1] on the CPU, one image per row, in row order
  std::vector<double> timesteps;  // those run (the same for every row)
  std::string scheduler_class;
  int unet_calls = 0;             // UNet calls for the whole batch (one per step, CFG included)
};

// Row i equals pipe.generate() of {rows[i].prompt, rows[i].negative_prompt, rows[i].seed, the shared
// settings, num_images = 1} up to the numerics of batched kernels (about 1e-6 on CPU fp32): each row
// has its own scheduler instance and its own CPU generator seeded as generate() seeds it, and the
// UNet sees [uncond rows..., cond rows...] with CFG. UsageError for an empty batch or a bad size.
BatchResult generate_batch(SdPipeline& pipe, const BatchRequest& request);

}  // namespace studio::image
