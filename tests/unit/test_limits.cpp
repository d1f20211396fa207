// Resource limits (core/limits.h, issue #11): STUDIO_LIMIT_* parsing (good, bad, overflow,
// unknown names), the messages, and the limits wired into job files (size, prompt lengths, work
// items), the CLI's prompt options, text generation length and checkpoint memory: each refuses
// with a message naming the file or option and the variable to raise. Image, video and mesh
// limits are in test_limits_media.cpp.
#include <ATen/ATen.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/limits.h"
#include "core/tensor_io.h"
#include "pipeline/job_spec.h"
#include "pipeline/json_check.h"
#include "pipeline/plan.h"
#include "pipeline/presets.h"
#include "tests/support/expect_error.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/run_job.h"
#include "text/llada_model.h"
#include "text/llada_sampler.h"

using namespace studio;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

ConfigError env_error(const std::string& var, const std::string& value) {
  return test::caught<ConfigError>([&] { read_resource_limits({{var, value}}); });
}

PresetLibrary shipped_presets() { return PresetLibrary(test::source_dir() / "presets"); }

// A job of 2 + extra items x (caption + visual) on one channel with one seed and one variant.
fs::path job_with_items(const std::string& name, int extra_items) {
  test::RunJobOptions o;
  o.extra_items = extra_items;
  return test::write_run_job(test::temp_dir(name), o);
}

// Runs `studio ARGS` with environment assignments (VAR=value ...) in front.
test::ProcessResult studio_with_env(const std::string& env, const std::string& args) {
  return test::run_command(env + " " + test::shell_quote(test::studio_exe().string()) + " " + args);
}

// A probe that reports `bytes` available and counts its calls.
struct FakeMemory {
  explicit FakeMemory(uint64_t bytes)
      : previous_(set_memory_probe([this, bytes] {
          ++calls;
          return AvailableMemory{bytes, "a test's fake probe"};
        })) {}
  ~FakeMemory() { set_memory_probe(previous_); }
  int calls = 0;

 private:
  MemoryProbe previous_;
};

}  // namespace

TEST_CASE("limits: defaults, and every variable parsed from the environment", "[unit][limits]") {
  const ResourceLimits defaults = read_resource_limits({});
  CHECK(defaults.image_pixels == 64'000'000);
  CHECK(defaults.video_side == 8192);
  CHECK(defaults.prompt_chars == 8192);
  CHECK(defaults.checkpoint_memory_percent == 90);

  // Each spec has its variable, and a value set through it lands in its member only.
  for (const LimitSpec& spec : limit_specs()) {
    const std::string var = limit_variable(spec);
    CHECK(var.rfind("STUDIO_LIMIT_", 0) == 0);
    const ResourceLimits l = read_resource_limits({{var, "7"}});
    CHECK(l.*(spec.member) == 7);
    for (const LimitSpec& other : limit_specs())
      if (other.member != spec.member) CHECK(l.*(other.member) == defaults.*(other.member));
  }
  CHECK(limit_variable(limit_spec("image_pixels")) == "STUDIO_LIMIT_IMAGE_PIXELS");
  const ResourceLimits big =
      read_resource_limits({{"STUDIO_LIMIT_IMAGE_PIXELS", "100000000"}, {"PATH", "/bin"}});
  CHECK(big.image_pixels == 100'000'000);
  CHECK(read_resource_limits({{"STUDIO_LIMIT_IMAGE_PIXELS", ""}}).image_pixels == 64'000'000);
  CHECK_THROWS_AS(limit_spec("no_such_limit"), UsageError);
}

TEST_CASE("limits: bad values are configuration errors naming the variable", "[unit][limits]") {
  const std::string var = "STUDIO_LIMIT_IMAGE_PIXELS";
  for (const std::string bad : {"abc", "0", "-5", "1.5", " 5", "5 ", "1e9", "0x10", "+5"}) {
    DYNAMIC_SECTION("'" << bad << "'") {
      const ConfigError e = env_error(var, bad);
      CHECK(e.where() == var);
      CHECK_THAT(e.what_failed(),
                 Catch::Contains(var) && Catch::Contains("not a positive integer"));
      CHECK_THAT(e.hint(), Catch::Contains("64000000"));  // says the default
    }
  }
  // Overflow: past int64, and past the limit's own maximum.
  for (const std::string huge : {"9223372036854775808", "99999999999999999999999"}) {
    const ConfigError e = env_error(var, huge);
    CHECK_THAT(e.what_failed(), Catch::Contains("too large"));
  }
  // The largest accepted value (2^50 for counts), and one more.
  CHECK(read_resource_limits({{var, "1125899906842624"}}).image_pixels == int64_t{1} << 50);
  CHECK_THAT(env_error(var, "1125899906842625").what_failed(), Catch::Contains("largest accepted"));
  const ConfigError side = env_error("STUDIO_LIMIT_VIDEO_SIDE", "70000");
  CHECK_THAT(side.what_failed(), Catch::Contains("65536"));
  // A misspelt name is not silently ignored.
  const ConfigError typo = env_error("STUDIO_LIMIT_IMAGE_PIXEL", "5");
  CHECK(typo.where() == "STUDIO_LIMIT_IMAGE_PIXEL");
  CHECK_THAT(typo.hint(), Catch::Contains("STUDIO_LIMIT_IMAGE_PIXELS"));
}

TEST_CASE("limits: messages name the value, the limit, the variable and the file",
          "[unit][limits]") {
  const UsageError e = test::caught<UsageError>([] {
    check_limit<UsageError>("image_pixels", 400'000'000, 64'000'000,
                            "the image is 20000x20000 =", "photo.png", "downscale it");
  });
  CHECK(e.what_failed() ==
        "the image is 20000x20000 = 400 Mpx, over the limit of 64 Mpx (STUDIO_LIMIT_IMAGE_PIXELS)");
  CHECK(e.where() == "photo.png");
  CHECK_THAT(e.hint(), Catch::StartsWith("downscale it, or raise") &&
                           Catch::Contains("STUDIO_LIMIT_IMAGE_PIXELS"));
  CHECK_NOTHROW(check_limit<UsageError>("image_pixels", 64'000'000, 64'000'000, "", "x"));
  CHECK(format_limit_value(limit_spec("job_file_bytes"), int64_t{16} << 20) == "16 MiB");
  CHECK(format_limit_value(limit_spec("job_file_bytes"), 1536) == "1.5 KiB (1536 bytes)");
  CHECK(format_limit_value(limit_spec("job_file_bytes"), 1000) == "1000 bytes");
  CHECK(format_limit_value(limit_spec("image_pixels"), 262144) == "262144 px");
  CHECK(format_limit_value(limit_spec("prompt_chars"), 12) == "12 characters");
  CHECK(utf8_chars("h\xC3\xA9llo \xE2\x82\xAC") == 7);  // "héllo €"
}

TEST_CASE("limits: the process's limits can be replaced and put back", "[unit][limits]") {
  const ResourceLimits before = resource_limits();
  {
    ResourceLimits small = before;
    small.prompt_chars = 3;
    ScopedResourceLimits scope(small);
    CHECK(resource_limits().prompt_chars == 3);
    CHECK_NOTHROW(check_prompt_chars("abc", "--prompt"));
    CHECK_NOTHROW(check_prompt_chars("\xC3\xA9\xC3\xA9\xC3\xA9", "--prompt"));  // 3 chars, 6 bytes
    const UsageError e = test::caught<UsageError>([] { check_prompt_chars("abcd", "--prompt"); });
    CHECK(e.where() == "--prompt");
    CHECK_THAT(e.what_failed(), Catch::Contains("4 characters") &&
                                    Catch::Contains("3 characters") &&
                                    Catch::Contains("STUDIO_LIMIT_PROMPT_CHARS"));
  }
  CHECK(resource_limits().prompt_chars == before.prompt_chars);
}

TEST_CASE("limits: job files: size, prompt lengths and work items", "[unit][limits]") {
  const PresetLibrary presets = shipped_presets();
  const fs::path job = job_with_items("limits_job", 2);  // 4 items x (caption + visual) = 8
  REQUIRE(make_plan(load_job(job, presets)).items.size() == 8);
  ResourceLimits l = resource_limits();

  SECTION("the job file's size") {
    l.job_file_bytes = static_cast<int64_t>(fs::file_size(job)) - 1;
    ScopedResourceLimits scope(l);
    const ConfigError e = test::caught<ConfigError>([&] { load_job(job, presets); });
    CHECK(e.where() == job.string());
    CHECK_THAT(e.what_failed(), Catch::Contains("STUDIO_LIMIT_JOB_FILE_BYTES"));
    l.job_file_bytes += 1;
    ScopedResourceLimits exact(l);
    CHECK_NOTHROW(load_job(job, presets));
  }
  SECTION("work items, counted before the plan is built") {
    l.job_items = 7;
    ScopedResourceLimits scope(l);
    const JobSpec spec = load_job(job, presets);
    const ConfigError e = test::caught<ConfigError>([&] { make_plan(spec); });
    CHECK(e.where() == job.string());
    CHECK_THAT(e.what_failed(), Catch::Contains("8 work items") &&
                                    Catch::Contains("7 work items") &&
                                    Catch::Contains("STUDIO_LIMIT_JOB_ITEMS"));
    l.job_items = 8;
    ScopedResourceLimits exact(l);
    CHECK(make_plan(spec).items.size() == 8);
  }
  SECTION("prompts, facts and instructions, each problem at its JSON path") {
    json j = read_json_file(job);
    j["items"][1]["prompt"] = std::string(40, 'p');
    j["items"][0]["facts"] = {"short", std::string(30, 'f')};
    j["presets"]["web-banner"]["visual"]["negative_prompt"] = std::string(50, 'n');
    test::write_file(job, j.dump(2));
    CHECK_NOTHROW(load_job(job, presets));  // the defaults take them
    l.prompt_chars = 20;
    ScopedResourceLimits scope(l);
    const ValidationError e = test::caught<ValidationError>([&] { load_job(job, presets); });
    std::map<std::string, std::string> by_path;
    for (const auto& p : e.problems()) by_path[p.path] = p.message;
    REQUIRE(by_path.count("/items/1/prompt"));
    CHECK_THAT(by_path["/items/1/prompt"],
               Catch::Contains("40 characters") && Catch::Contains("STUDIO_LIMIT_PROMPT_CHARS"));
    CHECK(by_path.count("/items/0/facts/1"));
    CHECK(!by_path.count("/items/0/facts/0"));
    CHECK(by_path.count("/presets/web-banner/visual/negative_prompt"));
    CHECK(e.where() == job.string());
  }
}

TEST_CASE("limits: STUDIO_LIMIT_* in the environment of the studio command", "[unit][limits]") {
  const fs::path job = job_with_items("limits_cli", 2);
  const std::string q = test::shell_quote(job.string());

  const auto ok = studio_with_env("STUDIO_LIMIT_JOB_ITEMS=8", "plan " + q);
  CHECK(ok.exit_code == 0);
  const auto items = studio_with_env("STUDIO_LIMIT_JOB_ITEMS=1", "plan " + q);
  CHECK(items.exit_code == 1);
  CHECK_THAT(items.output, Catch::Contains(job.string()) && Catch::Contains("8 work items") &&
                               Catch::Contains("STUDIO_LIMIT_JOB_ITEMS"));

  const auto bad = studio_with_env("STUDIO_LIMIT_IMAGE_PIXELS=lots", "plan " + q);
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains("configuration error") &&
                             Catch::Contains("STUDIO_LIMIT_IMAGE_PIXELS") &&
                             Catch::Contains("\"lots\""));

  // Prompt options of any command, refused before the model is looked at (there is none here).
  const std::string no_model = test::shell_quote((test::temp_dir("limits_cli") / "none").string());
  const auto prompt = studio_with_env("STUDIO_LIMIT_PROMPT_CHARS=10",
                                      "text --model " + no_model + " --prompt 'eleven chars'");
  CHECK(prompt.exit_code == 1);
  CHECK_THAT(prompt.output, Catch::Contains("--prompt") && Catch::Contains("12 characters") &&
                                Catch::Contains("STUDIO_LIMIT_PROMPT_CHARS"));
  CHECK_THAT(prompt.output, !Catch::Contains("loading"));
  const auto short_prompt = studio_with_env(
      "STUDIO_LIMIT_PROMPT_CHARS=12", "text --model " + no_model + " --prompt 'eleven chars'");
  CHECK_THAT(short_prompt.output, !Catch::Contains("STUDIO_LIMIT_PROMPT_CHARS"));
  const auto edit = studio_with_env(
      "STUDIO_LIMIT_PROMPT_CHARS=5",
      "text edit --model " + no_model + " --text 'some text' --span 0:4 --instruction warm");
  CHECK(edit.exit_code == 1);
  CHECK_THAT(edit.output, Catch::Contains("--text:") && Catch::Contains("9 characters"));

  // A field of a `studio copy` brief.
  const fs::path brief = test::temp_dir("limits_cli_brief") / "brief.json";
  test::write_file(brief, json{{"product", "Mug"}, {"facts", {"ok", std::string(30, 'x')}}}.dump());
  const auto copy =
      studio_with_env("STUDIO_LIMIT_PROMPT_CHARS=20", "copy --model " + no_model + " --brief " +
                                                          test::shell_quote(brief.string()) +
                                                          " --preset instagram-square");
  CHECK(copy.exit_code == 1);
  CHECK_THAT(copy.output, Catch::Contains(brief.string() + ": facts") &&
                              Catch::Contains("30 characters") && !Catch::Contains("loading"));

  const auto gen = studio_with_env("STUDIO_LIMIT_GEN_TOKENS=8",
                                   "text --model " + no_model + " --prompt hi --gen-length 16");
  CHECK(gen.exit_code == 1);
  CHECK_THAT(gen.output, Catch::Contains("--gen-length") && Catch::Contains("16 tokens") &&
                             Catch::Contains("STUDIO_LIMIT_GEN_TOKENS"));
}

TEST_CASE("limits: generation length in the LLaDA sampler, the model's maximum checked too",
          "[unit][limits]") {
  json j = read_json_file(test::source_dir() / "configs" / "llada-8b" / "config.json");
  j["d_model"] = 32;
  j["n_layers"] = 2;
  j["n_heads"] = 4;
  j["n_kv_heads"] = 2;
  j["mlp_hidden_size"] = 64;
  j["vocab_size"] = 100;
  j["embedding_size"] = 104;
  j["mask_token_id"] = 99;
  j["eos_token_id"] = 98;
  j["pad_token_id"] = 98;
  j["max_sequence_length"] = 64;
  LLaDAModelLM model(LLaDAConfig::from_json(j, "tiny"));
  model->eval();
  int forwards = 0;
  LLaDASamplerOptions o;
  o.gen_length = 16;
  o.block_length = 16;
  o.steps = 16;
  o.on_forward = [&](const LLaDAForwardCall&) { ++forwards; };
  ResourceLimits l = resource_limits();
  l.gen_tokens = 8;
  ScopedResourceLimits scope(l);
  const std::vector<std::vector<int64_t>> prompt = {{5, 6, 7}};
  const UsageError e = test::caught<UsageError>([&] { llada_generate(model, prompt, o); });
  CHECK_THAT(e.what_failed(), Catch::Contains("16 tokens") && Catch::Contains("8 tokens") &&
                                  Catch::Contains("STUDIO_LIMIT_GEN_TOKENS"));
  CHECK(forwards == 0);
  // Under the studio limit but over the model's max_sequence_length: still refused.
  o.gen_length = o.block_length = o.steps = 8;
  const std::vector<std::vector<int64_t>> long_prompt = {std::vector<int64_t>(60, 7)};
  const UsageError seq = test::caught<UsageError>([&] { llada_generate(model, long_prompt, o); });
  CHECK_THAT(seq.what_failed(), Catch::Contains("max_sequence_length"));
  CHECK(forwards == 0);
}

TEST_CASE("limits: checkpoint memory is checked before the module is built", "[unit][limits]") {
  // What loading materialises: float32 for every floating tensor, plus one converted copy.
  const fs::path dir = test::temp_dir("limits_ckpt");
  save_safetensors(dir / "half.safetensors", {{"a", at::zeros({10, 10}, at::kHalf)},
                                              {"b", at::zeros({4}, at::kHalf)},
                                              {"i", at::zeros({3}, at::kLong)}});
  const StateDict half = StateDict::open({dir / "half.safetensors"});
  CHECK(materialised_bytes(half) == 100 * 4 + 4 * 4 + 3 * 8 + 100 * 4);
  save_safetensors(dir / "full.safetensors", {{"a", at::zeros({10, 10})}});
  CHECK(materialised_bytes(StateDict::open({dir / "full.safetensors"})) == 400);

  // The check itself: percent of what the probe reports.
  {
    FakeMemory mem(1000);
    CHECK_NOTHROW(check_checkpoint_memory(900, "ckpt"));
    const WeightsError e = test::caught<WeightsError>([] { check_checkpoint_memory(901, "ckpt"); });
    CHECK(e.where() == "ckpt");
    CHECK_THAT(e.what_failed(), Catch::Contains("901 bytes") && Catch::Contains("1000 bytes") &&
                                    Catch::Contains("90%") &&
                                    Catch::Contains("STUDIO_LIMIT_CHECKPOINT_MEMORY_PERCENT"));
    ResourceLimits l = resource_limits();
    l.checkpoint_memory_percent = 100;
    ScopedResourceLimits scope(l);
    CHECK_NOTHROW(check_checkpoint_memory(1000, "ckpt"));
  }
  // The real probe finds some memory on any machine that runs this test.
  const AvailableMemory real = available_memory();
  CHECK(real.bytes > (uint64_t{16} << 20));
  CHECK(!real.source.empty());

  // A real model folder: llada-tiny refused under a 64 KiB machine, loaded with the real one.
  const fs::path folder = test::fixtures_root() / "llada-tiny";
  const CheckpointInfo info = inspect_checkpoint(folder);
  REQUIRE(info.components.size() == 1);
  {
    FakeMemory mem(64 << 10);
    const WeightsError e = test::caught<WeightsError>([&] { load_llada(info.components[0]); });
    CHECK(mem.calls == 1);
    CHECK_THAT(e.where(), Catch::Contains("llada-tiny"));
    CHECK_THAT(e.what_failed(), Catch::Contains("STUDIO_LIMIT_CHECKPOINT_MEMORY_PERCENT") &&
                                    Catch::Contains("refused before allocating"));
  }
  CHECK_NOTHROW(load_llada(info.components[0]));
}
