// Prompt-to-Prompt editing on the tiny random-weight sd-tiny pipeline and coffee.png at 64x64:
// the official token alignment, the batch being exactly two regenerate() rows when no attention
// is injected, identity edits reconstructing, injection pulling the edit towards the source, and
// the option errors.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <random>

#include "core/error.h"
#include "image/image_io.h"
#include "image/image_metrics.h"
#include "image/inversion.h"
#include "image/prompt_to_prompt.h"
#include "image/sd_pipeline.h"
#include "tests/support/fixtures.h"
#include "text/clip_tokenizer.h"

using namespace studio;
using image::InversionMethod;

namespace {

constexpr int kSteps = 10;
constexpr const char* kSource = "a cup of coffee on a table";

// coffee.png's centred square, preprocessed to size x size.
at::Tensor coffee(int size, int vae_factor) {
  image::ImageReadOptions ro;
  ro.alpha = image::AlphaMode::kDrop;
  const image::Image img = image::read_image(test::data_root() / "photos" / "coffee.png", ro);
  const int64_t side = std::min(img.pixels.size(0), img.pixels.size(1));
  at::Tensor sq = img.pixels.narrow(0, (img.pixels.size(0) - side) / 2, side)
                      .narrow(1, (img.pixels.size(1) - side) / 2, side);
  return image::preprocess_for_inversion(sq.contiguous(), vae_factor, size, size);
}

double mse(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).mean().item<double>();
}

// One pipeline and one inversion per method, shared by the test cases of this file.
struct Fixture {
  std::unique_ptr<image::SdPipeline> pipe;
  at::Tensor photo;  // NCHW [-1, 1]
  std::map<InversionMethod, image::Inversion> inversions;

  static Fixture& get() {
    static Fixture f;
    if (!f.pipe) {
      f.pipe = image::SdPipeline::load(test::fixtures_root() / "sd-tiny", "cpu", "fp32");
      f.photo = coffee(64, f.pipe->vae_scale_factor());
    }
    return f;
  }
  const image::Inversion& inversion(InversionMethod m) {
    auto it = inversions.find(m);
    if (it != inversions.end()) return it->second;
    image::InversionOptions o;
    o.prompt = kSource;
    o.steps = kSteps;
    o.method = m;
    o.guidance = 7.5;
    o.null_text_iterations = 5;
    return inversions.emplace(m, image::invert(*pipe, photo, o)).first->second;
  }
};

ClipTokenizer tiny_tokenizer() {
  return ClipTokenizer::load(test::fixtures_root() / "sd-tiny" / "tokenizer");
}

// Classic LCS length, for checking the official alignment is one.
std::size_t lcs_length(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1, 0));
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j)
      d[i][j] = a[i - 1] == b[j - 1] ? d[i - 1][j - 1] + 1 : std::max(d[i - 1][j], d[i][j - 1]);
  return d[a.size()][b.size()];
}

}  // namespace

TEST_CASE("prompt-to-prompt aligns the edited prompt's tokens to the source's", "[unit][p2p]") {
  const ClipTokenizer tok = tiny_tokenizer();
  SECTION("words added: aligned columns map through, new tokens keep their own") {
    // [bos a photo of a red mug eos] -> [bos a photo of a red mug on snow eos]
    const auto a =
        image::align_prompts(tok, "a photo of a red mug", "a photo of a red mug on snow");
    REQUIRE(a.source_length == 8);
    REQUIRE(a.target_length == 10);
    CHECK(a.aligned == 8);
    REQUIRE(a.source_of.size() == 77);
    const std::vector<int64_t> head(a.source_of.begin(), a.source_of.begin() + 12);
    CHECK(head == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, -1, -1, 7, 10, 11});
    CHECK(a.source_of[76] == 76);  // padding columns map to themselves (the official mapper)
  }
  SECTION("a word removed and a word swapped") {
    const auto removed = image::align_prompts(tok, "a photo of a red mug", "a photo of a mug");
    const std::vector<int64_t> head(removed.source_of.begin(), removed.source_of.begin() + 8);
    CHECK(head == std::vector<int64_t>{0, 1, 2, 3, 4, 6, 7, 7});
    const auto swapped = image::align_prompts(tok, "a red mug", "a blue mug");
    const std::vector<int64_t> h2(swapped.source_of.begin(), swapped.source_of.begin() + 6);
    CHECK(h2 == std::vector<int64_t>{0, 1, -1, 3, 4, 5});
    CHECK(swapped.aligned == 4);
  }
  SECTION("the alignment is a longest common subsequence of the ids (random sequences)") {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 200; ++trial) {
      std::uniform_int_distribution<int> len(0, 12), tokd(0, 4);
      std::vector<int64_t> x(len(rng)), y(len(rng));
      for (auto& v : x) v = tokd(rng);
      for (auto& v : y) v = tokd(rng);
      const auto a = image::align_token_ids(x, y, 16);
      INFO("trial " << trial);
      CHECK(static_cast<std::size_t>(a.aligned) == lcs_length(x, y));
      int64_t last = -1, count = 0;
      for (std::size_t j = 0; j < y.size(); ++j) {
        const int64_t s = a.source_of[j];
        if (s < 0) continue;
        ++count;
        CHECK(s > last);  // order-preserving
        CHECK(x[s] == y[j]);
        last = s;
      }
      CHECK(count == a.aligned);
    }
    CHECK_THROWS_AS(image::align_token_ids(std::vector<int64_t>(5, 1), {1}, 4), UsageError);
  }
  SECTION("word positions for re-weighting") {
    CHECK(image::word_token_positions(tok, "a photo of a red mug on snow", "snow") ==
          std::vector<int64_t>{8});
    CHECK(image::word_token_positions(tok, "a photo of a red mug on snow", "a") ==
          std::vector<int64_t>{1, 4});
    CHECK(image::word_token_positions(tok, "a photo of a red mug", "snow").empty());
  }
  CHECK(image::parse_prompt_to_prompt_mode("refine") == image::PromptToPromptMode::kRefine);
  CHECK_THROWS_AS(image::parse_prompt_to_prompt_mode("swap"), UsageError);
}

TEST_CASE("prompt-to-prompt rejects bad options", "[unit][p2p]") {
  Fixture& f = Fixture::get();
  const image::Inversion& inv = f.inversion(InversionMethod::kDdim);
  image::PromptToPromptOptions o;
  o.prompt = "";
  CHECK_THROWS_AS(image::prompt_to_prompt(*f.pipe, inv, o), UsageError);
  o.prompt = "a cup of coffee on a wooden table";  // one more token than the source
  o.mode = image::PromptToPromptMode::kReplace;
  try {
    image::prompt_to_prompt(*f.pipe, inv, o);
    FAIL("replace with different token counts must throw");
  } catch (const UsageError& e) {
    CHECK(e.hint().find("refine") != std::string::npos);
  }
  o.mode = image::PromptToPromptMode::kAuto;
  for (double bad : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    image::PromptToPromptOptions c = o;
    c.cross_replace_steps = bad;
    CHECK_THROWS_AS(image::prompt_to_prompt(*f.pipe, inv, c), UsageError);
    image::PromptToPromptOptions s = o;
    s.self_replace_steps = bad;
    CHECK_THROWS_AS(image::prompt_to_prompt(*f.pipe, inv, s), UsageError);
  }
  image::PromptToPromptOptions w = o;
  w.reweight = {{"snow", 2.0}};
  CHECK_THROWS_AS(image::prompt_to_prompt(*f.pipe, inv, w), UsageError);
  w.reweight = {{"wooden", -1.0}};
  CHECK_THROWS_AS(image::prompt_to_prompt(*f.pipe, inv, w), UsageError);
  image::PromptToPromptOptions st = o;
  st.strength = 0;
  CHECK_THROWS_AS(image::prompt_to_prompt(*f.pipe, inv, st), UsageError);
  image::PromptToPromptOptions km = o;
  km.keep_mask = at::ones({5, 5});
  CHECK_THROWS_AS(image::prompt_to_prompt(*f.pipe, inv, km), UsageError);
}

TEST_CASE("prompt-to-prompt: an identity edit is the source row and reconstructs like regenerate",
          "[unit][p2p]") {
  Fixture& f = Fixture::get();
  for (InversionMethod m :
       {InversionMethod::kDdim, InversionMethod::kNullText, InversionMethod::kDirect}) {
    const image::Inversion& inv = f.inversion(m);
    INFO("method " << image::inversion_method_name(m));
    image::PromptToPromptOptions o;
    o.prompt = kSource;
    o.include_source = true;
    o.keep_step_latents = true;
    const auto out = image::prompt_to_prompt(*f.pipe, inv, o);
    REQUIRE(out.images.sizes() == at::IntArrayRef({2, 64, 64, 3}));
    CHECK(out.unet_calls == kSteps);
    CHECK(out.step_latents.size() == static_cast<std::size_t>(kSteps));
    const double rows = test::max_abs_diff(out.images[0], out.images[1]);
    const auto rec = image::regenerate(*f.pipe, inv);
    const double vs_regen = test::max_abs_diff(out.images[0], rec.images[0]);
    std::printf("p2p identity edit, %s: |target - source| %.2e, |target - regenerate| %.2e\n",
                image::inversion_method_name(m), rows, vs_regen);
    CHECK(rows <= 1e-4);
    CHECK(vs_regen <= 1e-3);
    if (m == InversionMethod::kDirect) {
      // Direct inversion reconstructs the VAE round trip (null-text on sd-tiny's random UNet only
      // reaches regenerate()'s 13.7 dB, see docs/editing.md, which vs_regen checks).
      const at::Tensor roundtrip = f.pipe->vae_decode(inv.z0);
      CHECK(image::psnr(out.images.narrow(0, 0, 1), roundtrip) > 40.0);
      // The source row stays on the trajectory at every step; the target (kSourceStep) with it.
      for (int i = 0; i < kSteps; ++i) {
        CHECK(test::max_abs_diff(out.step_latents[i][1], inv.trajectory[kSteps - 1 - i][0]) == 0);
        CHECK(test::max_abs_diff(out.step_latents[i][0], out.step_latents[i][1]) <= 1e-6);
      }
    }
  }
}

TEST_CASE("prompt-to-prompt without injection is regenerate() with the edited prompt",
          "[unit][p2p]") {
  Fixture& f = Fixture::get();
  const std::string edit = "a cup of tea on a table";
  using DT = image::DirectTargetCorrection;
  struct Case {
    InversionMethod method;
    double strength;
    DT direct_target;
  };
  for (Case c : {Case{InversionMethod::kDdim, 1.0, DT::kSourceStep},
                 Case{InversionMethod::kNegativePrompt, 1.0, DT::kSourceStep},
                 Case{InversionMethod::kNullText, 1.0, DT::kSourceStep},
                 Case{InversionMethod::kDirect, 1.0, DT::kSourceStep},
                 Case{InversionMethod::kDirect, 1.0, DT::kInversionStep},
                 Case{InversionMethod::kNullText, 0.6, DT::kSourceStep}}) {
    const image::Inversion& inv = f.inversion(c.method);
    INFO("method " << image::inversion_method_name(c.method) << ", strength " << c.strength
                   << ", direct target " << static_cast<int>(c.direct_target));
    image::PromptToPromptOptions o;
    o.prompt = edit;
    o.cross_replace_steps = 0;
    o.self_replace_steps = 0;
    o.strength = c.strength;
    o.direct_target = c.direct_target;
    int calls = 0;
    o.on_step = [&](const image::StepInfo& s) {
      ++calls;
      CHECK(s.latents->size(0) == 1);
      return true;
    };
    const auto p2p = image::prompt_to_prompt(*f.pipe, inv, o);
    image::RegenerateOptions r;
    r.prompt = edit;
    r.strength = c.strength;
    const auto reg = image::regenerate(*f.pipe, inv, r);
    CHECK(calls == static_cast<int>(reg.timesteps.size()));
    CHECK(p2p.timesteps == reg.timesteps);
    const double d = test::max_abs_diff(p2p.images, reg.images);
    std::printf(
        "p2p without injection vs regenerate, %s, strength %.1f, direct target %d: max "
        "|diff| %.2e\n",
        image::inversion_method_name(c.method), c.strength, static_cast<int>(c.direct_target), d);
    CHECK(d <= 1e-3);
    // ... and the edit really differs from the reconstruction.
    CHECK(test::max_abs_diff(p2p.images, image::regenerate(*f.pipe, inv).images) > 1e-2);
  }
  SECTION("keep-mask blends both rows like regenerate") {
    const image::Inversion& inv = f.inversion(InversionMethod::kNullText);
    at::Tensor half = at::zeros({32, 32});
    half.narrow(1, 0, 16).fill_(1);
    image::PromptToPromptOptions o;
    o.prompt = edit;
    o.cross_replace_steps = 0;
    o.self_replace_steps = 0;
    o.keep_mask = half;
    image::RegenerateOptions r;
    r.prompt = edit;
    r.keep_mask = half;
    const auto p2p = image::prompt_to_prompt(*f.pipe, inv, o);
    CHECK(test::max_abs_diff(p2p.latents, image::regenerate(*f.pipe, inv, r).latents) <= 1e-3);
    CHECK(test::max_abs_diff(p2p.latents.narrow(3, 0, 16), inv.z0.narrow(3, 0, 16)) <= 1e-6);
  }
}

TEST_CASE("prompt-to-prompt controller replaces the target's maps by the source's", "[unit][p2p]") {
  torch::manual_seed(5);
  // [uncond src, uncond tgt, cond src, cond tgt] x 2 heads x 6 queries x 5 keys.
  const at::Tensor cross = at::rand({4, 2, 6, 5}).softmax(-1);
  const at::Tensor self_small = at::rand({4, 2, 6, 6}).softmax(-1);
  const at::Tensor self_big = at::rand({4, 2, 9, 9}).softmax(-1);
  auto same = [](const at::Tensor& a, const at::Tensor& b) {
    return test::max_abs_diff(a, b) == 0;
  };
  SECTION("replace: every column of the target row; other rows untouched") {
    image::PromptToPromptController c({}, {}, 8);
    CHECK(same(c.on_attention(cross, true), cross));  // injection off
    c.set_injection(true, false);
    const at::Tensor out = c.on_attention(cross, true);
    CHECK(same(out[3], cross[2]));
    CHECK(same(out.narrow(0, 0, 3), cross.narrow(0, 0, 3)));
    CHECK(same(c.on_attention(self_small, false), self_small));
    CHECK(c.cross_edits() == 1);
    CHECK(c.self_edits() == 0);
  }
  SECTION("refine: aligned columns from the source, new tokens keep their own; re-weighting") {
    image::PromptToPromptController c({0, -1, 1, 3, 4}, {1, 1, 1, 2, 1}, 8);
    c.set_injection(true, false);
    const at::Tensor out = c.on_attention(cross, true);
    CHECK(same(out[3].select(-1, 0), cross[2].select(-1, 0)));
    CHECK(same(out[3].select(-1, 1), cross[3].select(-1, 1)));  // new token
    CHECK(same(out[3].select(-1, 2), cross[2].select(-1, 1)));
    CHECK(test::max_abs_diff(out[3].select(-1, 3), 2 * cross[2].select(-1, 3)) <= 1e-7);
    CHECK(same(out[3].select(-1, 4), cross[2].select(-1, 4)));
    image::PromptToPromptController wrong({0, 1, 2}, {}, 8);
    wrong.set_injection(true, false);
    CHECK_THROWS_AS(wrong.on_attention(cross, true), UsageError);
  }
  SECTION("self: only layers with Lq <= max_self_queries") {
    image::PromptToPromptController c({}, {}, 8);
    c.set_injection(false, true);
    CHECK(same(c.on_attention(self_small, false)[3], self_small[2]));
    CHECK(same(c.on_attention(self_big, false), self_big));  // 9 queries > 8
    CHECK(same(c.on_attention(cross, true), cross));         // cross off
    CHECK(c.self_edits() == 1);
    CHECK(same(c.on_attention(cross.narrow(0, 0, 1), true), cross.narrow(0, 0, 1)));
  }
}

TEST_CASE("prompt-to-prompt attention injection changes the edit within its step window",
          "[unit][p2p][slow]") {
  // On sd-tiny (random weights; the UNet barely reacts to the text) injecting the source's maps
  // changes the edit by a few percent of its distance to the source, in either direction: the
  // MSEs printed here are not expected to fall (they need trained weights to).
  Fixture& f = Fixture::get();
  for (InversionMethod m : {InversionMethod::kNullText, InversionMethod::kDirect}) {
    const image::Inversion& inv = f.inversion(m);
    const at::Tensor source = image::regenerate(*f.pipe, inv).images;
    for (const std::string& edit : {std::string("a cup of tea on a table"),
                                    std::string("a cup of coffee on a snowy table")}) {
      INFO("method " << image::inversion_method_name(m) << ", edit \"" << edit << "\"");
      image::PromptToPromptOptions o;
      o.prompt = edit;
      o.cross_replace_steps = 0;
      o.self_replace_steps = 0;
      const auto plain = image::prompt_to_prompt(*f.pipe, inv, o);
      o.cross_replace_steps = 1;
      const auto cross = image::prompt_to_prompt(*f.pipe, inv, o);
      o.cross_replace_steps = 0.5;
      const auto half = image::prompt_to_prompt(*f.pipe, inv, o);
      o.cross_replace_steps = 1;
      o.self_replace_steps = 0.4;
      const auto both = image::prompt_to_prompt(*f.pipe, inv, o);
      // Self-attention replacement limited to layers with fewer queries than sd-tiny's 16 x 16:
      // none is replaced, as with self_replace_steps 0.
      o.self_replace_max_queries = 16 * 16 - 1;
      const auto limited = image::prompt_to_prompt(*f.pipe, inv, o);
      const double m_plain = mse(plain.images, source), m_cross = mse(cross.images, source),
                   m_half = mse(half.images, source), m_both = mse(both.images, source);
      std::printf(
          "p2p %s, \"%s\": MSE to the source reconstruction: no injection %.4e, "
          "cross 0.5 %.4e, cross 1.0 %.4e, cross 1.0 + self 0.4 %.4e\n",
          image::inversion_method_name(m), edit.c_str(), m_plain, m_half, m_cross, m_both);
      // Batching noise is ~3e-5 (the test above); injection moves the image well beyond it.
      CHECK(test::max_abs_diff(cross.images, plain.images) > 1e-3);
      CHECK(test::max_abs_diff(half.images, plain.images) > 1e-3);
      CHECK(test::max_abs_diff(half.images, cross.images) > 1e-4);
      CHECK(test::max_abs_diff(both.images, cross.images) > 1e-3);
      CHECK(test::max_abs_diff(limited.images, cross.images) <= 1e-5);
    }
  }
}

TEST_CASE("prompt-to-prompt re-weighting a word changes the edit, scale 1 changes nothing",
          "[unit][p2p]") {
  Fixture& f = Fixture::get();
  const image::Inversion& inv = f.inversion(InversionMethod::kNullText);
  image::PromptToPromptOptions o;
  o.prompt = "a cup of coffee on a snowy table";
  const auto base = image::prompt_to_prompt(*f.pipe, inv, o);
  o.reweight = {{"snowy", 1.0}};
  CHECK(test::max_abs_diff(image::prompt_to_prompt(*f.pipe, inv, o).images, base.images) == 0);
  o.reweight = {{"snowy", 4.0}};
  CHECK(test::max_abs_diff(image::prompt_to_prompt(*f.pipe, inv, o).images, base.images) > 1e-3);
}
