// `studio bench text` on the CPU with a tiny LLaDA config: the JSON has the baseline and one row
// per batch x cache x tokens-per-step, with sane numbers; bad options are usage errors.
#include <catch2/catch.hpp>

#include <set>
#include <tuple>

#include "core/json_file.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio::test;
namespace fs = std::filesystem;

namespace {

// LLaDA-8B's config.json with tiny sizes, in a folder of its own.
fs::path tiny_config_dir(const std::string& name) {
  nlohmann::json j = studio::read_json_file(source_dir() / "configs" / "llada-8b" / "config.json");
  j["d_model"] = 64;
  j["n_layers"] = 2;
  j["n_heads"] = 4;
  j["n_kv_heads"] = 4;
  j["mlp_hidden_size"] = 96;
  j["vocab_size"] = 300;
  j["embedding_size"] = 320;
  j["mask_token_id"] = 299;
  j["eos_token_id"] = 298;
  j["pad_token_id"] = 298;
  const fs::path dir = temp_dir(name);
  write_file(dir / "config.json", j.dump(2));
  return dir;
}

}  // namespace

TEST_CASE("studio bench text reports every row against the baseline", "[unit][cli][bench]") {
  const fs::path cfg = tiny_config_dir("bench_text");
  const fs::path out = cfg / "bench.json";
  const auto r = run_studio("bench text --device cpu --scale 1 --config " +
                            shell_quote(cfg.string()) +
                            " --gen-length 16 --block-length 8 --tokens-per-step 1,4"
                            " --batch 1,2 --cache none,prefix,dual --prompt-length 8 --json " +
                            shell_quote(out.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("tokens/s") && Catch::Contains("speed-up"));
  const nlohmann::json j = read_json(out);
  CHECK(j["benchmark"] == "text");
  CHECK(j["complete"] == true);
  CHECK(j["device"] == "cpu");
  CHECK(j["dtype"] == "fp32");
  CHECK(j["scale"] == 1);
  CHECK(j["gen_length"] == 16);
  CHECK(j["block_length"] == 8);
  // 2 layers x (4 d^2 + 3 d mlp) + 2 norms per layer, + wte and ff_out (320 x 64) + ln_f.
  CHECK(j["parameters"] == 2 * (4 * 64 * 64 + 3 * 64 * 96 + 2 * 64) + 2 * 320 * 64 + 64);
  CHECK(j["peak_gpu_mib"].is_null());

  // Baseline first, then 2 batches x 3 caches x 2 tokens-per-step without a second baseline.
  const auto& rows = j["rows"];
  REQUIRE(rows.size() == 12);
  CHECK(rows[0]["batch"] == 1);
  CHECK(rows[0]["cache"] == "none");
  CHECK(rows[0]["tokens_per_step"] == 1);
  CHECK(rows[0]["speedup"].get<double>() == Approx(1.0));
  CHECK(j["baseline"] == rows[0]);
  std::set<std::tuple<int64_t, std::string, int64_t>> seen;
  for (const auto& row : rows) {
    INFO(row.dump());
    const int64_t b = row["batch"], k = row["tokens_per_step"];
    const std::string cache = row["cache"];
    seen.emplace(b, cache, k);
    // 2 blocks of 8: 8/k steps each (a cache may add one full call per block).
    const int64_t nfe = row["nfe"];
    CHECK(nfe >= 2 * (8 / k));
    CHECK(nfe <= 2 * (8 / k) + 2);
    const double total = row["total_s"], tps = row["tokens_per_s"];
    CHECK(total > 0);
    CHECK(tps == Approx(double(b * 16) / total).epsilon(1e-6));
    CHECK(row["ms_per_forward"].get<double>() ==
          Approx(1000.0 * total / double(nfe)).epsilon(1e-6));
    const double ttft = row["ttft_ms"], tpot = row["tpot_ms"];
    CHECK(ttft > 0);
    CHECK(ttft <= 1000.0 * total + 1e-6);
    CHECK(tpot >= 0);
    CHECK(row["speedup"].get<double>() ==
          Approx(tps / rows[0]["tokens_per_s"].get<double>()).epsilon(1e-6));
    CHECK(row["peak_gpu_mib"].is_null());
  }
  CHECK(seen.size() == 12);
}

TEST_CASE("studio bench text refuses bad options", "[unit][cli][bench]") {
  const fs::path cfg = tiny_config_dir("bench_text_bad");
  const std::string base = "bench text --device cpu --scale 1 --config " + shell_quote(cfg.string());
  CHECK(run_studio(base + " --gen-length 20 --block-length 8").exit_code == 1);
  CHECK(run_studio(base + " --cache fast").exit_code == 1);
  CHECK(run_studio(base + " --tokens-per-step 0").exit_code == 1);
  const auto missing = run_studio("bench text --device cpu --config " +
                                  shell_quote((cfg / "nope").string()));
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Catch::Contains("config.json"));
}
