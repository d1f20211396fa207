// kernels::attention against a float64 softmax(QK^T)V computed here, with masks and causality.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/attention.h"
#include "tests/support/fixtures.h"

using studio::kernels::attention;
using studio::test::max_abs_diff;

namespace {
// Independent float64 reference, one (batch, head, query) row at a time.
at::Tensor naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                 const at::Tensor& keep, double scale) {
  auto qd = q.to(at::kDouble), kd = k.to(at::kDouble), vd = v.to(at::kDouble);
  auto out = at::zeros_like(qd);
  for (int64_t b = 0; b < q.size(0); ++b)
    for (int64_t h = 0; h < q.size(1); ++h)
      for (int64_t i = 0; i < q.size(2); ++i) {
        std::vector<double> w(static_cast<std::size_t>(k.size(2)));
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < k.size(2); ++j) {
          const bool ok = keep[b][h][i][j].item<bool>();
          w[j] = ok ? (qd[b][h][i] * kd[b][h][j]).sum().item<double>() * scale : -INFINITY;
          mx = std::max(mx, w[j]);
        }
        for (auto& x : w) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < k.size(2); ++j) out[b][h][i] += vd[b][h][j] * (w[j] / sum);
      }
  return out;
}
}  // namespace

TEST_CASE("attention matches a float64 reference", "[unit][kernels]") {
  at::manual_seed(3);
  const auto q = at::randn({2, 3, 5, 8}), k = at::randn({2, 3, 7, 8}), v = at::randn({2, 3, 7, 8});
  const double scale = 1.0 / std::sqrt(8.0);
  const auto all = at::ones({2, 3, 5, 7}, at::kBool);
  CHECK(max_abs_diff(attention(q, k, v), naive(q, k, v, all, scale)) < 1e-5);
  CHECK(max_abs_diff(attention(q, k, v, c10::nullopt, false, 0.5), naive(q, k, v, all, 0.5)) < 1e-5);

  // Key-padding mask: the last two keys of batch 1 are padding.
  auto keep = at::ones({2, 1, 1, 7}, at::kBool);
  keep[1].select(-1, 5).fill_(false);
  keep[1].select(-1, 6).fill_(false);
  CHECK(max_abs_diff(attention(q, k, v, keep), naive(q, k, v, keep.expand({2, 3, 5, 7}), scale)) <
        1e-5);
  // The same mask as an additive float mask.
  auto additive = at::zeros({2, 1, 1, 7}).masked_fill(keep.logical_not(), -INFINITY);
  CHECK(max_abs_diff(attention(q, k, v, additive), attention(q, k, v, keep)) < 1e-6);

  // Causal (square).
  const auto qs = at::randn({1, 2, 6, 4}), ks = at::randn({1, 2, 6, 4}), vs = at::randn({1, 2, 6, 4});
  auto causal = at::ones({6, 6}, at::kBool).tril().expand({1, 2, 6, 6});
  CHECK(max_abs_diff(attention(qs, ks, vs, c10::nullopt, true), naive(qs, ks, vs, causal, 0.5)) <
        1e-5);
}
