// The attention hook Prompt-to-Prompt editing uses: with no controller installed the layer is
// unchanged; an installed controller sees every layer's probabilities (cross vs self) and what
// it returns is what the layer uses.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "image/attention_control.h"
#include "image/blocks.h"

using namespace studio;
using namespace studio::image;

namespace {

struct Recorder : AttentionController {
  int cross = 0, self = 0;
  bool copy_row0 = false;  // make every batch row use row 0's probabilities
  at::Tensor on_attention(const at::Tensor& probs, bool is_cross) override {
    ++(is_cross ? cross : self);
    CHECK(probs.sum(-1).sub(1).abs().max().item<double>() < 1e-5);  // rows are distributions
    if (!copy_row0) return probs;
    return probs.narrow(0, 0, 1).expand_as(probs).contiguous();
  }
};

}  // namespace

TEST_CASE("attention control: identity controller leaves the layer unchanged, replacement applies",
          "[attention_control]") {
  torch::manual_seed(3);
  AttentionOptions ao;
  ao.query_dim = 16;
  ao.cross_attention_dim = 12;
  ao.heads = 2;
  ao.dim_head = 8;
  Attention cross_attn(ao);
  AttentionOptions so = ao;
  so.cross_attention_dim = 0;
  Attention self_attn(so);
  torch::NoGradGuard no_grad;
  const at::Tensor x = torch::randn({2, 5, 16});
  const at::Tensor ctx = torch::randn({1, 7, 12}).expand({2, 7, 12}).contiguous();  // same text

  const at::Tensor ref_cross = cross_attn->forward(x, ctx);
  const at::Tensor ref_self = self_attn->forward(x);
  Recorder rec;
  {
    ScopedAttentionController scope(&rec);
    CHECK(current_attention_controller() == &rec);
    CHECK((cross_attn->forward(x, ctx) - ref_cross).abs().max().item<double>() < 1e-5);
    CHECK((self_attn->forward(x) - ref_self).abs().max().item<double>() < 1e-5);
  }
  CHECK(current_attention_controller() == nullptr);
  CHECK(rec.cross == 1);
  CHECK(rec.self == 1);

  // Row 1 attending exactly as row 0 over the same text values gives row 0's output.
  rec.copy_row0 = true;
  at::Tensor out;
  {
    ScopedAttentionController scope(&rec);
    out = cross_attn->forward(x, ctx);
  }
  CHECK((out[1] - out[0]).abs().max().item<double>() < 1e-5);
  CHECK((ref_cross[1] - ref_cross[0]).abs().max().item<double>() > 1e-3);
}
