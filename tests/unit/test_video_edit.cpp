// Image-to-video (init frames, strength, product keep-mask), context windows for long clips, clip
// editing by inversion and its figures (video/clip_edit.h, video/clip_metrics.h), on the tiny
// AnimateDiff fixture; and `studio video edit` / `studio video generate --init` end to end.
// fixtures.h includes ATen, whose glog CHECK macro must come before Catch's.
#include "tests/support/fixtures.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"
#include "image/image_metrics.h"
#include "tests/support/process.h"
#include "video/animatediff_pipeline.h"
#include "video/clip_edit.h"
#include "video/clip_metrics.h"

using namespace studio;
namespace fs = std::filesystem;
using test::shell_quote;

namespace {

std::unique_ptr<video::AnimateDiffPipeline> tiny() {
  return video::AnimateDiffPipeline::load(test::fixtures_root() / "sd-tiny",
                                          test::fixtures_root() / "animatediff-tiny");
}

// A smooth synthetic clip [F, 64, 64, 3]: a bright square moving right by `dx` pixels a frame.
at::Tensor moving_square(int frames, int dx) {
  at::Tensor clip = at::full({frames, 64, 64, 3}, 0.2f);
  for (int f = 0; f < frames; ++f) {
    clip[f].slice(0, 20, 44).slice(1, 8 + f * dx, 32 + f * dx).fill_(0.9f);
    clip[f].slice(0, 20, 44).slice(1, 8 + f * dx, 32 + f * dx).select(2, 2).fill_(0.3f);
  }
  return clip;
}

std::string models() {
  return " --model " + shell_quote((test::fixtures_root() / "sd-tiny").string()) + " --motion " +
         shell_quote((test::fixtures_root() / "animatediff-tiny").string());
}

}  // namespace

TEST_CASE("context windows cover the clip, overlap as asked and end at the last frame",
          "[unit][video]") {
  using W = std::vector<std::pair<int, int>>;
  CHECK(video::context_windows(16, 0, 4) == W{{0, 16}});
  CHECK(video::context_windows(16, 16, 4) == W{{0, 16}});
  CHECK(video::context_windows(20, 8, 2) == W{{0, 8}, {6, 14}, {12, 20}});
  CHECK(video::context_windows(10, 4, 1) == W{{0, 4}, {3, 7}, {6, 10}});
  CHECK(video::context_windows(9, 4, 0) == W{{0, 4}, {4, 8}, {5, 9}});
  CHECK_THROWS_AS(video::context_windows(20, 8, 8), UsageError);
  CHECK_THROWS_AS(video::context_windows(20, 8, -1), UsageError);
  CHECK_THROWS_AS(video::context_windows(0, 8, 2), UsageError);
}

TEST_CASE("motion windows: one window is the plain forward, several blend per frame",
          "[unit][video][animatediff]") {
  auto pipe = tiny();
  const at::Tensor x = at::randn({1, 4, 6, 32, 32}, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor ctx = pipe->encode_prompt({"a mug"});
  const at::Tensor whole = pipe->predict_noise(x, 500, ctx);
  CHECK(at::equal(pipe->predict_noise(x, 500, ctx, 6, 2), whole));
  const at::Tensor win = pipe->predict_noise(x, 500, ctx, 4, 2);  // [0,4) and [2,6)
  REQUIRE(win.sizes() == whole.sizes());
  // Frames seen by one window only are that window's prediction exactly.
  const at::Tensor first = pipe->predict_noise(x.slice(2, 0, 4), 500, ctx);
  const at::Tensor last = pipe->predict_noise(x.slice(2, 2, 6), 500, ctx);
  CHECK(test::max_abs_diff(win.slice(2, 0, 2), first.slice(2, 0, 2)) < 1e-6);
  CHECK(test::max_abs_diff(win.slice(2, 4, 6), last.slice(2, 2, 4)) < 1e-6);
  // Overlapping frames (2, 3): weighted means, weights 2/3 : 1/3 and 1/3 : 2/3.
  CHECK(test::max_abs_diff(win.select(2, 2), (2 * first.select(2, 2) + last.select(2, 0)) / 3) <
        1e-5);
  CHECK(test::max_abs_diff(win.select(2, 3), (first.select(2, 3) + 2 * last.select(2, 1)) / 3) <
        1e-5);
  // A long clip beyond the adapter's reach runs through windows.
  video::VideoRequest r;
  r.prompt = "a mug";
  r.steps = 1;
  r.num_frames = pipe->max_frames() + 4;
  r.width = r.height = 16;
  CHECK_THROWS_AS(pipe->generate(r), UsageError);
  r.context_frames = 16;
  const video::VideoResult long_clip = pipe->generate(r);
  CHECK(long_clip.frames.size(0) == pipe->max_frames() + 4);
  CHECK(long_clip.unet_calls == 3);  // windows [0,16) [12,28) [20,36)
}

TEST_CASE("image-to-video: strength, the product keep-mask and the first frame",
          "[unit][video][animatediff]") {
  auto pipe = tiny();
  const at::Tensor photo = moving_square(1, 0)[0];
  const at::Tensor roundtrip = pipe->decode_latents(pipe->encode_frames(photo.unsqueeze(0)))[0][0];
  video::VideoRequest r;
  r.prompt = "a mug on a beach";
  r.seed = 7;
  r.num_frames = 4;
  r.steps = 4;
  r.init_frames = photo;
  r.strength = 0.5;
  const video::VideoResult half = pipe->generate(r);
  CHECK(half.unet_calls == 2);  // the last int(4 * 0.5) steps
  REQUIRE(half.frames.sizes() == at::IntArrayRef({4, 64, 64, 3}));
  // Everything kept: every frame ends as the photo's latents, i.e. its VAE round trip.
  r.keep_mask = at::ones({64, 64});
  const video::VideoResult kept = pipe->generate(r);
  for (int f = 0; f < 4; ++f) CHECK(test::max_abs_diff(kept.frames[f], roundtrip) < 1e-5);
  // The first frame only.
  r.keep_mask = at::Tensor();
  r.keep_first_frame = true;
  r.strength = 1.0;
  const video::VideoResult first = pipe->generate(r);
  CHECK(test::max_abs_diff(first.frames[0], roundtrip) < 1e-5);
  CHECK(test::max_abs_diff(first.frames[3], roundtrip) > 1e-3);
  // Bad requests.
  r.init_frames = at::zeros({32, 32, 3});
  CHECK_THROWS_AS(pipe->generate(r), UsageError);
  r.init_frames = std::nullopt;
  CHECK_THROWS_AS(pipe->generate(r), UsageError);  // keep_first_frame without init
}

TEST_CASE("clip metrics: frame differences, warp error under optical flow, masked PSNR",
          "[unit][video]") {
  const at::Tensor still = at::full({4, 64, 64, 3}, 0.5f);
  CHECK(video::mean_frame_difference(still) == 0.0);
  CHECK(video::mean_frame_difference(still.slice(0, 0, 1)) == 0.0);
  const at::Tensor moving = moving_square(5, 2);
  const double diff = video::mean_frame_difference(moving);
  CHECK(diff > 0.01);
  const at::Tensor flow = video::backward_flow(moving);
  REQUIRE(flow.sizes() == at::IntArrayRef({4, 64, 64, 2}));
  // The flow explains the motion: warping the previous frame predicts the next one far better
  // than leaving it where it was; a clip that does not follow that motion is not explained.
  const double warp = video::warp_error(moving, flow);
  CHECK(warp < 0.5 * diff);
  const at::Tensor shuffled = at::stack({moving[4], moving[0], moving[3], moving[1], moving[2]});
  CHECK(video::warp_error(shuffled, flow) > 2 * warp);
  // Masked PSNR: identical inside the mask, different outside.
  at::Tensor other = moving.clone();
  other.slice(2, 48, 64).fill_(0.f);
  const at::Tensor left = at::zeros({64, 64});
  left.slice(1, 0, 40).fill_(1.f);
  CHECK(std::isinf(video::masked_psnr(moving, other, left)));
  CHECK(video::masked_psnr(moving, other, 1 - left) < 20.0);
  CHECK(std::isnan(video::masked_psnr(moving, other, at::zeros({64, 64}))));
  CHECK_THROWS_AS(video::warp_error(moving, flow.slice(0, 0, 2)), UsageError);
}

TEST_CASE("clip editing by inversion: exact direct reconstruction, the product kept",
          "[unit][video][animatediff]") {
  auto pipe = tiny();
  const at::Tensor clip = moving_square(4, 2);
  video::ClipEditOptions o;
  o.source_prompt = "a yellow box";
  o.prompt = "a red box in snow";
  o.steps = 4;
  o.guidance = 3.0;
  std::vector<std::string> phases;
  o.on_progress = [&](const video::ClipEditProgress& p) {
    if (phases.empty() || phases.back() != p.phase) phases.push_back(p.phase);
    return true;
  };
  const video::ClipEditResult direct = video::edit_clip(*pipe, clip, o);
  CHECK(phases == std::vector<std::string>{"invert", "direct", "edit", "reconstruct"});
  CHECK(direct.unet_calls == 4 * 4);
  REQUIRE(direct.frames.sizes() == clip.sizes());
  // Direct inversion reconstructs the source's latents exactly: the reconstruction is the VAE
  // round trip; the edit is not.
  CHECK(image::psnr(direct.reconstruction, direct.vae_roundtrip) > 60.0);
  CHECK(image::psnr(direct.frames, direct.vae_roundtrip) < 60.0);
  // Plain DDIM under guidance drifts from it.
  o.method = video::ClipInversion::kDdim;
  const video::ClipEditResult ddim = video::edit_clip(*pipe, clip, o);
  CHECK(ddim.unet_calls == 3 * 4);
  CHECK(image::psnr(ddim.reconstruction, direct.vae_roundtrip) <
        image::psnr(direct.reconstruction, direct.vae_roundtrip));
  // A keep-mask over the whole clip keeps every frame as the source (latents on its trajectory).
  o.method = video::ClipInversion::kDirect;
  o.reconstruct = false;
  o.keep_mask = at::ones({64, 64});
  const video::ClipEditResult kept = video::edit_clip(*pipe, clip, o);
  CHECK_FALSE(kept.reconstruction.defined());
  CHECK(test::max_abs_diff(kept.frames, direct.vae_roundtrip) < 1e-5);
  // Windows over the frames, and strength.
  o.keep_mask = at::Tensor();
  o.context_frames = 3;
  o.context_overlap = 1;
  o.strength = 0.5;
  const video::ClipEditResult windowed = video::edit_clip(*pipe, clip, o);
  CHECK(windowed.timesteps.size() == 2);
  CHECK(windowed.unet_calls == 2 * (4 + 4 + 2));  // two windows per pass
  CHECK(video::parse_clip_inversion("negative-prompt") == video::ClipInversion::kNegativePrompt);
  CHECK_THROWS_AS(video::parse_clip_inversion("null-text"), UsageError);
}

TEST_CASE("studio video edit: a few frames of the sample edited, timing kept, metrics written",
          "[unit][cli][video][animatediff]") {
  const fs::path dir = test::temp_dir("cli_video_edit");
  const fs::path sample = test::data_root() / "video" / "big_buck_bunny_480p_30s.mp4";
  // A product mask at the clip's aspect (854x480 → a 16:9 picture): the centre is kept.
  const fs::path mask = dir / "mask.png";
  auto mk = test::run_command(
      "ffmpeg -v error -f lavfi -i color=black:s=160x90 -vf "
      "drawbox=x=60:y=25:w=40:h=40:color=white:t=fill -frames:v 1 " +
      shell_quote(mask.string()) + " 2>&1");
  REQUIRE(mk.exit_code == 0);
  const fs::path out = dir / "edited.mp4";
  auto r = test::run_studio("video edit" + models() + " --input " + shell_quote(sample.string()) +
                            " --start 10 --frames 5 --steps 3 --size 96x48 --guidance 3"
                            " --source-prompt 'a rabbit in a meadow' --prompt 'a rabbit in "
                            "snow' --mask " +
                            shell_quote(mask.string()) + " --feather 2 --device cpu --out " +
                            shell_quote(out.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("warp error") && Catch::Contains("reconstruction PSNR"));
  const video::VideoInfo info = video::probe(out);
  CHECK(info.width == 96);
  CHECK(info.height == 48);
  CHECK(info.frame_count == 5);
  CHECK(info.fps.num == 24);  // the source's timing
  CHECK(info.fps.den == 1);
  CHECK(info.has_audio);
  CHECK(info.tags.at("ai_generated") == "true");
  const auto side = nlohmann::json::parse(test::read_file(dir / "edited.mp4.json"));
  const auto& m = side["metrics"];
  CHECK(m["frames"] == 5);
  CHECK(m["temporal"]["mean_frame_difference"]["source"].get<double>() > 0);
  CHECK(m["temporal"]["warp_error_source_flow"]["edit"].get<double>() > 0);
  CHECK(m["fidelity"]["vae_roundtrip_psnr_db"].get<double>() > 0);
  CHECK(m["fidelity"]["reconstruction_psnr_db"].is_number());
  CHECK(m["fidelity"]["composited"] == true);
  CHECK(side["parameters"]["inversion"] == "direct");
  CHECK(side["source"]["frames"] == 5);

  // Clear refusals, nothing written.
  auto corrupt =
      test::run_studio("video edit" + models() + " --input " +
                       shell_quote((test::data_root() / "photos" / "truncated.jpg").string()) +
                       " --prompt x --out " + shell_quote((dir / "bad.mp4").string()));
  CHECK(corrupt.exit_code == 1);
  CHECK_THAT(corrupt.output, Catch::Contains("truncated.jpg"));
  auto method = test::run_studio(
      "video edit" + models() + " --input " + shell_quote(sample.string()) +
      " --prompt x --inversion null-text --out " + shell_quote((dir / "bad.mp4").string()));
  CHECK(method.exit_code != 0);
  CHECK_THAT(method.output, Catch::Contains("direct, negative-prompt, ddim"));
  auto aspect =
      test::run_studio("video edit" + models() + " --input " + shell_quote(sample.string()) +
                       " --frames 2 --steps 1 --size 96x48 --prompt x --mask " +
                       shell_quote((test::data_root() / "photos" / "brick.png").string()) +
                       " --device cpu --out " + shell_quote((dir / "bad.mp4").string()));
  CHECK(aspect.exit_code != 0);
  CHECK_THAT(aspect.output, Catch::Contains("aspect"));
  CHECK_FALSE(fs::exists(dir / "bad.mp4"));
}

TEST_CASE("studio video generate --init: image-to-video of a product photo",
          "[unit][cli][video][animatediff]") {
  const fs::path dir = test::temp_dir("cli_video_i2v");
  const fs::path photo = test::data_root() / "photos" / "coffee.png";
  const fs::path out = dir / "clip.mp4";
  auto r = test::run_studio("video generate" + models() + " --prompt 'coffee, steam rising'" +
                            " --init " + shell_quote(photo.string()) +
                            " --strength 0.75 --keep-first-frame --frames 4 --steps 4 --size "
                            "64x48 --device cpu --out " +
                            shell_quote(out.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const video::VideoInfo info = video::probe(out);
  CHECK(info.width == 64);
  CHECK(info.height == 48);
  CHECK(info.frame_count == 4);
  CHECK_THAT(info.tags.at("comment"), Catch::Contains("Init image: coffee.png, Strength: 0.75"));
  const auto side = nlohmann::json::parse(test::read_file(dir / "clip.mp4.json"));
  CHECK(side["parameters"]["unet_calls"] == 3);
  CHECK(side["parameters"]["init_image"]["keep_first_frame"] == true);
  auto no_init =
      test::run_studio("video generate" + models() + " --prompt x --keep-first-frame --out " +
                       shell_quote((dir / "bad.mp4").string()));
  CHECK(no_init.exit_code == 1);
  CHECK_THAT(no_init.output, Catch::Contains("need --init"));
  auto bad_photo =
      test::run_studio("video generate" + models() + " --prompt x --init " +
                       shell_quote((test::data_root() / "photos" / "truncated.jpg").string()) +
                       " --out " + shell_quote((dir / "bad.mp4").string()));
  CHECK(bad_photo.exit_code == 1);
  CHECK_THAT(bad_photo.output, Catch::Contains("truncated.jpg"));
  CHECK_FALSE(fs::exists(dir / "bad.mp4"));
}
