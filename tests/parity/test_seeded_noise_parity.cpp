// The initial noise for a seed is bit-identical to the reference pipelines' (fresh CPU generator
// seeded N, randn of the full latent shape, times init_noise_sigma). Data-driven: every pipeline
// case under $STUDIO_FIXTURES with a seed, an init_latents file and no init image.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "core/random.h"
#include "core/tensor_io.h"
#include "tests/support/fixtures.h"

using namespace studio;
namespace fs = std::filesystem;

TEST_CASE("seeded initial noise equals the reference pipelines'", "[parity][noise]") {
  const fs::path root = test::fixtures_root();
  int cases = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().extension() != ".json") continue;
    nlohmann::json j;
    try {
      j = test::read_json(e.path());
    } catch (const nlohmann::json::exception&) {
      continue;
    }
    if (!j.is_object() || !j.contains("call") || !j["call"].is_object()) continue;
    const auto& call = j["call"];
    if (!call.contains("seed") || !call["seed"].is_number_integer() || call.contains("image") ||
        !j.contains("files") || !j["files"].contains("init_latents"))
      continue;
    ++cases;
    DYNAMIC_SECTION(e.path().filename().string()) {
      const at::Tensor ref = load_npy(e.path().parent_path() /
                                      j["files"]["init_latents"].get<std::string>());
      const double sigma = j.value("init_noise_sigma", 1.0);
      const at::Tensor mine =
          seeded_randn(ref.sizes(), call["seed"].get<uint64_t>()) * sigma;
      CHECK(test::max_abs_diff(mine, ref) <= 1e-6);
    }
  }
  CHECK(cases >= 1);
}
