// Editing a product photo end to end, shared by `studio edit` and the `edit` stage of `studio run`:
// read the photo, make the product mask, invert at a working size, regenerate under the edited
// prompt with the product kept in latent space, composite the product's original pixels back at
// the photo's own resolution, and fit the result to a channel's size (crop, pad or outpaint).
#pragma once

#include <ATen/Tensor.h>

#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/limits.h"
#include "image/channel_format.h"
#include "image/edit_mask.h"
#include "image/inversion.h"
#include "image/sd_pipeline.h"

namespace studio::image {

// Where the product mask comes from.
//   "auto"  the photo's alpha channel when it has a real one, else GrabCut with a centre prior
//   "alpha" the alpha channel (an error when the photo has none)
//   "grabcut" always GrabCut;  "none": no mask (the whole photo follows the edit)
//   anything else: a mask image file (white = product), the photo's size
struct PhotoEditRequest {
  std::filesystem::path photo;
  std::string source_prompt;  // describes the photo ("" allowed)
  std::string prompt;         // the edited prompt
  std::string negative_prompt;
  InversionMethod method = InversionMethod::kNegativePrompt;
  int steps = 50;
  double guidance = 7.5;
  double strength = 1.0;  // fraction of the denoising steps re-generated
  // Prompt-to-Prompt attention control (image/prompt_to_prompt.h): "" (a free prompt edit),
  // "auto", "replace" or "refine"; with the fractions of steps whose cross / self attention the
  // edit takes from the source.
  std::string p2p;
  double cross_replace = 0.8;
  double self_replace = 0.4;
  std::string mask = "auto";
  ProductMaskOptions mask_options;
  // Pixels the model works at: the photo is scaled to about work_pixels (keeping its aspect,
  // multiples of the VAE factor); 0 = the model's native size squared. The product's pixels are
  // composited at the photo's own resolution, so they stay exactly as photographed.
  int64_t work_pixels = 0;
  int64_t max_photo_pixels =
      resource_limits().image_pixels;  // refused above this (from the header)
  // Channel format: 0 x 0 = keep the photo's size. FitMode kCrop / kPad / kAuto; outpaint = fill
  // the padding with the model (blended latent diffusion) instead of the blurred edge extension.
  int channel_width = 0, channel_height = 0;
  FitMode fit = FitMode::kAuto;
  bool outpaint = true;
  std::function<void(const std::string& phase, int step, int total)> on_progress;
};

struct PhotoEditResult {
  at::Tensor edited;  // [H, W, 3] float32 [0, 1]: the composite at the photo's resolution
  at::Tensor output;  // [h, w, 3]: `edited` fitted to the channel (== edited without a channel)
  at::Tensor photo;   // [H, W, 3]: the photo as read (RGB)
  ProductMask mask;   // at the photo's resolution; product_pixels == 0 when there is none
  bool has_mask = false;
  ChannelFit fit;  // when a channel size was given
  bool fitted = false;
  int work_width = 0, work_height = 0;
  int unet_calls = 0;  // inversion + regeneration (+ outpainting)
  double seconds = 0;
  nlohmann::json parameters;  // everything that determined the result (for the sidecar)
};

PhotoEditResult edit_photo(SdPipeline& pipe, const PhotoEditRequest& request);

// Before | after side by side on a white background (heights matched), for review sheets.
at::Tensor before_after_sheet(const at::Tensor& before_hwc, const at::Tensor& after_hwc);

}  // namespace studio::image
