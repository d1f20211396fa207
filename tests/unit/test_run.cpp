// `studio run` end to end on tiny models (llada-tiny + the starter tokenizer, sd-tiny): assets,
// sidecars, journal, ledger and report; resume after SIGKILL at several points gives the same
// assets as an uninterrupted run; 3 shards give what one run gives; one failing item never stops
// the others.
#include <catch2/catch.hpp>

#include <cstdio>
#include <map>
#include <set>

#include "core/json_file.h"
#ifdef STUDIO_HAVE_IMAGE
#include "image/image_io.h"
#endif
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/run_job.h"

using namespace studio;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path write_job(const fs::path& dir, const std::string& output, bool missing_photo = false,
                   int extra_items = 0) {
  test::RunJobOptions o;
  o.output = output;
  o.missing_photo = missing_photo;
  o.extra_items = extra_items;
  return test::write_run_job(dir, o);
}

std::map<std::string, std::string> assets(const fs::path& out) { return test::run_assets(out); }
std::vector<json> journal_lines(const fs::path& out) { return test::run_journal_lines(out); }

test::ProcessResult studio_run(const fs::path& job, const std::string& extra = "",
                               const std::string& env = "") {
  return test::run_command(env + " " + test::shell_quote(test::studio_exe().string()) + " run " +
                           test::shell_quote(job.string()) + " --progress none " + extra + " 2>&1");
}

}  // namespace

TEST_CASE("studio run makes every asset with sidecar, journal, ledger and report", "[run]") {
  const fs::path dir = test::temp_dir("run_basic");
  const fs::path job = write_job(dir, "out");
  const auto r = studio_run(job);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const fs::path out = dir / "out";
  const auto a = assets(out);
  CHECK(a.size() == 4);
  for (const auto& [path, bytes] : a) {
    CHECK_FALSE(bytes.empty());
    const json side = read_json_file(out / (path + ".json"));
    CHECK(side.contains("work_item"));
    CHECK(side["output"]["bytes"] == bytes.size());
    CHECK(side["job"]["name"] == "runtest");
  }
  const auto lines = journal_lines(out);
  CHECK(lines.size() == 4);
  for (const auto& l : lines) CHECK(l["status"] == "done");
  CHECK(fs::exists(out / "run.json"));
  CHECK(fs::exists(out / "ledger" / "0-of-1.jsonl"));

  const auto rep = test::run_studio("kpi report " + test::shell_quote(out.string()));
  INFO(rep.output);
  CHECK(rep.exit_code == 0);
  CHECK(fs::exists(out / "report.html"));

  SECTION("running again needs --resume, which makes nothing twice") {
    const auto again = studio_run(job);
    CHECK(again.exit_code == 1);
    CHECK(again.output.find("--resume") != std::string::npos);
    const auto resumed = studio_run(job, "--resume");
    INFO(resumed.output);
    CHECK(resumed.exit_code == 0);
    CHECK(journal_lines(out).size() == 4);
    CHECK(assets(out) == a);
  }
  SECTION("an altered asset is made again on resume") {
    const std::string victim = a.begin()->first;
    test::write_file(out / victim, "tampered");
    const auto resumed = studio_run(job, "--resume");
    INFO(resumed.output);
    CHECK(resumed.exit_code == 0);
    CHECK(assets(out) == a);
    CHECK(journal_lines(out).size() == 5);
  }
}

TEST_CASE("studio run: SIGKILL at several points, then --resume, equals an uninterrupted run",
          "[run][slow]") {
  const fs::path ref_dir = test::temp_dir("run_ref");
  REQUIRE(studio_run(write_job(ref_dir, "out")).exit_code == 0);
  const auto reference = assets(ref_dir / "out");
  REQUIRE(reference.size() == 4);
  for (const std::string point : {"write:1", "journal:1", "write:3", "journal:3", "journal:4"}) {
    const fs::path dir = test::temp_dir("run_kill_" + point.substr(0, point.find(':')) +
                                        point.substr(point.find(':') + 1));
    const fs::path job = write_job(dir, "out");
    const auto killed = studio_run(job, "", "STUDIO_TEST_KILL=" + point);
    INFO(point << ": " << killed.output);
    CHECK(killed.exit_code != 0);
    const auto resumed = studio_run(job, "--resume");
    INFO(resumed.output);
    CHECK(resumed.exit_code == 0);
    CHECK(assets(dir / "out") == reference);
    // Every work item is done exactly once in the journal.
    std::map<std::string, int> done;
    for (const auto& l : journal_lines(dir / "out"))
      if (l["status"] == "done") ++done[l["work_id"].get<std::string>()];
    CHECK(done.size() == 4);
    for (const auto& [id, n] : done) CHECK(n == 1);
  }
}

TEST_CASE("studio run: 3 shards make what one run makes, and merge to the same KPIs",
          "[run][slow]") {
  const fs::path one = test::temp_dir("run_unsharded");
  REQUIRE(studio_run(write_job(one, "out")).exit_code == 0);
  const fs::path three = test::temp_dir("run_sharded");
  const fs::path job = write_job(three, "out");
  for (int i = 0; i < 3; ++i) {
    const auto r = studio_run(job, "--shard " + std::to_string(i) + "/3");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  CHECK(assets(three / "out") == assets(one / "out"));
  const auto merged = test::run_studio("kpi merge " + test::shell_quote((three / "out").string()) +
                                       " --out " + test::shell_quote((three / "merged").string()));
  INFO(merged.output);
  REQUIRE(merged.exit_code == 0);
  const auto a = test::run_studio("kpi report " + test::shell_quote((three / "merged").string()) +
                                  " --json " + test::shell_quote((three / "m.json").string()));
  const auto b = test::run_studio("kpi report " + test::shell_quote((one / "out").string()) +
                                  " --json " + test::shell_quote((one / "s.json").string()));
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  const json ma = read_json_file(three / "m.json"), sb = read_json_file(one / "s.json");
  CHECK(ma["assets"] == sb["assets"]);
  CHECK(ma["assets"] == 4);
}

TEST_CASE("studio run: an item with a missing input fails alone", "[run]") {
  const fs::path dir = test::temp_dir("run_missing");
  const auto r = studio_run(write_job(dir, "out", true));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(assets(dir / "out").size() == 4);
  int failed = 0;
  for (const auto& l : journal_lines(dir / "out")) {
    if (l["status"] != "failed") continue;
    ++failed;
    CHECK(l["item"] == "LAMP-003");
    CHECK(l["stage"] == "decode");
    CHECK(l["error"].get<std::string>().find("no-such-photo.png") != std::string::npos);
  }
  CHECK(failed == 2);
}

TEST_CASE("studio run: SIGTERM stops intake, finishes in-flight items, exits 75, resumes",
          "[run][slow]") {
  const fs::path dir = test::temp_dir("run_sigterm");
  const fs::path job = write_job(dir, "out", false, 6);  // 8 items x 2 kinds = 16 work items
  const fs::path journal = dir / "out" / "journal" / "0-of-1.jsonl";
  // Start the run, wait for its first journal line, then SIGTERM it.
  const std::string script =
      test::shell_quote(test::studio_exe().string()) + " run " + test::shell_quote(job.string()) +
      " --progress none --max-in-flight 2 > " + test::shell_quote((dir / "log.txt").string()) +
      " 2>&1 & pid=$!; while [ ! -s " + test::shell_quote(journal.string()) +
      " ]; do sleep 0.05; done; kill -TERM $pid; wait $pid; echo rc=$?";
  const auto r = test::run_command(script);
  const std::string log = test::read_file(dir / "log.txt");
  INFO(r.output << log);
  CHECK(r.output.find("rc=75") != std::string::npos);
  CHECK(log.find("interrupted") != std::string::npos);
  const size_t made = journal_lines(dir / "out").size();
  CHECK(made >= 1);
  CHECK(made < 16);
  const auto resumed = studio_run(job, "--resume");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK(journal_lines(dir / "out").size() == 16);
  CHECK(assets(dir / "out").size() == 16);
}

#ifdef STUDIO_HAVE_IMAGE
TEST_CASE("studio run edits product photos with the job's mask and channel, resumable after a kill",
          "[run][edit]") {
  const fs::path dir = test::temp_dir("run_edit");
  const fs::path photo = test::data_root() / "photos" / "coffee.png";
  // A user mask: the middle of the photo is the product.
  const image::Image img = image::read_image(photo);
  at::Tensor m = at::zeros({img.height, img.width, 1});
  m.narrow(0, img.height / 4, img.height / 2).narrow(1, img.width / 3, img.width / 3).fill_(1);
  image::write_image(dir / "mask.png", m, {});
  const json job = {
      {"studio_job", 1},
      {"name", "edittest"},
      {"output", "out"},
      {"models", {{"image", (test::fixtures_root() / "sd-tiny").string()}}},
      {"tier", "draft"},
      {"presets",
       {{"web-banner",
         {{"visual",
           {{"width", 96}, {"height", 64}, {"steps", 3}, {"edit", {{"fit", "crop"}}}}}}}}},
      {"defaults", {{"channels", {"web-banner"}}, {"make", {"edit"}}, {"seeds", {0}}}},
      {"items",
       {{{"id", "CUP-1"},
         {"name", "Espresso cup"},
         {"photo", photo.string()},
         {"mask", (dir / "mask.png").string()},
         {"source_prompt", "an espresso cup"},
         {"prompt", "an espresso cup on snow"}},
        {{"id", "CUP-2"},
         {"name", "Espresso cup"},
         {"photo", photo.string()},
         {"prompt", "an espresso cup on a beach"}}}}};
  const fs::path file = dir / "job.json";
  test::write_file(file, job.dump(2));

  const auto r = studio_run(file);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto reference = assets(dir / "out");
  REQUIRE(reference.size() == 2);
  const json side =
      read_json_file(dir / "out" / "CUP-1" / "web-banner" / "edit-default-s0.png.json");
  CHECK(side["edit"]["inversion"] == "negative-prompt");
  CHECK(side["edit"]["source_prompt"] == "an espresso cup");
  CHECK(side["edit"]["channel"]["fit"] == "crop");
  CHECK(side["edit"]["mask"]["source"].get<std::string>().find("mask.png") != std::string::npos);
  const image::Image out =
      image::read_image(dir / "out" / "CUP-1" / "web-banner" / "edit-default-s0.png");
  CHECK(out.width == 96);
  CHECK(out.height == 64);
  CHECK(out.metadata.parameters.find("Inversion: negative-prompt") != std::string::npos);
  // Review previews: the photo and the product mask fitted as the asset was, outside the assets.
  REQUIRE(side.contains("previews"));
  CHECK(side["previews"]["before"] == "previews/CUP-1/web-banner/edit-default-s0.before.png");
  CHECK(side["previews"]["mask"] == "previews/CUP-1/web-banner/edit-default-s0.mask.png");
  for (const char* k : {"before", "mask"}) {
    const image::Image p = image::read_image(dir / "out" / side["previews"][k].get<std::string>());
    CHECK(p.width == 96);
    CHECK(p.height == 64);
  }
  const image::Image mask_preview =
      image::read_image(dir / "out" / side["previews"]["mask"].get<std::string>());
  CHECK(mask_preview.pixels.max().item<float>() == 1.0f);  // the product is in the window
  CHECK(mask_preview.pixels.min().item<float>() == 0.0f);

  // Killed after the first asset is written, resumed: the same bytes.
  const fs::path dir2 = test::temp_dir("run_edit_kill");
  test::write_file(dir2 / "job.json", job.dump(2));
  const auto killed = studio_run(dir2 / "job.json", "", "STUDIO_TEST_KILL=write:1");
  CHECK(killed.exit_code != 0);
  const auto resumed = studio_run(dir2 / "job.json", "--resume");
  INFO(resumed.output);
  CHECK(resumed.exit_code == 0);
  CHECK(assets(dir2 / "out") == reference);
}
#endif  // STUDIO_HAVE_IMAGE

#ifdef STUDIO_HAVE_IMAGE
namespace {

// Largest pixel difference (0..1) between two PNG files of the same size.
double png_max_diff(const fs::path& a, const fs::path& b) {
  const image::Image ia = image::read_image(a), ib = image::read_image(b);
  REQUIRE(ia.pixels.sizes() == ib.pixels.sizes());
  return (ia.pixels - ib.pixels).abs().max().item<double>();
}

// Journal: work id -> how many "done" lines.
std::map<std::string, int> done_counts(const fs::path& out) {
  std::map<std::string, int> done;
  for (const auto& l : journal_lines(out))
    if (l["status"] == "done") ++done[l["work_id"].get<std::string>()];
  return done;
}

}  // namespace

TEST_CASE("studio run --image-batch makes the assets batch 1 makes, each recorded once",
          "[run][image_batch]") {
  const fs::path one = test::temp_dir("run_batch1");
  const auto r1 = studio_run(write_job(one, "out", false, 4));  // 6 items x 2 kinds
  INFO(r1.output);
  REQUIRE(r1.exit_code == 0);
  const auto ref = assets(one / "out");
  REQUIRE(ref.size() == 12);

  // The mixed job, and a visuals-only one: without the text stage between them the visuals wait
  // for the image stage together (the first one loads the model), so batches form.
  for (const bool visuals_only : {false, true}) {
    const fs::path dir = test::temp_dir(visuals_only ? "run_batch4_visuals" : "run_batch4");
    const fs::path job = write_job(dir, "out", false, 4);
    if (visuals_only) {
      json j = read_json_file(job);
      j["defaults"]["make"] = json::array({"visual"});
      test::write_file(job, j.dump(2));
    }
    const auto r = studio_run(job, "--image-batch 4 --max-in-flight 8");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const fs::path out = dir / "out";
    const auto got = assets(out);
    CHECK(got.size() == (visuals_only ? 6u : 12u));
    const auto done = done_counts(out);
    CHECK(done.size() == got.size());
    for (const auto& [id, n] : done) CHECK(n == 1);
    CHECK(journal_lines(out).size() == got.size());
    int64_t largest = 0;
    double worst = 0;
    for (const auto& [path, bytes] : got) {
      INFO(path);
      REQUIRE(ref.count(path) == 1);
      if (fs::path(path).extension() == ".txt") {
        CHECK(bytes == ref.at(path));
        continue;
      }
      const json side = read_json_file(out / (path + ".json"));
      const int64_t batch = side["image"]["batch"].get<int64_t>();
      CHECK(batch >= 1);
      CHECK(batch <= 4);
      largest = std::max(largest, batch);
      CHECK(side["image"]["unet_calls"] == side["image"]["timesteps"].size());
      worst = std::max(worst, png_max_diff(out / path, one / "out" / path));
    }
    std::printf(
        "studio run --image-batch 4 (%s): largest batch %lld, max pixel diff vs batch 1 "
        "%.4f\n",
        visuals_only ? "visuals only" : "mixed", static_cast<long long>(largest), worst);
    CHECK(worst <= 2.0 / 255 + 1e-6);  // 8-bit rounding of values ~1e-6 apart
    if (visuals_only) CHECK(largest > 1);
    // The ledger: one done image event per visual, with one image and the batch's share of time.
    std::string ledger = test::read_file(out / "ledger" / "0-of-1.jsonl");
    int image_events = 0;
    size_t at = 0;
    while (at < ledger.size()) {
      const size_t nl = ledger.find('\n', at);
      if (nl == std::string::npos) break;
      const json e = json::parse(ledger.substr(at, nl - at));
      at = nl + 1;
      if (e.value("type", "") != "stage" || e["stage"] != "image") continue;
      ++image_events;
      CHECK(e["status"] == "ok");
      CHECK(e["images"] == 1);
      CHECK(e["nfe"].get<int64_t>() > 0);
      CHECK(e["nfe"] == e["steps"]);  // one CFG-batched UNet call per step, as a single run
      CHECK(e["compute_s"].get<double>() >= 0);
    }
    CHECK(image_events == 6);
  }
}
#endif  // STUDIO_HAVE_IMAGE
