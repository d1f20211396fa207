// Full-reference image quality metrics (PSNR, SSIM) on float images in [0, 1], used to measure how
// faithfully inversion and editing reconstruct a photo.
#pragma once

#include <ATen/Tensor.h>

namespace studio::image {

// Peak signal-to-noise ratio in dB for images with peak value 1: 10 * log10(1 / MSE), the MSE over
// every element. a and b: the same shape, [H, W, C] or [N, H, W, C] (any float dtype, any device;
// computed in float64). +infinity for identical images. UsageError for mismatched shapes.
double psnr(const at::Tensor& a, const at::Tensor& b);

// Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004, "Image quality assessment: from
// error visibility to structural similarity"), as their reference ssim_index.m computes it:
// 11x11 Gaussian window with sigma 1.5 (normalised to sum 1), C1 = (0.01 L)^2, C2 = (0.03 L)^2 with
// dynamic range L = 1, local statistics over the "valid" window positions only (no padding), the
// SSIM map averaged over positions, per channel, then the channels (and batch items) averaged.
// No downsampling (the MATLAB script's optional 256-px rescale is not applied). Inputs as for
// psnr, at least 11x11 pixels (UsageError otherwise). 1 for identical images.
double ssim(const at::Tensor& a, const at::Tensor& b);

}  // namespace studio::image
