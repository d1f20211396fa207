#include "kernels/attention.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define STUDIO_HAS_SDPA_SCALE 1
#else
#define STUDIO_HAS_SDPA_SCALE 0
#endif

namespace studio::kernels {

at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const c10::optional<at::Tensor>& mask, bool causal,
                               c10::optional<double> scale) {
  const double s = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * s;
  if (causal) {
    const int64_t lq = q.size(-2), lk = k.size(-2);
    at::Tensor keep = at::ones({lq, lk}, q.options().dtype(at::kBool)).tril(lk - lq);
    scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<float>::infinity());
  }
  if (mask) {
    if (mask->scalar_type() == at::kBool)
      scores = scores.masked_fill(mask->logical_not(), -std::numeric_limits<float>::infinity());
    else
      scores = scores + *mask;
  }
  return at::matmul(at::softmax(scores, -1), v);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const c10::optional<at::Tensor>& mask, bool causal,
                     c10::optional<double> scale) {
#if STUDIO_HAS_SDPA_SCALE
  if (causal && mask) {
    // The fused kernel takes either a mask or is_causal; combine them explicitly.
    return attention_reference(q, k, v, mask, causal, scale);
  }
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal, scale);
#else
  return attention_reference(q, k, v, mask, causal, scale);
#endif
}

bool attention_is_fused() { return STUDIO_HAS_SDPA_SCALE != 0; }

}  // namespace studio::kernels
