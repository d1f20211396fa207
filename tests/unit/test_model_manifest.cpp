// Model folder integrity (core/model_manifest.h, `studio models hash|verify`, job pins): the
// manifest is sha256sum's format and lists every file once; verify names what changed, went
// missing or appeared; a job whose pinned digest does not match its model folder fails that
// stage's work items with the reason and makes the others.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/hash.h"
#include "core/json_file.h"
#include "core/model_manifest.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/run_job.h"

using namespace studio;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path make_folder(const std::string& name) {
  const fs::path dir = test::temp_dir(name) / "model";
  test::write_file(dir / "model_index.json", "{\"_class_name\": \"X\"}\n");
  test::write_file(dir / "unet" / "config.json", "{\"a\": 1}\n");
  test::write_file(dir / "unet" / "diffusion_pytorch_model.safetensors", std::string(5000, 'w'));
  test::write_file(dir / ".cache" / "ignored.lock", "lock");
  return dir;
}

}  // namespace

TEST_CASE("models hash lists every file once, sorted, in sha256sum's format", "[manifest]") {
  const fs::path dir = make_folder("manifest_hash");
  const auto entries = hash_model_folder(dir);
  REQUIRE(entries.size() == 3);  // the dot-folder is skipped
  CHECK(entries[0].path == "model_index.json");
  CHECK(entries[1].path == "unet/config.json");
  CHECK(entries[2].path == "unet/diffusion_pytorch_model.safetensors");
  CHECK(entries[2].sha256 == sha256_hex(std::string(5000, 'w')));
  CHECK(entries[2].bytes == 5000);
  const std::string text = manifest_text(entries);
  CHECK(text.find(entries[1].sha256 + "  unet/config.json\n") != std::string::npos);
  CHECK(folder_digest(entries) == sha256_hex(text));

  // The CLI writes DIR/studio.sha256 (never listed in itself) and prints the digest.
  const auto r = test::run_studio("models hash " + test::shell_quote(dir.string()));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("digest " + folder_digest(entries)) != std::string::npos);
  CHECK(test::read_file(dir / kModelManifestName) == text);
  CHECK(hash_model_folder(dir).size() == 3);
  // sha256sum reads it.
  const auto sum = test::run_command("cd " + test::shell_quote(dir.string()) +
                                     " && sha256sum -c --quiet studio.sha256 2>&1");
  INFO(sum.output);
  CHECK(sum.exit_code == 0);
}

TEST_CASE("models verify names changed, missing and extra files", "[manifest]") {
  const fs::path dir = make_folder("manifest_verify");
  REQUIRE(test::run_studio("models hash " + test::shell_quote(dir.string())).exit_code == 0);
  CHECK(verify_model_folder(dir).passed());
  const auto ok = test::run_studio("models verify " + test::shell_quote(dir.string()));
  CHECK(ok.exit_code == 0);
  CHECK(ok.output.find("3 ok, 0 changed, 0 missing, 0 not listed: verified") != std::string::npos);

  test::write_file(dir / "unet" / "diffusion_pytorch_model.safetensors", std::string(5000, 'x'));
  fs::remove(dir / "unet" / "config.json");
  test::write_file(dir / "vae" / "config.json", "{}");
  const ManifestCheck c = verify_model_folder(dir);
  CHECK_FALSE(c.passed());
  CHECK(c.ok == 1);
  CHECK(c.changed == std::vector<std::string>{"unet/diffusion_pytorch_model.safetensors"});
  CHECK(c.missing == std::vector<std::string>{"unet/config.json"});
  CHECK(c.extra == std::vector<std::string>{"vae/config.json"});
  const auto bad = test::run_studio("models verify " + test::shell_quote(dir.string()));
  CHECK(bad.exit_code == 1);
  CHECK(bad.output.find("CHANGED  unet/diffusion_pytorch_model.safetensors") != std::string::npos);
  CHECK(bad.output.find("MISSING  unet/config.json") != std::string::npos);
  CHECK(bad.output.find("EXTRA    vae/config.json") != std::string::npos);

  SECTION("a pinned digest is checked, naming what changed") {
    const std::string old_digest = "0" + std::string(63, 'a');
    try {
      require_folder_digest(dir, old_digest, "models.image_sha256 of job.json");
      FAIL("a changed folder passed");
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      CHECK(m.find("models.image_sha256 of job.json") != std::string::npos);
      CHECK(m.find("not the pinned one") != std::string::npos);
      CHECK(m.find("changed since its manifest: unet/diffusion_pytorch_model.safetensors") !=
            std::string::npos);
      CHECK(m.find(dir.string()) != std::string::npos);
    }
    CHECK_NOTHROW(require_folder_digest(dir, folder_digest(hash_model_folder(dir)), "x"));
    CHECK_THROWS_AS(require_folder_digest(dir, "abc", "x"), ConfigError);
  }
}

TEST_CASE("a malformed manifest is an error naming its line", "[manifest]") {
  const fs::path dir = make_folder("manifest_bad");
  test::write_file(dir / kModelManifestName,
                   "# comment\n" + std::string(64, 'a') + "  model_index.json\nnot a hash  x\n");
  try {
    read_manifest(dir / kModelManifestName);
    FAIL("parsed");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("studio.sha256:3") != std::string::npos);
  }
  CHECK_THROWS_AS(read_manifest(dir / "nope.sha256"), IoError);
}

#ifdef STUDIO_HAVE_IMAGE
TEST_CASE("a job's pinned model digest refuses a changed folder, stage by stage",
          "[manifest][run]") {
  const fs::path dir = test::temp_dir("manifest_job");
  const fs::path job_file = test::write_run_job(dir);
  json job = read_json_file(job_file);
  const fs::path text_dir = job["models"]["text"].get<std::string>();
  job["models"]["text_sha256"] = folder_digest(hash_model_folder(text_dir));  // the right one
  job["models"]["image_sha256"] = std::string(64, 'b');                       // a wrong one
  test::write_file(job_file, job.dump(2));
  const auto r = test::run_command(test::shell_quote(test::studio_exe().string()) + " run " +
                                   test::shell_quote(job_file.string()) + " --progress none 2>&1");
  INFO(r.output);
  CHECK(r.exit_code == 1);  // the visuals failed, the captions were made
  const auto assets = test::run_assets(dir / "out");
  CHECK(assets.size() == 2);
  for (const auto& [path, bytes] : assets) CHECK(path.find("caption") != std::string::npos);
  CHECK(r.output.find("models.image_sha256") != std::string::npos);
  CHECK(r.output.find("not the pinned one") != std::string::npos);

  // Malformed pins are validation errors with their JSON path.
  job["models"]["image_sha256"] = "xyz";
  test::write_file(job_file, job.dump(2));
  const auto plan = test::run_studio("plan " + test::shell_quote(job_file.string()));
  CHECK(plan.exit_code == 1);
  CHECK(plan.output.find("/models/image_sha256") != std::string::npos);
}
#endif
