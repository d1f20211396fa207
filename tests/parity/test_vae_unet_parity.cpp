// The C++ UNet and VAE against diffusers 0.29.2 on the sd-tiny random-weight pipeline: one UNet
// forward per stored timestep, VAE decode, and VAE encode (mean, std, seeded sample). Data-driven
// over sd-tiny-ref/components/components.json; tolerances from the fixtures README.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <iostream>
#include <regex>

#include "core/checkpoint.h"
#include "core/random.h"
#include "core/tensor_io.h"
#include "image/unet.h"
#include "image/vae.h"
#include "tests/support/fixtures.h"

using namespace studio;
namespace fs = std::filesystem;

namespace {

constexpr double kUNetAtol = 2e-5;
constexpr double kVaeAtol = 5e-5;

double report(const std::string& what, const at::Tensor& got, const at::Tensor& want) {
  REQUIRE(got.sizes() == want.sizes());
  const double d = test::max_abs_diff(got, want);
  std::cout << "[parity] " << what << ": max|diff| = " << d
            << " (max|ref| = " << test::max_abs(want) << ")\n";
  return d;
}

struct SdTiny {
  fs::path refs;
  CheckpointInfo pipeline;
  nlohmann::json cases;
};

SdTiny open_sd_tiny() {
  SdTiny s;
  const fs::path root = test::fixtures_root();
  s.refs = root / "sd-tiny-ref" / "components";
  s.pipeline = inspect_checkpoint(root / "sd-tiny");
  s.cases = test::read_json(s.refs / "components.json");
  return s;
}

}  // namespace

TEST_CASE("UNet forward matches diffusers at every stored timestep", "[parity][image][unet]") {
  const SdTiny s = open_sd_tiny();
  REQUIRE(s.cases.contains("unet"));
  torch::NoGradGuard no_grad;
  auto unet = image::load_unet(find_component(s.pipeline, "unet"));

  const at::Tensor sample = load_npy(s.refs / "unet.sample.npy");
  // encoder_hidden_states = [hidden(""), hidden(prompt)] (components.json "encoder_hidden_states").
  const at::Tensor hidden = load_npy(s.refs / "text_encoder.last_hidden_state.npy");
  const at::Tensor ehs = at::stack({hidden[1], hidden[0]});

  // Every unet.out_t<T>.npy on disk, cross-checked against the JSON's timestep table.
  std::map<int64_t, fs::path> outputs;
  const std::regex pattern(R"(unet\.out_t(\d+)\.npy)");
  for (const auto& e : fs::directory_iterator(s.refs)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, pattern)) outputs[std::stoll(m[1].str())] = e.path();
  }
  const auto& table = s.cases["unet"]["timesteps"];
  REQUIRE(!outputs.empty());
  CHECK(outputs.size() == table.size());
  for (auto it = table.begin(); it != table.end(); ++it)
    CHECK(outputs.count(std::stoll(it.key())) == 1);

  for (const auto& [t, file] : outputs) {
    DYNAMIC_SECTION("t = " << t) {
      const at::Tensor timestep = at::scalar_tensor(t, at::kLong);  // 0-d int64, as the reference
      const at::Tensor got = unet->forward(sample, timestep, ehs);
      CHECK(report("unet t=" + std::to_string(t), got, load_npy(file)) <= kUNetAtol);
    }
  }
}

TEST_CASE("VAE decode matches diffusers", "[parity][image][vae]") {
  const SdTiny s = open_sd_tiny();
  REQUIRE(s.cases.contains("vae_decode"));
  torch::NoGradGuard no_grad;
  auto vae = image::load_vae(find_component(s.pipeline, "vae"));
  CHECK(vae->scaling_factor() == Approx(0.18215));
  const at::Tensor got = vae->decode(load_npy(s.refs / "vae.decode_in.npy"));
  CHECK(report("vae decode", got, load_npy(s.refs / "vae.decode_out.npy")) <= kVaeAtol);
}

TEST_CASE("VAE encode matches diffusers (mean, std, seeded sample)", "[parity][image][vae]") {
  const SdTiny s = open_sd_tiny();
  REQUIRE(s.cases.contains("vae_encode"));
  torch::NoGradGuard no_grad;
  auto vae = image::load_vae(find_component(s.pipeline, "vae"));
  const image::DiagonalGaussian posterior = vae->encode(load_npy(s.refs / "vae.encode_in.npy"));
  CHECK(report("vae encode mean", posterior.mean, load_npy(s.refs / "vae.encode_mean.npy")) <=
        kVaeAtol);
  CHECK(report("vae encode std", posterior.std, load_npy(s.refs / "vae.encode_std.npy")) <=
        kVaeAtol);
  at::Generator gen = make_cpu_generator(99);
  CHECK(report("vae encode sample seed 99", posterior.sample(gen),
               load_npy(s.refs / "vae.encode_sample_seed99.npy")) <= kVaeAtol);
}
