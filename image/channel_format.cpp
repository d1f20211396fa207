// Channel formats: product-aware crop windows, padding by edge extension + blur with a fill mask
// for outpainting, and the final resize to the channel's exact size (OpenCV).
#include "image/channel_format.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "image/image_io.h"

namespace studio::image {
namespace {

constexpr int64_t kMaxCanvasPixels = int64_t{256} * 1000 * 1000;

std::string size_string(int64_t w, int64_t h) {
  return std::to_string(w) + "x" + std::to_string(h);
}

std::string rect_string(const PixelRect& r) {
  return size_string(r.width, r.height) + " at (" + std::to_string(r.x) + ", " +
         std::to_string(r.y) + ")";
}

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

int round_int(double v) { return static_cast<int>(std::lround(v)); }

// Resizes an [H, W] 0/1 mask without ringing (area when shrinking, bilinear otherwise): the share
// of each output pixel covered by the mask.
at::Tensor resize_share(const at::Tensor& mask_hw, int width, int height) {
  const bool shrink = width <= mask_hw.size(1) && height <= mask_hw.size(0);
  return resize_image(mask_hw.unsqueeze(2), width, height,
                      shrink ? ResizeFilter::kArea : ResizeFilter::kBilinear)
      .squeeze(2);
}

}  // namespace

const char* fit_mode_name(FitMode mode) {
  switch (mode) {
    case FitMode::kCrop:
      return "crop";
    case FitMode::kPad:
      return "pad";
    case FitMode::kAuto:
      return "auto";
  }
  return "?";
}

FitMode parse_fit_mode(const std::string& name) {
  for (FitMode m : {FitMode::kCrop, FitMode::kPad, FitMode::kAuto})
    if (name == fit_mode_name(m)) return m;
  throw UsageError("unknown fit '" + name + "'", "--fit", "use crop, pad or auto");
}

PixelRect mask_bounding_box(const at::Tensor& mask_hw) {
  if (!mask_hw.defined() || mask_hw.dim() != 2) {
    throw UsageError("mask_bounding_box expects an [H, W] mask, got " + shape_of(mask_hw), "", "");
  }
  const at::Tensor on = mask_hw.detach().to(at::kCPU) != 0;
  const at::Tensor rows = on.any(1), cols = on.any(0);
  if (!rows.any().item<bool>()) return {};
  const at::Tensor ry = rows.nonzero(), cx = cols.nonzero();
  PixelRect r;
  r.y = static_cast<int>(ry.min().item<int64_t>());
  r.height = static_cast<int>(ry.max().item<int64_t>()) - r.y + 1;
  r.x = static_cast<int>(cx.min().item<int64_t>());
  r.width = static_cast<int>(cx.max().item<int64_t>()) - r.x + 1;
  return r;
}

ChannelFit fit_to_channel(const at::Tensor& image_hwc, const at::Tensor& mask_hw, int target_w,
                          int target_h, FitMode mode, const ChannelFitOptions& options) {
  const std::string target = size_string(target_w, target_h);
  if (target_w < kMinChannelSide || target_h < kMinChannelSide || target_w > kMaxChannelSide ||
      target_h > kMaxChannelSide) {
    throw UsageError("channel size " + target + " is out of range", "fit_to_channel",
                     "each side must be " + std::to_string(kMinChannelSide) + ".." +
                         std::to_string(kMaxChannelSide) + " pixels");
  }
  const double aspect = static_cast<double>(target_w) / target_h;
  if (aspect > kMaxChannelAspect || 1.0 / aspect > kMaxChannelAspect) {
    throw UsageError("channel size " + target + " has an absurd aspect ratio", "fit_to_channel",
                     "use an aspect ratio between 1:16 and 16:1");
  }
  if (!(options.margin >= 0.0 && options.margin <= 1.0) ||
      !(options.pad_blur >= 0.0 && options.pad_blur <= 0.5)) {
    throw UsageError("invalid channel fit options (margin " + std::to_string(options.margin) +
                         ", pad_blur " + std::to_string(options.pad_blur) + ")",
                     "fit_to_channel", "margin must be 0..1 and pad_blur 0..0.5");
  }
  if (!image_hwc.defined() || image_hwc.dim() != 3 || image_hwc.size(0) < 1 ||
      image_hwc.size(1) < 1 || image_hwc.size(2) < 1 || image_hwc.size(2) > 4) {
    throw UsageError(
        "fit_to_channel expects an [H, W, C] image with C = 1..4, got " + shape_of(image_hwc),
        "fit_to_channel", "");
  }
  const int H = static_cast<int>(image_hwc.size(0)), W = static_cast<int>(image_hwc.size(1));
  const int64_t C = image_hwc.size(2);
  at::Tensor mask01 = at::zeros({H, W}, at::kFloat);
  PixelRect product;
  const bool has_mask = mask_hw.defined();
  if (has_mask) {
    if (mask_hw.dim() != 2 || mask_hw.size(0) != H || mask_hw.size(1) != W) {
      throw UsageError("the product mask " + shape_of(mask_hw) + " does not match the image " +
                           size_string(W, H) + " " + shape_of(image_hwc),
                       "fit_to_channel", "pass the mask made for this image (ProductMask::hard)");
    }
    mask01 = (mask_hw.detach().to(at::kCPU) != 0).to(at::kFloat);
    product = mask_bounding_box(mask01);
    if (product.empty()) {
      throw UsageError(
          "the product mask is empty", "fit_to_channel",
          "pass ProductMask::hard, or an undefined tensor for a photo without product");
    }
  }
  const at::Tensor image = image_hwc.detach().to(at::kCPU, at::kFloat).contiguous();

  // The box a crop must contain: the product's box plus the margin, clipped to the photo.
  PixelRect need{W / 2, H / 2, 0, 0};
  double cx = W / 2.0, cy = H / 2.0;
  if (has_mask) {
    const int m =
        static_cast<int>(std::ceil(options.margin * std::max(product.width, product.height)));
    const int x0 = std::max(0, product.x - m), y0 = std::max(0, product.y - m);
    const int x1 = std::min(W, product.x + product.width + m);
    const int y1 = std::min(H, product.y + product.height + m);
    need = {x0, y0, x1 - x0, y1 - y0};
    cx = product.x + product.width / 2.0;
    cy = product.y + product.height / 2.0;
  }
  const int margin_px =
      has_mask
          ? static_cast<int>(std::ceil(options.margin * std::max(product.width, product.height)))
          : 0;

  // The largest window of the target aspect inside the photo; no smaller one can hold more.
  int ww = W, wh = H;
  if (static_cast<int64_t>(W) * target_h >= static_cast<int64_t>(H) * target_w) {
    ww = std::clamp(round_int(H * aspect), 1, W);
  } else {
    wh = std::clamp(round_int(W / aspect), 1, H);
  }
  const bool crop_fits = need.width <= ww && need.height <= wh;

  ChannelFit fit;
  fit.product = product;
  std::string why;
  at::Tensor canvas, canvas_mask, canvas_fill;
  if (mode != FitMode::kPad && crop_fits) {
    const int x = std::clamp(round_int(cx - ww / 2.0), std::max(0, need.x + need.width - ww),
                             std::min(W - ww, need.x));
    const int y = std::clamp(round_int(cy - wh / 2.0), std::max(0, need.y + need.height - wh),
                             std::min(H - wh, need.y));
    fit.mode = FitMode::kCrop;
    fit.rect = {x, y, ww, wh};
    canvas = image.narrow(0, y, wh).narrow(1, x, ww).contiguous();
    canvas_mask = mask01.narrow(0, y, wh).narrow(1, x, ww).contiguous();
    canvas_fill = at::zeros({wh, ww}, at::kFloat);
    fit.canvas_width = ww;
    fit.canvas_height = wh;
  } else {
    if (mode == FitMode::kCrop) {
      fit.fell_back = true;
      why = "no crop window can hold the product: its box with margin is " +
            size_string(need.width, need.height) + " but the largest " + std::to_string(target_w) +
            ":" + std::to_string(target_h) + " window of the " + size_string(W, H) + " photo is " +
            size_string(ww, wh) + "; padded instead: ";
    }
    // The smallest canvas of the target aspect that holds the photo, product as centred as can be.
    int cw = W, ch = H;
    if (static_cast<int64_t>(W) * target_h <= static_cast<int64_t>(H) * target_w) {
      cw = std::max(W, round_int(H * aspect));
    } else {
      ch = std::max(H, round_int(W / aspect));
    }
    if (static_cast<int64_t>(cw) * ch > kMaxCanvasPixels) {
      throw UsageError("padding the " + size_string(W, H) + " photo to " + target +
                           " would need a " + size_string(cw, ch) + " canvas",
                       "fit_to_channel", "use a channel size closer to the photo's aspect ratio");
    }
    const int ox = std::clamp(round_int(cw / 2.0 - cx), 0, cw - W);
    const int oy = std::clamp(round_int(ch / 2.0 - cy), 0, ch - H);
    fit.mode = FitMode::kPad;
    fit.rect = {ox, oy, W, H};
    fit.canvas_width = cw;
    fit.canvas_height = ch;

    const int cvtype = CV_32FC(static_cast<int>(C));
    const cv::Mat src(H, W, cvtype, image.data_ptr<float>());
    canvas = at::empty({ch, cw, C}, at::kFloat);
    cv::Mat dst(ch, cw, cvtype, canvas.data_ptr<float>());
    cv::copyMakeBorder(src, dst, oy, ch - H - oy, ox, cw - W - ox, cv::BORDER_REPLICATE);
    if (dst.data != reinterpret_cast<uchar*>(canvas.data_ptr<float>())) {
      throw UsageError("OpenCV copyMakeBorder reallocated its output", "fit_to_channel",
                       "this is a bug; report it");
    }
    const double sigma = options.pad_blur * std::max(cw, ch);
    if (sigma > 0.0 && (cw > W || ch > H)) {
      cv::Mat blurred;
      cv::GaussianBlur(dst, blurred, cv::Size(0, 0), sigma, sigma, cv::BORDER_REPLICATE);
      // Edge extension next to the photo, turning into its blur over 2 sigma.
      const double ramp = 2.0 * sigma;
      const int nc = static_cast<int>(C);
      for (int yy = 0; yy < ch; ++yy) {
        const int dy = std::max({oy - yy, yy - (oy + H - 1), 0});
        float* d = dst.ptr<float>(yy);
        const float* b = blurred.ptr<float>(yy);
        for (int xx = 0; xx < cw; ++xx) {
          const int dx = std::max({ox - xx, xx - (ox + W - 1), 0});
          const int dist = std::max(dx, dy);
          if (dist == 0) continue;
          const float t = static_cast<float>(std::min(1.0, dist / ramp));
          for (int c = 0; c < nc; ++c) {
            float& v = d[xx * nc + c];
            v = (1.0f - t) * v + t * b[xx * nc + c];
          }
        }
      }
    }
    canvas_mask = at::zeros({ch, cw}, at::kFloat);
    canvas_mask.narrow(0, oy, H).narrow(1, ox, W).copy_(mask01);
    canvas_fill = at::ones({ch, cw}, at::kFloat);
    canvas_fill.narrow(0, oy, H).narrow(1, ox, W).zero_();
  }

  fit.pixels = resize_image(canvas, target_w, target_h, ResizeFilter::kAuto);
  fit.mask = (resize_share(canvas_mask, target_w, target_h) >= 0.5f).to(at::kFloat);
  fit.fill = (resize_share(canvas_fill, target_w, target_h) > 0.0f).to(at::kFloat);
  fit.scale_x = static_cast<double>(target_w) / fit.canvas_width;
  fit.scale_y = static_cast<double>(target_h) / fit.canvas_height;

  const std::string resized = "; resized to " + target + " (scale " + fixed(fit.scale_x, 3) + ", " +
                              (fit.scale_x < 1.0   ? "area"
                               : fit.scale_x > 1.0 ? "Lanczos"
                                                   : "none") +
                              ")";
  if (fit.mode == FitMode::kCrop) {
    fit.description =
        "crop: the " + rect_string(fit.rect) + " window of the " + size_string(W, H) + " photo";
    if (has_mask) {
      fit.description += ", holding the product's " + rect_string(product) + " box with a " +
                         std::to_string(margin_px) + " px margin (clipped to the photo)";
    } else {
      fit.description += ", centred (no product mask)";
    }
    fit.description += resized;
  } else {
    const double fill_share = 1.0 - static_cast<double>(W) * H /
                                        (static_cast<double>(fit.canvas_width) * fit.canvas_height);
    fit.description = why + "pad: the " + size_string(W, H) + " photo at (" +
                      std::to_string(fit.rect.x) + ", " + std::to_string(fit.rect.y) + ") on a " +
                      size_string(fit.canvas_width, fit.canvas_height) + " canvas, the new " +
                      fixed(100.0 * fill_share, 1) +
                      " % filled by edge extension + blur (outpaint the fill mask)" + resized;
  }
  return fit;
}

}  // namespace studio::image
