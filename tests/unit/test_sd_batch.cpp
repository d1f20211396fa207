// Cross-request batching (image/sd_batch.h) on the tiny random-weight sd-tiny pipeline: a batch of
// rows with their own prompts, negative prompts and seeds equals the single generate() runs, for a
// one-step scheduler (DDIM), a multistep one (DPM-Solver++ 2M) and an ancestral one (Euler a).
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "image/sd_batch.h"
#include "image/sd_pipeline.h"
#include "tests/support/fixtures.h"

using namespace studio;

namespace {

image::SdPipeline& tiny() {
  static std::unique_ptr<image::SdPipeline> p =
      image::SdPipeline::load(test::fixtures_root() / "sd-tiny", "cpu", "fp32");
  return *p;
}

}  // namespace

TEST_CASE("generate_batch rows equal single generate() runs", "[sd_batch][image]") {
  const std::string scheduler = GENERATE(std::string("ddim"), std::string("dpmpp_2m"),
                                         std::string("euler_a"));
  const double guidance = GENERATE(7.5, 1.0);
  image::SdPipeline& pipe = tiny();
  image::BatchRequest b;
  b.rows = {{"a red mug on a table", "", 3},
            {"a canvas tote bag", "blurry, low quality", 17},
            {"a desk lamp at night", "text", 123456789}};
  b.steps = 4;
  b.guidance = guidance;
  b.width = 64;
  b.height = 48;
  b.scheduler = scheduler;
  const image::BatchResult batch = image::generate_batch(pipe, b);
  REQUIRE(batch.images.dim() == 4);
  REQUIRE(batch.images.size(0) == 3);
  CHECK(batch.images.size(1) == 48);
  CHECK(batch.images.size(2) == 64);
  CHECK(batch.unet_calls == 4);
  CHECK(batch.timesteps.size() == 4);

  double worst = 0;
  for (size_t k = 0; k < b.rows.size(); ++k) {
    image::GenerateRequest r;
    r.prompt = b.rows[k].prompt;
    r.negative_prompt = b.rows[k].negative_prompt;
    r.seed = b.rows[k].seed;
    r.steps = b.steps;
    r.guidance = b.guidance;
    r.width = b.width;
    r.height = b.height;
    r.scheduler = b.scheduler;
    const image::GenerateResult single = pipe.generate(r);
    CHECK(single.scheduler_class == batch.scheduler_class);
    CHECK(single.timesteps == batch.timesteps);
    const double diff =
        (batch.images[int64_t(k)] - single.images[0]).abs().max().item<double>();
    worst = std::max(worst, diff);
    INFO(scheduler << " guidance " << guidance << " row " << k << ": max |diff| " << diff);
    CHECK(diff < 1e-4);
  }
  std::printf("sd_batch %s guidance %.1f: worst max |batch - single| = %.3g\n", scheduler.c_str(),
              guidance, worst);
  // The rows really differ (a batch that repeated row 0 would fail the checks above, but say so).
  CHECK((batch.images[0] - batch.images[1]).abs().max().item<double>() > 1e-2);
}

TEST_CASE("generate_batch rejects an empty batch and a bad size", "[sd_batch][image]") {
  image::BatchRequest b;
  b.steps = 2;
  CHECK_THROWS_AS(image::generate_batch(tiny(), b), UsageError);
  b.rows = {{"x", "", 0}};
  b.width = 63;  // not a multiple of the VAE scale factor
  b.height = 64;
  CHECK_THROWS_AS(image::generate_batch(tiny(), b), UsageError);
}
