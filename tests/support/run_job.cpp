#include "tests/support/run_job.h"

#include "tests/support/fixtures.h"
#include "tests/support/text_model_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace studio::test {

fs::path write_run_job(const fs::path& dir, const RunJobOptions& o) {
  static const fs::path text_model = make_text_model_dir("run_models");
  json items = json::array({{{"id", "MUG-001"}, {"name", "Stoneware mug"}, {"facts", {"350 ml"}}},
                            {{"id", "BAG-002"}, {"name", "Canvas tote"}, {"facts", {"cotton"}}}});
  for (int i = 0; i < o.extra_items; ++i)
    items.push_back(
        {{"id", "EXTRA-" + std::to_string(i)}, {"name", "Product " + std::to_string(i)}});
  if (o.edit)
    for (auto& item : items) item["photo"] = (data_root() / "photos" / "coffee.png").string();
  if (o.missing_photo)
    items.push_back({{"id", "LAMP-003"}, {"name", "Lamp"}, {"photo", "no-such-photo.png"}});
  const json rules = {{"min_chars", 0},
                      {"max_chars", 0},
                      {"required_words", json::array()},
                      {"banned_words", json::array()},
                      {"brand_terms", json::array()},
                      {"brand_required", false},
                      {"hashtags", {{"min", 0}, {"max", -1}, {"required", json::array()}}},
                      {"emoji", "allowed"}};
  const json job = {
      {"studio_job", 1},
      {"name", "runtest"},
      {"output", o.output},
      {"models",
       {{"text", text_model.string()}, {"image", (fixtures_root() / "sd-tiny").string()}}},
      {"tier", "draft"},
      {"presets",
       {{"web-banner",
         {{"caption",
           {{"gen_length", 16},
            {"block_length", 16},
            {"steps", 4},
            {"drafts", 2},
            {"repair_rounds", 1},
            {"rules", rules}}},
          {"visual",
           {{"width", 64}, {"height", 64}, {"steps", o.visual_steps}, {"scheduler", "ddim"}}}}}}},
      {"defaults",
       {{"channels", {"web-banner"}},
        {"make", o.edit ? json{"caption", "visual", "edit"} : json{"caption", "visual"}},
        {"seeds", {0}}}},
      {"items", items},
      {"kpi",
       {{"gpu_price_per_hour", 2.0}, {"manual_minutes", {{"caption", 10}, {"visual", 60}}}}}};
  const fs::path file = dir / "job.json";
  write_file(file, job.dump(2));
  return file;
}

std::map<std::string, std::string> run_assets(const fs::path& out) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    const std::string ext = e.path().extension().string();
    const fs::path rel = fs::relative(e.path(), out);
    if (!rel.empty() && *rel.begin() == "previews") continue;  // review previews, not assets
    if (e.is_regular_file() && (ext == ".txt" || ext == ".png"))
      m[fs::relative(e.path(), out).string()] = read_file(e.path());
  }
  return m;
}

std::vector<json> run_journal_lines(const fs::path& out) {
  std::vector<json> v;
  if (!fs::exists(out / "journal")) return v;
  for (const auto& e : fs::directory_iterator(out / "journal")) {
    const std::string text = read_file(e.path());
    size_t at = 0;
    while (at < text.size()) {
      const size_t nl = text.find('\n', at);
      if (nl == std::string::npos) break;
      v.push_back(json::parse(text.substr(at, nl - at)));
      at = nl + 1;
    }
  }
  return v;
}

}  // namespace studio::test
