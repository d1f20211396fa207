// CLIPTextModel forward against transformers' outputs in sd-tiny-ref/components (atol 1e-5).
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "core/checkpoint.h"
#include "core/tensor_io.h"
#include "tests/support/fixtures.h"
#include "text/clip_text_model.h"

using namespace studio;

TEST_CASE("CLIP text encoder matches transformers on sd-tiny", "[parity][clip]") {
  const auto root = test::fixtures_root();
  const auto comp = root / "sd-tiny-ref" / "components";
  const CheckpointInfo info = inspect_checkpoint(root / "sd-tiny");
  ClipTextModel model = load_clip_text_model(find_component(info, "text_encoder"));
  torch::NoGradGuard no_grad;
  const auto out = model->forward(load_npy(comp / "text_encoder.input_ids.npy"));
  const at::Tensor ref_h = load_npy(comp / "text_encoder.last_hidden_state.npy");
  const at::Tensor ref_p = load_npy(comp / "text_encoder.pooler_output.npy");
  CHECK(test::max_abs_diff(out.last_hidden_state, ref_h) <= 1e-5);
  CHECK(test::max_abs_diff(out.pooler_output, ref_p) <= 1e-5);
}
