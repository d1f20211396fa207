#include "video/clip_metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include "core/error.h"

namespace studio::video {

namespace {

void check_frames(const at::Tensor& frames, const char* what) {
  if (!frames.defined() || frames.dim() != 4 || frames.size(3) != 3 || frames.size(0) < 1)
    throw UsageError("frames must be [F, H, W, 3]", what);
}

// Grey levels of one frame as an 8-bit OpenCV image (what Farneback is tuned for).
cv::Mat grey8(const at::Tensor& frame) {
  const at::Tensor rgb =
      (frame.to(at::kCPU, at::kFloat) * 255.0).round().clamp(0, 255).to(at::kByte).contiguous();
  const cv::Mat view(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3,
                     const_cast<uint8_t*>(rgb.data_ptr<uint8_t>()));
  cv::Mat grey;
  cv::cvtColor(view, grey, cv::COLOR_RGB2GRAY);
  return grey;
}

}  // namespace

double mean_frame_difference(const at::Tensor& frames) {
  check_frames(frames, "mean_frame_difference");
  if (frames.size(0) < 2) return 0.0;
  const at::Tensor f = frames.to(at::kCPU, at::kDouble);
  return (f.slice(0, 1) - f.slice(0, 0, -1)).abs().mean().item<double>();
}

at::Tensor backward_flow(const at::Tensor& frames) {
  check_frames(frames, "backward_flow");
  const int64_t n = frames.size(0), h = frames.size(1), w = frames.size(2);
  at::Tensor out = at::zeros({std::max<int64_t>(n - 1, 0), h, w, 2}, at::kFloat);
  if (n < 2) return out;
  cv::Mat prev = grey8(frames[0]);
  for (int64_t t = 1; t < n; ++t) {
    cv::Mat cur = grey8(frames[t]);
    cv::Mat flow;
    // From frame t to frame t - 1: for each pixel of t, where its content was one frame earlier.
    cv::calcOpticalFlowFarneback(cur, prev, flow, 0.5, 3, 15, 3, 5, 1.2, 0);
    std::memcpy(out[t - 1].data_ptr<float>(), flow.ptr<float>(), sizeof(float) * h * w * 2);
    prev = cur;
  }
  return out;
}

double warp_error(const at::Tensor& frames, const at::Tensor& flow) {
  check_frames(frames, "warp_error");
  const int64_t n = frames.size(0), h = frames.size(1), w = frames.size(2);
  if (n < 2) return 0.0;
  if (!flow.defined() || flow.dim() != 4 || flow.size(0) != n - 1 || flow.size(1) != h ||
      flow.size(2) != w || flow.size(3) != 2)
    throw UsageError("the flow must be [F - 1, H, W, 2] for these frames", "warp_error");
  const at::Tensor f = frames.to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor fl = flow.to(at::kCPU, at::kFloat).contiguous();
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t t = 1; t < n; ++t) {
    const cv::Mat prev(static_cast<int>(h), static_cast<int>(w), CV_32FC3,
                       const_cast<float*>(f[t - 1].data_ptr<float>()));
    const float* d = fl[t - 1].data_ptr<float>();
    cv::Mat mx(static_cast<int>(h), static_cast<int>(w), CV_32F),
        my(static_cast<int>(h), static_cast<int>(w), CV_32F);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        mx.at<float>(int(y), int(x)) = float(x) + d[(y * w + x) * 2];
        my.at<float>(int(y), int(x)) = float(y) + d[(y * w + x) * 2 + 1];
      }
    cv::Mat warped;
    cv::remap(prev, warped, mx, my, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(-1, -1, -1));
    const float* cur = f[t].data_ptr<float>();
    for (int64_t y = 0; y < h; ++y) {
      const float* wrow = warped.ptr<float>(int(y));
      for (int64_t x = 0; x < w; ++x) {
        const float sx = mx.at<float>(int(y), int(x)), sy = my.at<float>(int(y), int(x));
        if (sx < 0 || sy < 0 || sx > float(w - 1) || sy > float(h - 1)) continue;  // from outside
        for (int c = 0; c < 3; ++c) sum += std::abs(cur[(y * w + x) * 3 + c] - wrow[x * 3 + c]);
        count += 3;
      }
    }
  }
  return count > 0 ? sum / double(count) : 0.0;
}

double masked_psnr(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  check_frames(a, "masked_psnr");
  if (!b.defined() || b.sizes() != a.sizes())
    throw UsageError("the two clips differ in shape", "masked_psnr");
  at::Tensor m = mask.to(at::kCPU, at::kDouble);
  if (m.dim() == 2) m = m.unsqueeze(0);
  if (m.dim() != 3 || m.size(1) != a.size(1) || m.size(2) != a.size(2) ||
      (m.size(0) != 1 && m.size(0) != a.size(0)))
    throw UsageError("the mask must be [H, W] or [F, H, W] at the clips' size", "masked_psnr");
  const at::Tensor sel = (m >= 0.5).to(at::kDouble).expand({a.size(0), a.size(1), a.size(2)});
  const double pixels = sel.sum().item<double>();
  if (pixels == 0) return std::numeric_limits<double>::quiet_NaN();
  const at::Tensor d = a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble);
  const double mse = (d.pow(2).sum(-1) * sel).sum().item<double>() / (3.0 * pixels);
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(1.0 / mse);
}

}  // namespace studio::video
