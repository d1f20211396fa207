// Scaled-dot-product attention on [B, H, L, D] tensors: libtorch's fused SDPA where it exists
// (>= 2.1, which also takes an explicit scale), an explicit composed fallback on 1.13.
#pragma once

#include <ATen/Tensor.h>
#include <c10/util/Optional.h>

namespace studio::kernels {

// q [B,H,Lq,D], k/v [B,H,Lk,D]. mask: bool (true = attend) or additive float, broadcastable to
// [B,H,Lq,Lk]. scale defaults to 1/sqrt(D).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const c10::optional<at::Tensor>& mask = c10::nullopt, bool causal = false,
                     c10::optional<double> scale = c10::nullopt);

// The composed reference (matmul, softmax, matmul) the fused path is tested against.
at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const c10::optional<at::Tensor>& mask = c10::nullopt,
                               bool causal = false, c10::optional<double> scale = c10::nullopt);

// True when `attention` uses libtorch's fused kernel in this build.
bool attention_is_fused();

}  // namespace studio::kernels
