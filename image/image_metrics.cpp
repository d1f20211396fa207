#include "image/image_metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace studio::image {
namespace {

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// Both as float64 NHWC on the CPU, after checking they are comparable images.
std::pair<at::Tensor, at::Tensor> as_nhwc(const at::Tensor& a, const at::Tensor& b,
                                          const char* who) {
  if (!a.defined() || !b.defined() || a.sizes() != b.sizes() || (a.dim() != 3 && a.dim() != 4))
    throw UsageError(std::string(who) + " needs two images of one shape, [H, W, C] or [N, H, W, C]; got " +
                         shape_of(a) + " and " + shape_of(b),
                     who, "compare images of the same size (resize one first)");
  at::Tensor x = a.detach().to(at::kCPU, at::kDouble);
  at::Tensor y = b.detach().to(at::kCPU, at::kDouble);
  if (x.dim() == 3) {
    x = x.unsqueeze(0);
    y = y.unsqueeze(0);
  }
  return {x, y};
}

}  // namespace

double psnr(const at::Tensor& a, const at::Tensor& b) {
  auto [x, y] = as_nhwc(a, b, "psnr");
  const double mse = (x - y).pow(2).mean().item<double>();
  if (mse <= 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(1.0 / mse);
}

double ssim(const at::Tensor& a, const at::Tensor& b) {
  auto [x, y] = as_nhwc(a, b, "ssim");
  constexpr int64_t kWin = 11;
  constexpr double kSigma = 1.5;
  if (x.size(1) < kWin || x.size(2) < kWin)
    throw UsageError("ssim needs images of at least 11x11 pixels, got " + shape_of(a), "ssim",
                     "use psnr for smaller images");
  const int64_t n = x.size(0), c = x.size(3);
  // NHWC -> (N*C) single-channel planes [N*C, 1, H, W].
  auto planes = [&](const at::Tensor& t) {
    return t.permute({0, 3, 1, 2}).reshape({n * c, 1, t.size(1), t.size(2)});
  };
  at::Tensor p = planes(x), q = planes(y);
  at::Tensor g = at::arange(kWin, at::kDouble) - (kWin - 1) / 2.0;
  g = at::exp(-(g * g) / (2 * kSigma * kSigma));
  at::Tensor w = at::outer(g, g);
  w = (w / w.sum()).view({1, 1, kWin, kWin});
  auto filt = [&](const at::Tensor& t) { return at::conv2d(t, w); };  // "valid"
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  at::Tensor mu_x = filt(p), mu_y = filt(q);
  at::Tensor sxx = filt(p * p) - mu_x * mu_x;
  at::Tensor syy = filt(q * q) - mu_y * mu_y;
  at::Tensor sxy = filt(p * q) - mu_x * mu_y;
  at::Tensor map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) /
                   ((mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2));
  return map.mean().item<double>();  // equal-sized planes: mean of per-channel means
}

}  // namespace studio::image
