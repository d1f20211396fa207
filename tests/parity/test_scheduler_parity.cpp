// Scheduler parity with diffusers 0.29.2: the scheduler-only traces of sd-tiny-ref/schedulers
// (every entry of schedulers.json, built from its recorded config and, again, from sd-tiny's config
// through the CLI aliases) and the timesteps recorded by every pipeline fixture case.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "core/scheduler.h"
#include "core/tensor_io.h"
#include "tests/support/fixtures.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path traces_dir() { return studio::test::fixtures_root() / "sd-tiny-ref" / "schedulers"; }

// |a - ref| <= 1e-5 * max|ref| (fixtures README, "scheduler traces").
void check_close(const at::Tensor& a, const at::Tensor& ref, const std::string& what) {
  const double diff = studio::test::max_abs_diff(a, ref);
  const double tol = 1e-5 * studio::test::max_abs(ref);
  INFO(what << ": max |diff| " << diff << ", tolerance " << tol);
  CHECK(diff <= tol);
}

// Runs the documented loop: x = x_start * init_noise_sigma; scaled_inputs[i] =
// scale_model_input(x, t_i); x = step(model_outputs[i], t_i, x). Returns the trajectory.
at::Tensor run_and_compare(studio::Scheduler& s, const json& entry, const fs::path& dir) {
  const at::Tensor x_start = studio::load_npy(dir / "x_start.npy");
  const at::Tensor outputs = studio::load_npy(dir / "model_outputs.npy");
  const at::Tensor trajectory = studio::load_npy(dir / entry.at("trajectory").get<std::string>());
  const at::Tensor scaled = studio::load_npy(dir / entry.at("scaled_inputs").get<std::string>());
  const auto n = s.timesteps().size();
  REQUIRE(outputs.size(0) == static_cast<int64_t>(n));
  REQUIRE(trajectory.size(0) == static_cast<int64_t>(n + 1));
  REQUIRE(scaled.size(0) == static_cast<int64_t>(n));

  std::vector<at::Tensor> states;
  at::Tensor x = x_start * s.init_noise_sigma();
  states.push_back(x);
  check_close(x, trajectory[0], "trajectory[0]");
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<int64_t>(i);
    check_close(s.scale_model_input(x, i), scaled[k], "scaled_inputs[" + std::to_string(i) + "]");
    x = s.step(outputs[k], i, x);
    REQUIRE(x.scalar_type() == at::kFloat);
    check_close(x, trajectory[k + 1], "trajectory[" + std::to_string(i + 1) + "]");
    states.push_back(x);
  }
  return at::stack(states);
}

void check_schedule(const studio::Scheduler& s, const json& entry) {
  const auto& ts = entry.at("timesteps");
  REQUIRE(s.timesteps().size() == ts.size());
  for (std::size_t i = 0; i < ts.size(); ++i) {
    INFO("timestep " << i);
    CHECK(s.timesteps()[i] == ts[i].get<double>());
  }
  if (entry.contains("sigmas")) {
    const auto& sig = entry.at("sigmas");
    REQUIRE(s.sigmas().size() == sig.size());
    for (std::size_t i = 0; i < sig.size(); ++i) {
      INFO("sigma " << i);
      CHECK(s.sigmas()[i] == Approx(sig[i].get<double>()).epsilon(1e-6).margin(1e-12));
    }
  } else {
    CHECK(s.sigmas().empty());
  }
  CHECK(s.init_noise_sigma() == Approx(entry.at("init_noise_sigma").get<double>()).epsilon(1e-6));
}

}  // namespace

TEST_CASE("scheduler traces match diffusers for every schedulers.json entry",
          "[parity][scheduler]") {
  const fs::path dir = traces_dir();
  const json meta = studio::test::read_json(dir / "schedulers.json");
  const int steps = meta.at("num_inference_steps").get<int>();
  const json& entries = meta.at("schedulers");
  REQUIRE(entries.size() >= 4);
  for (const auto& item : entries.items()) {
    const std::string name = item.key();
    const json& entry = item.value();
    DYNAMIC_SECTION(name) {
      const std::string origin = (dir / "schedulers.json").string() + ": /schedulers/" + name;
      auto s = studio::make_scheduler(entry.at("config"), origin);
      CHECK(s->class_name() == entry.at("config").at("_class_name").get<std::string>());
      // Our effective config agrees with diffusers' for every key it recorded.
      for (const auto& kv : entry.at("config").items()) {
        INFO("config key " << kv.key());
        CHECK(s->config().value(kv.key(), json()) == kv.value());
      }
      s->set_timesteps(steps);
      check_schedule(*s, entry);
      const at::Tensor first = run_and_compare(*s, entry, dir);

      // A second run after set_timesteps (multistep history reset) is bit-identical.
      s->set_timesteps(steps);
      const at::Tensor x_start = studio::load_npy(dir / "x_start.npy");
      const at::Tensor outputs = studio::load_npy(dir / "model_outputs.npy");
      at::Tensor x = x_start * s->init_noise_sigma();
      for (std::size_t i = 0; i < s->timesteps().size(); ++i)
        x = s->step(outputs[static_cast<int64_t>(i)], i, x);
      CHECK(studio::test::max_abs_diff(x, first[first.size(0) - 1]) == 0.0);
    }
  }
}

TEST_CASE("CLI aliases on sd-tiny's scheduler config reproduce the traces", "[parity][scheduler]") {
  const fs::path dir = traces_dir();
  const json meta = studio::test::read_json(dir / "schedulers.json");
  const fs::path sd_config = studio::test::fixtures_root() / "sd-tiny" / "scheduler";
  const json base = studio::test::read_json(sd_config / "scheduler_config.json");
  // Each entry was built as <Class>.from_config(sd-tiny/scheduler) (+ dpmsolver++, order 2).
  const std::map<std::string, std::string> alias = {{"DDIMScheduler", "ddim"},
                                                    {"EulerDiscreteScheduler", "euler"},
                                                    {"DPMSolverMultistepScheduler", "dpmpp_2m"},
                                                    {"DDIMInverseScheduler", "ddim_inverse"}};
  int covered = 0;
  for (const auto& item : meta.at("schedulers").items()) {
    const std::string cls = item.value().at("config").at("_class_name").get<std::string>();
    auto it = alias.find(cls);
    if (it == alias.end()) continue;
    ++covered;
    DYNAMIC_SECTION(it->second) {
      auto s =
          studio::make_scheduler(it->second, base, (sd_config / "scheduler_config.json").string());
      CHECK(s->class_name() == cls);
      s->set_timesteps(meta.at("num_inference_steps").get<int>());
      check_schedule(*s, item.value());
      run_and_compare(*s, item.value(), dir);
    }
  }
  CHECK(covered == static_cast<int>(alias.size()));

  // load_scheduler_config reads the folder's scheduler_config.json (a DDIMScheduler).
  auto loaded = studio::load_scheduler_config(sd_config);
  CHECK(loaded->class_name() == "DDIMScheduler");
}

TEST_CASE("timesteps of every pipeline fixture case match diffusers", "[parity][scheduler]") {
  const fs::path root = studio::test::fixtures_root();
  int cases = 0;
  for (const char* folder : {"sd-tiny-ref", "animatediff-tiny-ref"}) {
    if (!fs::is_directory(root / folder)) continue;
    for (const auto& file : fs::directory_iterator(root / folder)) {
      if (file.path().extension() != ".json") continue;
      const json doc = studio::test::read_json(file.path());
      if (!doc.is_object() || !doc.contains("call") || !doc.at("call").is_object()) continue;
      const json& call = doc.at("call");
      // The call itself, and sub-calls (inversion + reconstruction), may carry a scheduler.
      std::vector<std::pair<std::string, const json*>> runs;
      if (call.contains("scheduler_config")) runs.emplace_back("call", &call);
      for (const auto& sub : call.items())
        if (sub.value().is_object() && sub.value().contains("scheduler_config"))
          runs.emplace_back(sub.key(), &sub.value());
      for (const auto& [label, run] : runs) {
        json expected;
        if (run->contains("timesteps"))
          expected = run->at("timesteps");
        else if (doc.contains("timesteps_used") && label != "inversion")
          expected = doc.at("timesteps_used");
        else
          continue;
        ++cases;
        INFO(file.path().filename().string() << " " << label);
        auto s = studio::make_scheduler(run->at("scheduler_config"), file.path().string());
        s->set_timesteps(run->at("num_inference_steps").get<int>());
        std::size_t begin = 0;
        if (run->contains("strength") && run->at("strength").is_number())
          begin = s->begin_index_for_strength(run->at("strength").get<double>());
        std::vector<double> got(s->timesteps().begin() + static_cast<std::ptrdiff_t>(begin),
                                s->timesteps().end());
        REQUIRE(got.size() == expected.size());
        for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == expected[i].get<double>());
      }
    }
  }
  CHECK(cases >= 6);
}
