// Inversion editing on the tiny random-weight sd-tiny pipeline and the shared photos: PSNR/SSIM
// metrics, preprocessing, the regenerate loop's contracts (strength, keep-mask, methods, cancel),
// and how faithfully each inversion method reconstructs coffee.png at guidance 7.5.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "image/image_io.h"
#include "image/image_metrics.h"
#include "image/inversion.h"
#include "image/sd_pipeline.h"
#include "tests/support/fixtures.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<image::SdPipeline> load_tiny() {
  return image::SdPipeline::load(test::fixtures_root() / "sd-tiny", "cpu", "fp32");
}

// coffee.png's centred square (400x400 of 600x400), preprocessed to size x size.
at::Tensor coffee(int size, int vae_factor) {
  image::ImageReadOptions ro;
  ro.alpha = image::AlphaMode::kDrop;
  const image::Image img = image::read_image(test::data_root() / "photos" / "coffee.png", ro);
  const int64_t side = std::min(img.pixels.size(0), img.pixels.size(1));
  at::Tensor sq = img.pixels.narrow(0, (img.pixels.size(0) - side) / 2, side)
                      .narrow(1, (img.pixels.size(1) - side) / 2, side);
  return image::preprocess_for_inversion(sq.contiguous(), vae_factor, size, size);
}

at::Tensor to_hwc01(const at::Tensor& nchw) {
  return (nchw[0].permute({1, 2, 0}) / 2 + 0.5).clamp(0, 1);
}

}  // namespace

TEST_CASE("PSNR and SSIM follow their definitions", "[unit][inversion][metrics]") {
  const at::Tensor a = at::rand({32, 24, 3}, at::make_generator<at::CPUGeneratorImpl>(1));
  CHECK(std::isinf(image::psnr(a, a)));
  CHECK(image::ssim(a, a) == Approx(1.0).margin(1e-12));
  // PSNR of a uniform offset d is -20 log10(d).
  CHECK(image::psnr(a, a + 0.1) == Approx(20.0).margin(1e-6));
  CHECK(image::psnr(a.unsqueeze(0), (a + 0.01).unsqueeze(0)) == Approx(40.0).margin(1e-6));
  // SSIM is symmetric, below 1 for any change, and drops with stronger noise.
  const at::Tensor n = at::randn({32, 24, 3}, at::make_generator<at::CPUGeneratorImpl>(2));
  const double s1 = image::ssim(a, (a + 0.05 * n).clamp(0, 1));
  const double s2 = image::ssim(a, (a + 0.2 * n).clamp(0, 1));
  CHECK(s1 < 1.0);
  CHECK(s2 < s1);
  CHECK(image::ssim((a + 0.05 * n).clamp(0, 1), a) == Approx(s1).margin(1e-12));
  // A constant image against itself shifted: only the luminance term, (2 m1 m2 + C1) / (m1^2 +
  // m2^2 + C1) with C1 = 1e-4, and no structure term (both variances zero: (0 + C2) / (0 + C2)).
  const at::Tensor c = at::full({16, 16, 1}, 0.25), d = at::full({16, 16, 1}, 0.5);
  CHECK(image::ssim(c, d) == Approx((2 * 0.25 * 0.5 + 1e-4) / (0.0625 + 0.25 + 1e-4)));
  CHECK_THROWS_AS(image::psnr(a, a.narrow(0, 0, 8)), UsageError);
  CHECK_THROWS_AS(image::ssim(at::rand({8, 8, 3}), at::rand({8, 8, 3})), UsageError);
}

TEST_CASE("preprocess_for_inversion rounds the size down to the VAE factor", "[unit][inversion]") {
  const at::Tensor img = at::rand({50, 67, 4});
  const at::Tensor x = image::preprocess_for_inversion(img, 8);
  CHECK(x.sizes() == at::IntArrayRef({1, 3, 48, 64}));
  CHECK(x.min().item<float>() >= -1.0f);
  CHECK(x.max().item<float>() <= 1.0f);
  const at::Tensor same = image::preprocess_for_inversion(img.narrow(0, 0, 48).narrow(1, 0, 64), 8);
  CHECK(test::max_abs_diff(same[0].permute({1, 2, 0}),
                           img.narrow(0, 0, 48).narrow(1, 0, 64).narrow(2, 0, 3) * 2 - 1) <= 1e-6);
  CHECK(image::preprocess_for_inversion(img, 2, 30, 21).sizes() ==
        at::IntArrayRef({1, 3, 20, 30}));
  CHECK_THROWS_AS(image::preprocess_for_inversion(img, 8, 5, 5), UsageError);
  CHECK(image::parse_inversion_method("null-text") == image::InversionMethod::kNullText);
  for (const auto& name : image::inversion_method_names())
    CHECK(name == image::inversion_method_name(image::parse_inversion_method(name)));
  CHECK_THROWS_AS(image::parse_inversion_method("edict"), UsageError);
}

TEST_CASE("regenerate honours strength, keep-mask, methods and cancel", "[unit][inversion]") {
  auto pipe = load_tiny();
  const at::Tensor x = coffee(64, pipe->vae_scale_factor());
  image::InversionOptions o;
  o.prompt = "a cup of coffee";
  o.steps = 8;
  o.guidance = 7.5;
  const image::Inversion inv = image::invert(*pipe, x, o);
  REQUIRE(inv.trajectory.size(0) == 9);
  CHECK(inv.unet_calls == 8);
  CHECK(test::max_abs_diff(inv.trajectory[0], inv.z0) == 0);

  SECTION("strength runs the last int(steps * strength) steps from the trajectory") {
    image::RegenerateOptions r;
    r.strength = 0.5;
    r.keep_step_latents = true;
    int calls = 0;
    r.on_step = [&](const image::StepInfo& s) {
      ++calls;
      CHECK(s.total == 4);
      return true;
    };
    const auto out = image::regenerate(*pipe, inv, r);
    CHECK(calls == 4);
    CHECK(out.unet_calls == 4);
    CHECK(out.timesteps.size() == 4);
    CHECK(out.images.sizes() == at::IntArrayRef({1, 64, 64, 3}));
    r.strength = 0;
    CHECK_THROWS_AS(image::regenerate(*pipe, inv, r), UsageError);
  }
  SECTION("keep-mask 1 keeps the original latents, 0 changes nothing") {
    image::RegenerateOptions r;
    r.prompt = "a glass of orange juice";
    r.keep_mask = at::ones({32, 32});
    CHECK(test::max_abs_diff(image::regenerate(*pipe, inv, r).latents, inv.z0) <= 1e-6);
    r.keep_mask = at::zeros({64, 64});  // pixel size is area-averaged to latent size
    const auto masked = image::regenerate(*pipe, inv, r);
    r.keep_mask = at::Tensor();
    CHECK(test::max_abs_diff(masked.latents, image::regenerate(*pipe, inv, r).latents) <= 1e-6);
    // Left half kept: that half ends at z0 exactly, the right half follows the edit.
    at::Tensor half = at::zeros({32, 32});
    half.narrow(1, 0, 16).fill_(1);
    r.keep_mask = half;
    const auto out = image::regenerate(*pipe, inv, r);
    CHECK(test::max_abs_diff(out.latents.narrow(3, 0, 16), inv.z0.narrow(3, 0, 16)) <= 1e-6);
    CHECK(test::max_abs_diff(out.latents.narrow(3, 16, 16), inv.z0.narrow(3, 16, 16)) > 1e-2);
    r.keep_mask = at::ones({5, 5});
    CHECK_THROWS_AS(image::regenerate(*pipe, inv, r), UsageError);
  }
  SECTION("direct inversion reconstructs the trajectory exactly; cancel stops") {
    image::InversionOptions od = o;
    od.method = image::InversionMethod::kDirect;
    const image::Inversion d = image::invert(*pipe, x, od);
    CHECK(d.unet_calls == 16);
    image::RegenerateOptions r;
    r.keep_step_latents = true;
    const auto out = image::regenerate(*pipe, d, r);
    for (int i = 0; i < 8; ++i) {
      INFO("step " << i);
      CHECK(test::max_abs_diff(out.step_latents[i], d.trajectory[7 - i]) <= 1e-4);
    }
    r.on_step = [](const image::StepInfo& s) { return s.step < 3; };
    const auto cancelled = image::regenerate(*pipe, d, r);
    CHECK(cancelled.cancelled);
    CHECK(cancelled.timesteps.size() == 3);
    CHECK_FALSE(cancelled.images.defined());
  }
  SECTION("null-text lowers each step's error below the plain guided step's") {
    image::InversionOptions on = o;
    on.method = image::InversionMethod::kNullText;
    on.null_text_iterations = 5;
    const image::Inversion n = image::invert(*pipe, x, on);
    REQUIRE(n.null_embeds.size() == 8);
    CHECK(n.unet_backwards >= 8);
    CHECK(n.unet_calls == 8 + 2 * 8 + n.unet_backwards);
    // The weights stay frozen and unchanged by the optimisation.
    CHECK(n.null_embeds[0].requires_grad() == false);
    CHECK(test::max_abs_diff(n.null_embeds[7], n.uncond_embeds) > 0);
  }
}

namespace {

struct Row {
  std::string method;
  double guidance = 0;
  int nfe = 0;  // inversion + regeneration UNet calls
  int backwards = 0;
  double seconds = 0;
  double psnr_rt = 0, ssim_rt = 0, psnr_photo = 0, ssim_photo = 0;
};

}  // namespace

TEST_CASE("inversion methods reconstruct coffee.png under guidance 7.5", "[unit][inversion][slow]") {
  // sd-tiny has random weights: the VAE round trip of the photo is the ceiling any reconstruction
  // can reach (it decodes z0 itself), and the UNet is chaotic, so plain DDIM inversion under CFG
  // 7.5 drifts far from z0. The table printed here is the one in docs/editing.md.
  auto pipe = load_tiny();
  const int size = 64, steps = 10;
  const double g = 7.5;
  const at::Tensor x = coffee(size, pipe->vae_scale_factor());
  const at::Tensor photo = to_hwc01(x).unsqueeze(0);
  const at::Tensor roundtrip = pipe->vae_decode(pipe->vae_encode_mean(x));
  const double ceiling = image::psnr(roundtrip, photo);

  std::vector<Row> rows;
  auto run = [&](image::InversionMethod m, double guidance, int iterations = 10,
                 double lr = 1e-2) {
    image::InversionOptions o;
    o.null_text_iterations = iterations;
    o.null_text_lr = lr;
    o.prompt = "a cup of coffee on a table";
    o.steps = steps;
    o.method = m;
    o.guidance = guidance;
    const image::Inversion inv = image::invert(*pipe, x, o);
    const auto out = image::regenerate(*pipe, inv);
    std::string name = image::inversion_method_name(m);
    if (m == image::InversionMethod::kNullText)
      name += " (" + std::to_string(iterations) + " it, lr " + std::to_string(lr).substr(0, 4) + ", last loss " + std::to_string(inv.null_text_losses.back()) + ")";
    Row r{name, guidance, inv.unet_calls + out.unet_calls,
          inv.unet_backwards, inv.seconds + out.seconds};
    r.psnr_rt = image::psnr(out.images, roundtrip);
    r.ssim_rt = image::ssim(out.images, roundtrip);
    r.psnr_photo = image::psnr(out.images, photo);
    r.ssim_photo = image::ssim(out.images, photo);
    rows.push_back(r);
    return r;
  };
  const Row ddim1 = run(image::InversionMethod::kDdim, 1.0);
  const Row ddim = run(image::InversionMethod::kDdim, g);
  const Row neg = run(image::InversionMethod::kNegativePrompt, g);
  const Row null_text = run(image::InversionMethod::kNullText, g);
  const Row direct = run(image::InversionMethod::kDirect, g);


  std::printf("inversion of coffee.png %dx%d, sd-tiny, %d DDIM steps; VAE round trip vs photo: "
              "PSNR %.2f dB, SSIM %.4f\n",
              size, size, steps, ceiling, image::ssim(roundtrip, photo));
  std::printf("| method | guidance | NFE (backward) | seconds | PSNR / SSIM vs round trip | PSNR / "
              "SSIM vs photo |\n");
  for (const Row& r : rows)
    std::printf("| %s | %.1f | %d (%d) | %.1f | %.2f dB / %.4f | %.2f dB / %.4f |\n",
                r.method.c_str(), r.guidance, r.nfe, r.backwards, r.seconds, r.psnr_rt, r.ssim_rt,
                r.psnr_photo, r.ssim_photo);
  std::fflush(stdout);
  // Measured (64x64, 10 steps, 2-core CPU; docs/editing.md has the table): round trip vs photo
  // 8.69 dB; vs the round trip: ddim g=1 13.75 dB, ddim g=7.5 13.71 dB, negative-prompt 13.75 dB,
  // null-text 13.72 dB (last-step loss 4.1), direct inf. This random UNet barely reacts to the
  // unconditional embedding (CFG 7.5 costs only 0.04 dB), so there is little drift for
  // negative-prompt or null-text to remove; what limits every method but direct is the DDIM
  // inversion's own error (eps(z_t) taken for eps(z_{t-1})), which the chaotic random UNet
  // amplifies (README: 1e-6 grows to 1e-2), and which only direct inversion cancels.
  // Direct inversion lands on z0 bit for bit (the recon is the round trip itself).
  CHECK(direct.psnr_rt >= 60.0);
  // Negative-prompt inversion with the source prompt: uncond == cond, so CFG collapses to the
  // conditional prediction and the result is plain DDIM at guidance 1, better than DDIM at 7.5.
  CHECK(neg.psnr_rt == Approx(ddim1.psnr_rt).margin(1e-6));
  CHECK(neg.psnr_rt > ddim.psnr_rt);
  // Null-text is NOT measurably better than plain DDIM here (+0.01 dB vs the round trip); assert
  // only that the optimisation does not make it worse by more than 0.2 dB, and that the
  // reconstructions of all three are within 1 dB of the round-trip ceiling against the photo
  // (trivially: this random VAE's round trip is 8.7 dB from the photo, the recons 8.7 dB too).
  CHECK(null_text.psnr_rt >= ddim.psnr_rt - 0.2);
  for (const Row* r : {&ddim, &neg, &null_text, &direct}) {
    INFO(r->method);
    CHECK(r->psnr_photo >= ceiling - 1.0);
  }
}
