// Channel formats for edited product photos (issue #5): fit a photo to a channel's size (square
// 1080x1080, story 1080x1920, banner 1200x628, ...) by a product-aware crop, or by padding with a
// fill mask for the diffusion model to outpaint, never cutting the product.
#pragma once

#include <ATen/Tensor.h>

#include <string>

namespace studio::image {

// Channel sizes are refused outside these bounds (each side), and aspect ratios beyond 1:16..16:1.
constexpr int kMinChannelSide = 8;
constexpr int kMaxChannelSide = 16384;
constexpr double kMaxChannelAspect = 16.0;

enum class FitMode {
  kCrop,  // a window of the target aspect that contains the product (+ margin); falls back to
          // kPad when no window can contain it
  kPad,   // the whole photo on a larger canvas of the target aspect; the new pixels are filled by
          // edge extension + blur and marked in ChannelFit::fill for outpainting
  kAuto,  // kCrop when the product fits a crop window, otherwise kPad
};

const char* fit_mode_name(FitMode mode);  // "crop", "pad", "auto"
// The mode of a name fit_mode_name gives; UsageError naming the choices for anything else.
FitMode parse_fit_mode(const std::string& name);

struct PixelRect {
  int x = 0, y = 0, width = 0, height = 0;
  bool empty() const { return width <= 0 || height <= 0; }
};

// The bounding box of the non-zero pixels of an [H, W] mask; empty when there are none.
PixelRect mask_bounding_box(const at::Tensor& mask_hw);

struct ChannelFitOptions {
  // Space kept around the product's bounding box when cropping, per side, as a fraction of the
  // box's longer side (0..1). Clipped to the photo: a product at the photo's edge stays there.
  double margin = 0.05;
  // Padding: Gaussian blur sigma of the fill, as a fraction of the canvas's longer side (0..0.5;
  // 0 = plain edge extension).
  double pad_blur = 0.02;
};

struct ChannelFit {
  at::Tensor pixels;  // [target_h, target_w, C] float32 in [0, 1]
  at::Tensor mask;    // [target_h, target_w] float32 0/1: the product mask, transformed (resampled,
                      // then >= 0.5)
  at::Tensor fill;    // [target_h, target_w] float32 0/1: 1 = pixel made up by padding, for the
                      // caller to outpaint (conservative: any resampled fill share > 0); all 0
                      // after a crop
  FitMode mode = FitMode::kCrop;  // what was done: kCrop or kPad
  bool fell_back = false;         // kCrop was asked for but the product fits no crop window
  // kCrop: the window in the photo's pixels. kPad: where the photo lies on the canvas.
  PixelRect rect;
  int canvas_width = 0, canvas_height = 0;  // before resizing (kCrop: the window's size)
  double scale_x = 1.0, scale_y = 1.0;      // target size / canvas size (equal within a pixel)
  PixelRect product;                        // the product's bounding box in the photo
  std::string description;                  // one human-readable line saying what was done
};

// Fits an [H, W, C] image (C = 1..4, values in [0, 1]) with its [H, W] product mask (non-zero =
// product; an undefined tensor = no product: the crop or the padding is centred on the photo) to
// exactly target_w x target_h: crops or pads to the target aspect as `mode` says, then resizes
// (OpenCV INTER_AREA when shrinking, Lanczos when enlarging). Throws UsageError for a bad size
// (non-positive, beyond kMaxChannelSide, aspect beyond kMaxChannelAspect), an image / mask size
// mismatch, or an empty product mask.
ChannelFit fit_to_channel(const at::Tensor& image_hwc, const at::Tensor& mask_hw, int target_w,
                          int target_h, FitMode mode, const ChannelFitOptions& options = {});

}  // namespace studio::image
