// Job files, presets and the plan: every kind of validation error (with its JSON path, all at
// once), input errors on work items, stable work item ids, the shipped presets and `studio plan`.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "pipeline/job_spec.h"
#include "pipeline/plan.h"
#include "pipeline/presets.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

using namespace studio;
using namespace studio::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

PresetLibrary shipped_presets() { return PresetLibrary(source_dir() / "presets"); }

// A small valid job; tests break it in one place at a time.
json base_job() {
  return json::parse(R"({
    "studio_job": 1,
    "name": "spring-launch",
    "models": {"text": "models/text", "image": "models/image"},
    "tier": "draft",
    "defaults": {"channels": ["instagram-square", "product-page"], "make": ["caption", "visual"],
                 "seeds": [0, 1]},
    "variants": [{"name": "A"}, {"name": "B", "prompt_suffix": "autumn leaves",
                                 "caption_instruction": "Mention autumn."}],
    "items": [
      {"id": "MUG-001", "name": "Stoneware mug", "facts": ["350 ml", "dishwasher safe"]},
      {"id": "BOTTLE-002", "name": "Water bottle", "facts": ["750 ml"], "tone": "sporty",
       "channels": ["instagram-story"]}
    ],
    "kpi": {"gpu_price_per_hour": 2.5, "manual_price_per_hour": 45,
            "manual_minutes": {"caption": 15, "visual": 90}}
  })");
}

// Writes `j` as <dir>/job.json with the model folders the job names, so no input error is left
// but the ones a test makes.
fs::path write_job(const fs::path& dir, const json& j) {
  fs::create_directories(dir / "models" / "text");
  fs::create_directories(dir / "models" / "image");
  write_file(dir / "job.json", j.dump(2));
  return dir / "job.json";
}

JobSpec load(const json& j, const std::string& dir_name = "job_spec") {
  return load_job(write_job(temp_dir(dir_name), j), shipped_presets());
}

// The problems of an invalid job (fails the test when the job is valid).
std::vector<Problem> problems_of(const json& j) {
  try {
    load(j, "job_spec_invalid");
  } catch (const ValidationError& e) {
    INFO(e.what());
    CHECK_THAT(e.what(), Catch::Contains("job.json"));  // names the job file
    return e.problems();
  }
  FAIL("the job was accepted");
  return {};
}

std::string lines(const std::vector<Problem>& ps) {
  std::string s;
  for (const auto& p : ps) s += p.path + ": " + p.message + "\n";
  return s;
}

bool has_problem(const std::vector<Problem>& ps, const std::string& path,
                 const std::string& message_part) {
  for (const auto& p : ps)
    if (p.path == path && p.message.find(message_part) != std::string::npos) return true;
  return false;
}

std::map<std::string, std::string> ids_by_key(const Plan& plan) {
  std::map<std::string, std::string> out;
  for (const auto& w : plan.items) out[w.output.generic_string()] = w.id;
  return out;
}

}  // namespace

TEST_CASE("a valid job loads with defaults and resolved presets", "[unit][job]") {
  const JobSpec job = load(base_job());
  CHECK(job.name == "spring-launch");
  CHECK(job.tier == "draft");
  REQUIRE(job.items.size() == 2);
  CHECK(job.items[0].channels == std::vector<std::string>({"instagram-square", "product-page"}));
  CHECK(job.items[0].seeds == std::vector<int64_t>({0, 1}));
  CHECK(job.items[0].language == "en");
  CHECK(job.items[1].channels == std::vector<std::string>({"instagram-story"}));
  CHECK(job.output_dir.filename() == "spring-launch");
  CHECK(job.output_dir.parent_path().filename() == "out");
  CHECK(job.presets.at("instagram-square")["visual"]["steps"] == 12);  // the draft tier
  CHECK(job.presets.at("instagram-square")["caption"]["sampler"] == "fast-dllm");
  CHECK(job.kpi.gpu_price_per_hour == 2.5);
  CHECK(job.kpi.manual_price_per_hour == 45);
  CHECK(job.kpi.manual_minutes.at("visual") == 90);
}

TEST_CASE("job validation names the JSON path of each kind of problem", "[unit][job]") {
  SECTION("unknown key") {
    json j = base_job();
    j["items"][0]["colour"] = "red";
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(has_problem(ps, "/items/0/colour", "unknown key (allowed: id, name, facts"));
  }
  SECTION("wrong type") {
    json j = base_job();
    j["kpi"]["gpu_price_per_hour"] = "two";
    j["items"][0]["facts"] = "350 ml";
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(has_problem(ps, "/kpi/gpu_price_per_hour", "found \"two\", expected a number >= 0"));
    CHECK(has_problem(ps, "/items/0/facts", "expected an array of strings"));
  }
  SECTION("missing required keys") {
    json j = base_job();
    j.erase("name");
    j.erase("studio_job");
    j["items"][1].erase("id");
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(has_problem(ps, "/name", "missing required key"));
    CHECK(has_problem(ps, "/studio_job", "missing required key"));
    CHECK(has_problem(ps, "/items/1/id", "missing required key"));
  }
  SECTION("unsupported version") {
    json j = base_job();
    j["studio_job"] = 2;
    CHECK(has_problem(problems_of(j), "/studio_job", "unsupported version 2"));
  }
  SECTION("duplicate id") {
    json j = base_job();
    j["items"][1]["id"] = "MUG-001";
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(has_problem(ps, "/items/1/id", "duplicate id \"MUG-001\" (first at /items/0/id)"));
  }
  SECTION("unknown preset") {
    json j = base_job();
    j["items"][1]["channels"] = {"instgram-square"};
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(
        has_problem(ps, "/items/1/channels/0", "unknown preset \"instgram-square\" (available: "));
    CHECK(has_problem(ps, "/items/1/channels/0", "instagram-square"));
  }
  SECTION("unknown tier") {
    json j = base_job();
    j["tier"] = "ultra";
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(has_problem(ps, "/tier", "unknown tier \"ultra\" (available: draft, final, standard)"));
  }
  SECTION("bad make kinds") {
    json j = base_job();
    j["items"][0]["make"] = {"caption", "video", "poster"};
    j["items"][1]["make"] = {"edit"};  // an edit without a photo
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(has_problem(ps, "/items/0/make/1", "\"video\" stage is not available in this version"));
    CHECK(has_problem(ps, "/items/0/make/2", "unknown kind \"poster\""));
    CHECK(has_problem(ps, "/items/1/make/0", "\"edit\" needs a \"photo\" (at /items/1/photo)"));
  }
  SECTION("bad edit settings") {
    json j = base_job();
    j["presets"]["instagram-square"] = {{"visual",
                                         {{"edit",
                                           {{"inversion", "magic"},
                                            {"strength", 0},
                                            {"fit", "stretch"},
                                            {"feather", -1},
                                            {"colour", "red"}}}}}};
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(
        has_problem(ps, "/presets/instagram-square/visual/edit/inversion",
                    "found \"magic\", expected one of: ddim, negative-prompt, null-text, direct"));
    CHECK(has_problem(ps, "/presets/instagram-square/visual/edit/strength", "found 0"));
    CHECK(has_problem(ps, "/presets/instagram-square/visual/edit/fit", "found \"stretch\""));
    CHECK(has_problem(ps, "/presets/instagram-square/visual/edit/feather", "found -1"));
    CHECK(has_problem(ps, "/presets/instagram-square/visual/edit/colour", "unknown key"));
  }
  SECTION("missing model for a used stage") {
    json j = base_job();
    j["models"].erase("image");
    CHECK(has_problem(problems_of(j), "/models/image", "an image model folder is needed"));
  }
  SECTION("invalid caption rules through a job override") {
    json j = base_job();
    j["presets"]["instagram-square"] = {{"caption", {{"rules", {{"max_chars", -5}}}}}};
    const auto ps = problems_of(j);
    INFO(lines(ps));
    bool found = false;
    for (const auto& p : ps)
      found =
          found || (p.path + ": " + p.message).find("/presets/instagram-square/caption/rules") !=
                       std::string::npos;
    CHECK(found);
  }
  SECTION("invalid preset override values and an unknown base") {
    json j = base_job();
    j["presets"]["instagram-square"] = {{"visual", {{"width", 1020}, {"size", 3}}}};
    j["presets"]["my-channel"] = {{"base", "no-such-preset"}};
    j["presets"]["other"] = {{"description", "no base"}};
    const auto ps = problems_of(j);
    INFO(lines(ps));
    CHECK(has_problem(ps, "/presets/instagram-square/visual/width", "expected a multiple of 8"));
    CHECK(has_problem(ps, "/presets/instagram-square/visual/size", "unknown key"));
    CHECK(has_problem(ps, "/presets/my-channel/base", "unknown preset \"no-such-preset\""));
    CHECK(has_problem(ps, "/presets/other", "add \"base\" to define a new preset"));
  }
}

TEST_CASE("every problem of a job is reported at once", "[unit][job]") {
  json j = base_job();
  j["items"][0]["colour"] = "red";
  j["items"][1]["id"] = "MUG-001";
  j["items"][1]["channels"] = {"instgram-square", "web-banner"};
  j["kpi"]["gpu_price_per_hour"] = "two";
  j["variants"][1]["name"] = "A";
  j["defaults"]["seeds"] = {0, -1};
  try {
    load(j, "job_spec_many");
    FAIL("the job was accepted");
  } catch (const ValidationError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(e.problems().size() == 6);
    CHECK_THAT(msg, Catch::Contains("invalid job file (6 problems):"));
    CHECK_THAT(msg, Catch::Contains("\n  /items/0/colour: unknown key"));
    CHECK_THAT(msg,
               Catch::Contains("\n  /items/1/id: duplicate id \"MUG-001\" (first at /items/0/id)"));
    CHECK_THAT(msg, Catch::Contains("\n  /items/1/channels/0: unknown preset \"instgram-square\""));
    CHECK_THAT(
        msg, Catch::Contains("\n  /kpi/gpu_price_per_hour: found \"two\", expected a number >= 0"));
    CHECK_THAT(msg,
               Catch::Contains(
                   "\n  /variants/1/name: duplicate variant \"A\" (first at /variants/0/name)"));
    CHECK_THAT(msg,
               Catch::Contains("\n  /defaults/seeds/1: found -1, expected an integer in [0, "));
  }
}

TEST_CASE("a job file with a JSON syntax error names the line", "[unit][job]") {
  const auto dir = temp_dir("job_spec_syntax");
  write_file(dir / "job.json",
             "{\n  \"studio_job\": 1,\n  \"name\": \"x\",,\n  \"items\": []\n}\n");
  try {
    load_job(dir / "job.json", shipped_presets());
    FAIL("the job was accepted");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains("line 3") && Catch::Contains("job.json"));
  }
  CHECK_THROWS_AS(load_job(dir / "missing.json", shipped_presets()), IoError);
}

TEST_CASE("a missing photo or model is an input error of the work items that need it",
          "[unit][job]") {
  json j = base_job();
  j["items"][0]["photo"] = "photos/mug.png";
  j["items"][1]["photo"] = "photos/missing.png";
  const auto dir = temp_dir("job_spec_photo");
  write_file(dir / "photos" / "mug.png", "not really a png, but a file to hash");
  const JobSpec job = load_job(write_job(dir, j), shipped_presets());
  const Plan plan = make_plan(job);
  REQUIRE(!plan.items.empty());
  CHECK(plan.input_errors() > 0);
  for (const auto& w : plan.items) {
    INFO(w.item_id << " " << w.kind << " " << w.input_error);
    if (w.item_id == "BOTTLE-002") {
      CHECK_THAT(w.input_error,
                 Catch::Contains("photo not found") && Catch::Contains("missing.png"));
    } else {
      CHECK(w.input_error.empty());
      CHECK(w.photo_sha256.size() == 64);
    }
  }
  // A missing model folder fails only the kind that uses it.
  fs::remove_all(dir / "models" / "image");
  j["items"][1].erase("photo");
  write_file(dir / "job.json", j.dump());
  const Plan plan2 = make_plan(load_job(dir / "job.json", shipped_presets()));
  for (const auto& w : plan2.items) {
    if (w.kind == "visual")
      CHECK_THAT(w.input_error, Catch::Contains("image model folder not found"));
    else
      CHECK(w.input_error.empty());
  }
}

TEST_CASE("the plan crosses items, channels, kinds, variants and seeds in a fixed order",
          "[unit][job]") {
  const Plan plan = make_plan(load(base_job()));
  // MUG: 2 channels x (caption x 2 variants + visual x 2 variants x 2 seeds) = 12;
  // BOTTLE: 1 channel x (2 + 4) = 6.
  REQUIRE(plan.items.size() == 18);
  CHECK(plan.items[0].item_id == "MUG-001");
  CHECK(plan.items[0].channel == "instagram-square");
  CHECK(plan.items[0].kind == "caption");
  CHECK(plan.items[0].variant == "A");
  CHECK(plan.items[0].output.generic_string() == "MUG-001/instagram-square/caption-A-s0.txt");
  CHECK(plan.items[2].kind == "visual");
  CHECK(plan.items[2].output.generic_string() == "MUG-001/instagram-square/visual-A-s0.png");
  CHECK(plan.items[3].seed == 1);
  CHECK(plan.items[4].variant == "B");
  CHECK_THAT(plan.items[4].prompt, Catch::EndsWith(", autumn leaves"));
  CHECK_THAT(plan.items[4].prompt, Catch::StartsWith("Stoneware mug, 350 ml, dishwasher safe"));
  CHECK_THAT(plan.items[1].instruction, Catch::EndsWith(" Mention autumn."));
  CHECK(plan.items[2].preset["width"] == 1024);
  CHECK(!plan.items[2].preset.contains("seeds"));
  std::set<std::string> ids;
  for (std::size_t i = 0; i < plan.items.size(); ++i) {
    CHECK(plan.items[i].order == i);
    CHECK(plan.items[i].id.size() == 16);
    ids.insert(plan.items[i].id);
  }
  CHECK(ids.size() == plan.items.size());
  const json pj = plan.to_json();
  CHECK(pj["work_items"].size() == 18);
  CHECK(pj["work_items"][0]["input_error"].is_null());
}

TEST_CASE("work item ids are stable and change only for what changed", "[unit][job]") {
  const auto a = ids_by_key(make_plan(load(base_job(), "job_spec_ids_a")));
  CHECK(a == ids_by_key(make_plan(load(base_job(), "job_spec_ids_b"))));  // another folder too

  SECTION("an item's facts") {
    json j = base_job();
    j["items"][1]["facts"] = {"1 litre"};
    const auto b = ids_by_key(make_plan(load(j, "job_spec_ids_c")));
    REQUIRE(a.size() == b.size());
    for (const auto& [key, id] : a) {
      INFO(key);
      if (key.rfind("BOTTLE-002/", 0) == 0)
        CHECK(b.at(key) != id);
      else
        CHECK(b.at(key) == id);
    }
  }
  SECTION("a preset override of the visual section") {
    json j = base_job();
    j["presets"]["product-page"] = {{"visual", {{"guidance", 5.0}}}};
    const auto b = ids_by_key(make_plan(load(j, "job_spec_ids_d")));
    for (const auto& [key, id] : a) {
      INFO(key);
      const bool changed = key.find("/product-page/visual-") != std::string::npos;
      CHECK((b.at(key) != id) == changed);
    }
  }
  SECTION("edit settings change only the edits; visuals do not depend on them") {
    json j = base_job();
    j["items"][0]["photo"] = (test::data_root() / "photos" / "coffee.png").string();
    j["items"][0]["make"] = {"caption", "visual", "edit"};
    const auto with_edit = make_plan(load(j, "job_spec_ids_f0"));
    json k = j;
    k["presets"]["instagram-square"] = {{"visual", {{"edit", {{"strength", 0.5}}}}}};
    const auto changed = make_plan(load(k, "job_spec_ids_f1"));
    REQUIRE(with_edit.items.size() == changed.items.size());
    int edits = 0;
    for (std::size_t i = 0; i < with_edit.items.size(); ++i) {
      const auto& w = with_edit.items[i];
      INFO(w.item_id << "/" << w.channel << "/" << w.kind);
      const bool is_square_edit = w.kind == "edit" && w.channel == "instagram-square";
      CHECK((changed.items[i].id != w.id) == is_square_edit);
      if (w.kind == "edit") {
        ++edits;
        CHECK(w.seed == 0);  // one edit per item, channel and variant
        CHECK(w.source_prompt == "Stoneware mug, product photo");
        CHECK(w.output.filename().string().rfind("edit-", 0) == 0);
        CHECK(w.preset.at("edit").at("inversion") == "negative-prompt");
      } else if (w.kind == "visual") {
        CHECK_FALSE(w.preset.contains("edit"));
      }
    }
    CHECK(edits == 2 * 2);  // MUG-001: 2 channels x 2 variants
  }
  SECTION("the KPI settings and the description change nothing") {
    json j = base_job();
    j["kpi"]["gpu_price_per_hour"] = 4.0;
    j["description"] = "new words";
    CHECK(ids_by_key(make_plan(load(j, "job_spec_ids_e"))) == a);
  }
}

TEST_CASE("every shipped preset loads and validates with every tier", "[unit][job]") {
  const PresetLibrary lib = shipped_presets();
  const auto channels = lib.channel_names();
  CHECK(channels.size() >= 4);
  for (const char* name : {"instagram-square", "instagram-story", "web-banner", "product-page"})
    CHECK(lib.has_channel(name));
  CHECK(lib.tier_names() == std::vector<std::string>({"draft", "final", "standard"}));
  for (const auto& c : channels) {
    for (const std::string tier : {"", "draft", "standard", "final"}) {
      INFO(c << " tier " << tier);
      json p;
      REQUIRE_NOTHROW(p = lib.resolve(c, tier));
      CHECK(p["name"] == c);
      if (p.contains("visual")) {
        CHECK(p["visual"]["width"].get<int>() % 8 == 0);
        CHECK(p["visual"]["height"].get<int>() % 8 == 0);
      }
    }
  }
  CHECK(lib.resolve("instagram-story", "")["visual"]["height"] == 1024);
  CHECK(lib.resolve("instagram-square", "draft")["visual"]["steps"] == 12);
  CHECK(lib.resolve("instagram-square", "final")["caption"]["threshold"].is_null());
  try {
    lib.channel("instgram-square");
    FAIL("unknown preset accepted");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains("available: ") && Catch::Contains("instagram-square"));
  }
}

TEST_CASE("an invalid preset file is reported with its path in the file", "[unit][job]") {
  const auto dir = temp_dir("job_spec_presets");
  copy_tree_writable(source_dir() / "presets", dir / "presets");
  json p = read_json(dir / "presets" / "channels" / "web-banner.json");
  p["visual"]["scheduler"] = "ddim_inverse";
  p["caption"]["steps"] = 33;
  p["caption"]["typo"] = 1;
  write_file(dir / "presets" / "channels" / "web-banner.json", p.dump(2));
  const PresetLibrary lib(dir / "presets");
  try {
    lib.channel("web-banner");
    FAIL("invalid preset accepted");
  } catch (const ValidationError& e) {
    INFO(e.what());
    CHECK_THAT(e.what(), Catch::Contains("web-banner.json"));
    CHECK(has_problem(e.problems(), "/visual/scheduler", "expected one of:"));
    CHECK(has_problem(e.problems(), "/caption/typo", "unknown key"));
  }
  // A job using it reports the preset file's problems too, with everything else.
  json j = base_job();
  j["items"][1]["channels"] = {"web-banner"};
  j["items"][0]["colour"] = "red";
  const auto jdir = temp_dir("job_spec_presets_job");
  try {
    load_job(write_job(jdir, j), lib);
    FAIL("the job was accepted");
  } catch (const ValidationError& e) {
    INFO(e.what());
    CHECK(has_problem(e.problems(), "/items/0/colour", "unknown key"));
    CHECK(has_problem(e.problems(), "/items/1/channels/0", "web-banner.json"));
  }
}

TEST_CASE("studio plan and studio presets", "[unit][job][cli]") {
  const fs::path sample = source_dir() / "samples" / "quickstart" / "job.json";
  auto r = run_studio("plan " + shell_quote(sample.string()));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("MUG-001") && Catch::Contains("instagram-square") &&
                           Catch::Contains("TOTE-003"));

  auto rj = run_studio("plan --json " + shell_quote(sample.string()));
  REQUIRE(rj.exit_code == 0);
  const json pj = json::parse(rj.output);
  CHECK(pj["job"] == "quickstart");
  // 3 items x 2 channels x (caption + visual), and one item x 1 channel x (caption + edit).
  CHECK(pj["work_items"].size() == 14);
  CHECK(pj["work_items"][13]["kind"] == "edit");

  json bad = base_job();
  bad["items"][0]["colour"] = "red";
  bad["tier"] = "ultra";
  const auto dir = temp_dir("job_spec_cli");
  const fs::path job = write_job(dir, bad);
  auto rb = run_studio("plan " + shell_quote(job.string()));
  CHECK(rb.exit_code == 1);
  CHECK_THAT(rb.output, Catch::Contains("/items/0/colour: unknown key") &&
                            Catch::Contains("/tier: unknown tier \"ultra\"") &&
                            Catch::Contains(job.string()));

  auto rl = run_studio("presets list");
  CHECK(rl.exit_code == 0);
  CHECK_THAT(rl.output, Catch::Contains("instagram-story") && Catch::Contains("draft"));
  auto rs = run_studio("presets show web-banner --tier draft");
  REQUIRE(rs.exit_code == 0);
  const json shown = json::parse(rs.output);
  CHECK(shown["visual"]["width"] == 1536);
  CHECK(shown["visual"]["steps"] == 12);
  auto ru = run_studio("presets show nope");
  CHECK(ru.exit_code == 1);
  CHECK_THAT(ru.output, Catch::Contains("available: "));
}
