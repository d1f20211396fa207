// How an edited clip compares with its source: temporal consistency (mean frame-to-frame change,
// and the warp error under the source's optical flow, OpenCV Farneback), fidelity (PSNR of a
// reconstruction, PSNR inside the kept product region). Frames are [F, H, W, 3] float in [0, 1].
#pragma once

#include <ATen/Tensor.h>

namespace studio::video {

// Mean over consecutive pairs of the mean absolute difference |f_t - f_(t-1)| (0 for one frame).
double mean_frame_difference(const at::Tensor& frames);

// Backward optical flow of each frame t >= 1 to frame t - 1 (Farneback on grey levels):
// [F - 1, H, W, 2], for every pixel of frame t the (dx, dy) of where it was in frame t - 1.
at::Tensor backward_flow(const at::Tensor& frames);

// Warp error of `frames` under `flow` (backward_flow of a clip of the same size, often the
// source's): the mean over t >= 1 and pixels of |frames[t] - warp(frames[t - 1], flow[t - 1])|,
// pixels whose flow points outside the picture left out. 0 for one frame.
double warp_error(const at::Tensor& frames, const at::Tensor& flow);

// PSNR in dB (peak 1) over the pixels where mask >= 0.5 (mask [H, W] for every frame or
// [F, H, W]); +infinity when they are identical there, NaN when the mask selects nothing.
double masked_psnr(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask);

}  // namespace studio::video
