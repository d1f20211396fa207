// AnimateDiff against diffusers 0.29.2 on sd-tiny + the animatediff-tiny adapter: the motion UNet's
// forward at every stored timestep, and the whole animatediff_ddim text-to-video case (prompt
// embeddings, seeded noise, every step's latents, the decoded frames). Tolerances from the
// fixtures README; the reference call is read from the case's JSON.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <iostream>
#include <regex>

#include "core/checkpoint.h"
#include "core/tensor_io.h"
#include "tests/support/fixtures.h"
#include "video/animatediff_pipeline.h"
#include "video/unet_motion.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

constexpr double kUNetAtol = 2e-5;
constexpr double kEmbedsAtol = 1e-5;
constexpr double kNoiseAtol = 1e-6;
constexpr double kStepRel = 2e-5;  // |Δ| ≤ 2e-5 · max|ref|
constexpr double kFramesAtol = 1e-4;

double report(const std::string& what, const at::Tensor& got, const at::Tensor& want) {
  REQUIRE(got.sizes() == want.sizes());
  const double d = test::max_abs_diff(got, want);
  std::cout << "[parity] " << what << ": max|diff| = " << d
            << " (max|ref| = " << test::max_abs(want) << ")\n";
  return d;
}

fs::path refs() { return test::fixtures_root() / "animatediff-tiny-ref"; }

// Runs the animatediff_ddim case as its JSON records it and checks every stored output.
void check_ddim_case(bool given_embeds) {
  const fs::path dir = refs();
  const nlohmann::json c = test::read_json(dir / "animatediff_ddim.json");
  const nlohmann::json& call = c["call"];
  auto pipe = video::AnimateDiffPipeline::load(test::fixtures_root() / "sd-tiny",
                                               test::fixtures_root() / "animatediff-tiny");
  video::VideoRequest r;
  r.prompt = call["prompt"].get<std::string>();
  r.negative_prompt =
      call["negative_prompt"].is_null() ? "" : call["negative_prompt"].get<std::string>();
  r.seed = call["seed"].get<uint64_t>();
  r.num_frames = call["num_frames"].get<int>();
  r.steps = call["num_inference_steps"].get<int>();
  r.guidance = call["guidance_scale"].get<double>();
  r.eta = call["eta"].get<double>();
  r.width = call["width"].get<int>();
  r.height = call["height"].get<int>();
  r.scheduler_config = call["scheduler_config"];
  r.keep_step_latents = true;
  const at::Tensor want_embeds = load_npy(dir / "animatediff_ddim.prompt_embeds.npy");
  const at::Tensor want_negative = load_npy(dir / "animatediff_ddim.negative_prompt_embeds.npy");
  const at::Tensor want_init = load_npy(dir / "animatediff_ddim.init_latents.npy");
  if (given_embeds) {
    r.prompt_embeds = want_embeds;
    r.negative_prompt_embeds = want_negative;
    r.latents = want_init;
  }
  int callbacks = 0;
  r.on_step = [&](const video::VideoStepInfo& info) {
    ++callbacks;
    CHECK(info.step == callbacks);
    CHECK(info.latents->dim() == 5);
    return true;
  };
  const video::VideoResult out = pipe->generate(r);
  const std::string tag = given_embeds ? "given embeds/latents" : "computed embeds, seeded noise";
  CHECK(callbacks == r.steps);

  CHECK(report(tag + " prompt_embeds", out.prompt_embeds, want_embeds) <= kEmbedsAtol);
  CHECK(report(tag + " negative_prompt_embeds", out.negative_prompt_embeds, want_negative) <=
        kEmbedsAtol);
  CHECK(report(tag + " init_latents", out.init_latents, want_init) <= kNoiseAtol);

  std::vector<double> want_ts;
  for (const auto& t : c["timesteps_used"]) want_ts.push_back(t.get<double>());
  CHECK(out.timesteps == want_ts);

  const at::Tensor want_steps = load_npy(dir / "animatediff_ddim.step_latents.npy");
  REQUIRE(static_cast<int64_t>(out.step_latents.size()) == want_steps.size(0));
  for (std::size_t i = 0; i < out.step_latents.size(); ++i) {
    const at::Tensor want = want_steps[static_cast<int64_t>(i)];
    CHECK(report(tag + " step " + std::to_string(i + 1) + " latents", out.step_latents[i], want) <=
          kStepRel * test::max_abs(want));
  }
  const at::Tensor want_frames = load_npy(dir / "animatediff_ddim.frames.npy")[0];  // [F,H,W,3]
  const double d = report(tag + " frames", out.frames, want_frames);
  CHECK(d <= kFramesAtol);
  const double mse =
      (out.frames.to(at::kDouble) - want_frames.to(at::kDouble)).pow(2).mean().item<double>();
  std::cout << "[parity] " << tag
            << " frames PSNR = " << (mse > 0 ? 10 * std::log10(1.0 / mse) : 999.0) << " dB\n";
}

}  // namespace

TEST_CASE("UNetMotionModel forward matches diffusers at every stored timestep",
          "[parity][video][animatediff]") {
  const fs::path dir = refs() / "components";
  const nlohmann::json cases = test::read_json(dir / "components.json");
  torch::NoGradGuard no_grad;
  auto unet =
      video::load_unet_motion(test::fixtures_root() / "sd-tiny" / "unet",
                              test::fixtures_root() / "animatediff-tiny" / "motion_adapter");
  unet->eval();
  const at::Tensor sample = load_npy(dir / "unet_motion.sample.npy");
  const at::Tensor ehs = load_npy(dir / "unet_motion.encoder_hidden_states.npy");

  std::map<int64_t, fs::path> outputs;
  const std::regex pattern(R"(unet_motion\.out_t(\d+)\.npy)");
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, pattern)) outputs[std::stoll(m[1].str())] = e.path();
  }
  const auto& table = cases["timesteps"];
  REQUIRE(!outputs.empty());
  CHECK(outputs.size() == table.size());
  for (auto it = table.begin(); it != table.end(); ++it)
    CHECK(outputs.count(std::stoll(it.key())) == 1);

  for (const auto& [t, file] : outputs) {
    DYNAMIC_SECTION("t = " << t) {
      const at::Tensor timestep = at::scalar_tensor(t, at::kLong);  // 0-d int64, as the reference
      const at::Tensor got = unet->forward(sample, timestep, ehs);
      CHECK(report("unet_motion t=" + std::to_string(t), got, load_npy(file)) <= kUNetAtol);
    }
  }
}

TEST_CASE("AnimateDiff text-to-video matches diffusers with the stored embeddings and latents",
          "[parity][video][animatediff]") {
  check_ddim_case(true);
}

TEST_CASE("AnimateDiff text-to-video matches diffusers from the prompt and seed",
          "[parity][video][animatediff]") {
  check_ddim_case(false);
}
