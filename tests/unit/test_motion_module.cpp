// AnimateDiff motion modules: the sinusoidal position table, identity with a zero proj_out, frame
// mixing (and no mixing across videos), strict loading errors, the original mm_* name mapping,
// and the text-to-video API end to end on the tiny fixtures (frames, callback, MP4).
#include <torch/torch.h>

#include "tests/support/fixtures.h"

#include <catch2/catch.hpp>

#include <cmath>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/tensor_io.h"
#include "video/animatediff_pipeline.h"
#include "video/motion_module.h"
#include "video/video_io.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

video::MotionAdapterConfig tiny_config() {
  video::MotionAdapterConfig c;
  c.block_out_channels = {32, 64};
  c.motion_layers_per_block = 1;
  c.motion_num_attention_heads = 4;
  c.motion_norm_num_groups = 8;
  c.motion_max_seq_length = 16;
  return c;
}

std::vector<std::pair<std::string, at::Tensor>> named_tensors(torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters(true))
    out.emplace_back(p.key(), p.value().detach().clone());
  for (const auto& b : m.named_buffers(true)) out.emplace_back(b.key(), b.value().detach().clone());
  return out;
}

}  // namespace

TEST_CASE("motion position table is diffusers' sinusoidal encoding", "[unit][video][motion]") {
  const int64_t len = 32, dim = 16;
  const at::Tensor pe = video::sinusoidal_position_table(len, dim);
  REQUIRE(pe.sizes() == at::IntArrayRef({1, len, dim}));
  // Independent double-precision evaluation of sin/cos(p / 10000^(2i/dim)).
  double worst = 0;
  for (int64_t p = 0; p < len; ++p)
    for (int64_t i = 0; i < dim / 2; ++i) {
      const double angle = static_cast<double>(p) / std::pow(10000.0, 2.0 * i / dim);
      worst = std::max(worst, std::abs(pe[0][p][2 * i].item<double>() - std::sin(angle)));
      worst = std::max(worst, std::abs(pe[0][p][2 * i + 1].item<double>() - std::cos(angle)));
    }
  CHECK(worst < 2e-5);  // float32 angles up to 31 rad
  // Position 0 is (0, 1, 0, 1, ...).
  CHECK(pe[0][0].slice(0, 0, dim, 2).abs().max().item<double>() == 0.0);
  CHECK(pe[0][0].slice(0, 1, dim, 2).eq(1.0).all().item<bool>());
  CHECK_THROWS_AS(video::sinusoidal_position_table(8, 15), UsageError);

  // The tables stored in the fixture adapter (diffusers' buffers) are the same numbers.
  const fs::path dir = test::fixtures_root() / "animatediff-tiny" / "motion_adapter";
  const StateDict weights = StateDict::open(find_weight_files(dir));
  int compared = 0;
  for (const std::string& name : weights.names()) {
    if (name.size() < 13 || name.compare(name.size() - 13, 13, ".pos_embed.pe") != 0) continue;
    const at::Tensor stored = weights.tensor(name);
    const at::Tensor mine = video::sinusoidal_position_table(stored.size(1), stored.size(2));
    CHECK(test::max_abs_diff(stored, mine) <= 1e-6);
    ++compared;
  }
  // One table per transformer block of every motion module the adapter's config builds.
  CHECK(compared == static_cast<int>(video::load_motion_adapter(dir)->named_buffers().size()));
  CHECK(compared > 0);
}

TEST_CASE("a motion module with proj_out = 0 is an identity", "[unit][video][motion]") {
  torch::manual_seed(3);
  video::MotionModule m(32, 4, 8, 16);
  torch::NoGradGuard no_grad;
  for (auto& p : m->named_parameters(true))
    if (p.key().rfind("proj_out.", 0) == 0) p.value().zero_();
  const at::Tensor x = at::randn({2 * 6, 32, 5, 4});
  const at::Tensor y = m->forward(x, 6);
  CHECK(at::equal(y, x));
  // With the default (random) proj_out it is not.
  video::MotionModule other(32, 4, 8, 16);
  CHECK(test::max_abs_diff(other->forward(x, 6), x) > 1e-3);
}

TEST_CASE("motion modules mix frames within a video, never across videos",
          "[unit][video][motion]") {
  torch::manual_seed(5);
  video::MotionModule m(32, 4, 8, 16);
  torch::NoGradGuard no_grad;
  const int64_t frames = 6;
  const at::Tensor x = at::randn({2 * frames, 32, 4, 4});
  const at::Tensor y = m->forward(x, frames);
  at::Tensor x2 = x.clone();
  x2[0] += at::randn({32, 4, 4});  // frame 0 of video 0
  const at::Tensor y2 = m->forward(x2, frames);
  for (int64_t f = 1; f < frames; ++f)
    CHECK(test::max_abs_diff(y2[f], y[f]) > 1e-4);  // other frames of video 0 change
  // Video 1 (rows frames..2·frames-1) sees nothing of video 0.
  CHECK(at::equal(y2.slice(0, frames), y.slice(0, frames)));
  // More frames than the position table holds is a usage error.
  CHECK_THROWS_AS(m->forward(at::randn({17, 32, 2, 2}), 17), UsageError);
  CHECK_THROWS_AS(m->forward(at::randn({7, 32, 2, 2}), 2), UsageError);
}

TEST_CASE("motion adapter strict loading lists missing and unexpected names",
          "[unit][video][motion]") {
  torch::manual_seed(7);
  video::MotionAdapter source(tiny_config());
  auto tensors = named_tensors(*source);
  REQUIRE(tensors.size() > 10);
  const fs::path dir = test::temp_dir("motion_strict");

  // Complete: loads, and the values arrive.
  save_safetensors(dir / "ok.safetensors", tensors);
  video::MotionAdapter target(tiny_config());
  video::load_motion_adapter_weights(*target, StateDict::open({dir / "ok.safetensors"}), "ok");
  const auto loaded = named_tensors(*target);
  for (std::size_t i = 0; i < loaded.size(); ++i)
    CHECK(at::equal(loaded[i].second, tensors[i].second));

  // One missing, one unexpected, one mis-shaped.
  const std::string dropped = "up_blocks.1.motion_modules.1.transformer_blocks.0.attn2.to_k.weight";
  auto broken = tensors;
  bool found = false;
  for (auto it = broken.begin(); it != broken.end(); ++it)
    if (it->first == dropped) {
      broken.erase(it);
      found = true;
      break;
    }
  REQUIRE(found);
  broken.emplace_back("down_blocks.0.motion_modules.7.proj_in.weight", at::zeros({32, 32}));
  for (auto& [name, t] : broken)
    if (name == "mid_block.motion_modules.0.proj_in.bias") t = at::zeros({3});
  save_safetensors(dir / "bad.safetensors", broken);
  try {
    video::load_motion_adapter_weights(*target, StateDict::open({dir / "bad.safetensors"}),
                                       "bad.safetensors");
    FAIL("no error");
  } catch (const WeightsError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains(dropped));
    CHECK_THAT(what, Catch::Contains("down_blocks.0.motion_modules.7.proj_in.weight"));
    CHECK_THAT(what, Catch::Contains("mid_block.motion_modules.0.proj_in.bias"));
    CHECK_THAT(what, Catch::Contains("bad.safetensors"));
  }

  // A config that does not fit the weights (more layers) fails the same way, naming the folder.
  video::MotionAdapterConfig bigger = tiny_config();
  bigger.motion_layers_per_block = 2;
  video::MotionAdapter wrong(bigger);
  CHECK_THROWS_AS(
      video::load_motion_adapter_weights(*wrong, StateDict::open({dir / "ok.safetensors"}), "ok"),
      WeightsError);
}

TEST_CASE("original AnimateDiff mm_* names map onto diffusers' names", "[unit][video][motion]") {
  const std::string pre = "down_blocks.0.motion_modules.0.temporal_transformer.";
  const std::string out = "down_blocks.0.motion_modules.0.";
  CHECK(
      *video::diffusers_motion_name(pre + "transformer_blocks.0.attention_blocks.0.to_q.weight") ==
      out + "transformer_blocks.0.attn1.to_q.weight");
  CHECK(*video::diffusers_motion_name(pre +
                                      "transformer_blocks.0.attention_blocks.1.to_out.0.bias") ==
        out + "transformer_blocks.0.attn2.to_out.0.bias");
  CHECK(*video::diffusers_motion_name(pre + "transformer_blocks.0.norms.0.weight") ==
        out + "transformer_blocks.0.norm1.weight");
  CHECK(*video::diffusers_motion_name(pre + "transformer_blocks.0.norms.1.bias") ==
        out + "transformer_blocks.0.norm2.bias");
  CHECK(*video::diffusers_motion_name(pre + "transformer_blocks.0.ff_norm.weight") ==
        out + "transformer_blocks.0.norm3.weight");
  CHECK(*video::diffusers_motion_name(pre + "transformer_blocks.0.ff.net.0.proj.weight") ==
        out + "transformer_blocks.0.ff.net.0.proj.weight");
  CHECK(*video::diffusers_motion_name(pre + "norm.weight") == out + "norm.weight");
  CHECK(*video::diffusers_motion_name(pre + "proj_out.bias") == out + "proj_out.bias");
  CHECK(
      *video::diffusers_motion_name(
          "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0."
          "pos_encoder.pe") == "mid_block.motion_modules.0.transformer_blocks.0.pos_embed.pe");
  CHECK_FALSE(
      video::diffusers_motion_name(pre + "transformer_blocks.0.attention_blocks.1.pos_encoder.pe"));
  // diffusers names pass through unchanged.
  const std::string d = "up_blocks.1.motion_modules.2.transformer_blocks.0.attn2.to_v.weight";
  CHECK(*video::diffusers_motion_name(d) == d);

  // A whole adapter written under original names (the inverse rule) loads strictly.
  torch::manual_seed(11);
  video::MotionAdapter source(tiny_config());
  std::vector<std::pair<std::string, at::Tensor>> original;
  for (auto [name, t] : named_tensors(*source)) {
    auto swap = [&](const std::string& from, const std::string& to) {
      const auto pos = name.find(from);
      if (pos != std::string::npos) name.replace(pos, from.size(), to);
    };
    swap(".pos_embed.pe", ".attention_blocks.0.pos_encoder.pe");
    swap(".attn1.", ".attention_blocks.0.");
    swap(".attn2.", ".attention_blocks.1.");
    swap(".norm1.", ".norms.0.");
    swap(".norm2.", ".norms.1.");
    swap(".norm3.", ".ff_norm.");
    const auto dot = name.find(".motion_modules.");
    const auto after = name.find('.', dot + 16);
    name.insert(after, ".temporal_transformer");
    if (name.find(".attention_blocks.0.pos_encoder.pe") != std::string::npos) {
      std::string second = name;
      second.replace(second.find(".attention_blocks.0."), 20, ".attention_blocks.1.");
      original.emplace_back(second, t);
    }
    original.emplace_back(name, t);
  }
  const fs::path dir = test::temp_dir("motion_original");
  save_safetensors(dir / "mm.safetensors", original);
  video::MotionAdapter target(tiny_config());
  video::load_motion_adapter_weights(*target, StateDict::open({dir / "mm.safetensors"}), "mm");
  const auto want = named_tensors(*source), got = named_tensors(*target);
  REQUIRE(want.size() == got.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(at::equal(got[i].second, want[i].second));
}

TEST_CASE("motion adapter config is validated", "[unit][video][motion]") {
  nlohmann::json j = {{"_class_name", "MotionAdapter"},
                      {"block_out_channels", {32, 64}},
                      {"motion_num_attention_heads", 4},
                      {"motion_norm_num_groups", 32}};
  CHECK(video::MotionAdapterConfig::from_json(j, "cfg").block_out_channels.size() == 2);
  nlohmann::json pia = j;
  pia["conv_in_channels"] = 9;
  CHECK_THROWS_AS(video::MotionAdapterConfig::from_json(pia, "cfg"), ConfigError);
  nlohmann::json heads = j;
  heads["motion_num_attention_heads"] = 3;
  CHECK_THROWS_AS(video::MotionAdapterConfig::from_json(heads, "cfg"), ConfigError);
  nlohmann::json other = j;
  other["_class_name"] = "UNet2DConditionModel";
  CHECK_THROWS_AS(video::MotionAdapterConfig::from_json(other, "cfg"), ConfigError);
}

TEST_CASE("AnimateDiffPipeline generates seeded frames, reports steps and writes an MP4",
          "[unit][video][motion]") {
  auto pipe = video::AnimateDiffPipeline::load(test::fixtures_root() / "sd-tiny",
                                               test::fixtures_root() / "animatediff-tiny");
  video::VideoRequest r;
  r.prompt = "a blue teapot turning";
  r.seed = 3;
  r.num_frames = 6;
  r.steps = 2;
  int calls = 0;
  r.on_step = [&](const video::VideoStepInfo& info) {
    ++calls;
    CHECK(info.total == 2);
    CHECK(info.latents->sizes() == at::IntArrayRef({1, 4, 6, 32, 32}));
    return true;
  };
  const video::VideoResult a = pipe->generate(r);
  CHECK(calls == 2);
  REQUIRE(a.frames.sizes() == at::IntArrayRef({6, 64, 64, 3}));
  CHECK(a.frames.min().item<double>() >= 0.0);
  CHECK(a.frames.max().item<double>() <= 1.0);
  // Same seed, same frames; another seed, other frames.
  r.on_step = nullptr;
  CHECK(at::equal(pipe->generate(r).frames, a.frames));
  r.seed = 4;
  CHECK(test::max_abs_diff(pipe->generate(r).frames, a.frames) > 1e-3);
  // Cancelling from the callback stops after that step.
  r.on_step = [](const video::VideoStepInfo&) { return false; };
  const video::VideoResult cancelled = pipe->generate(r);
  CHECK(cancelled.cancelled);
  CHECK(cancelled.unet_calls == 1);
  CHECK_FALSE(cancelled.frames.defined());
  // Too many frames for the adapter's position table.
  r.num_frames = pipe->max_frames() + 1;
  CHECK_THROWS_AS(pipe->generate(r), UsageError);

  const fs::path mp4 = test::temp_dir("animatediff_mp4") / "clip.mp4";
  video::WriterOptions opts;
  opts.fps = {8, 1};
  video::write_frames(a.frames, mp4, opts);
  const video::VideoInfo info = video::probe(mp4);
  CHECK(info.width == 64);
  CHECK(info.height == 64);
  CHECK(info.frame_count == 6);
}
