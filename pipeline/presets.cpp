#include "pipeline/presets.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "core/json_file.h"
#include "core/scheduler_names.h"
#include "text/caption_rules.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace studio {

namespace {

const std::vector<std::string> kPresetKeys = {"name", "description", "caption", "visual"};
const std::vector<std::string> kPatchKeys = {"base", "description", "caption", "visual"};
const std::vector<std::string> kCaptionKeys = {
    "instruction",   "gen_length",  "block_length", "steps",     "drafts",
    "repair_rounds", "temperature", "sampler",      "threshold", "rules"};
const std::vector<std::string> kVisualKeys = {"width",    "height",          "steps", "scheduler",
                                              "guidance", "negative_prompt", "seeds", "edit"};
// The `edit` stage's settings inside `visual` (image/photo_edit.h says what each does). The
// inversion names are image::inversion_method_names() (a test checks they agree).
const std::vector<std::string> kEditKeys = {"inversion",     "strength",    "mask",     "grow",
                                            "feather",       "fit",         "outpaint", "p2p",
                                            "cross_replace", "self_replace"};
const std::vector<std::string> kInversionNames = {"ddim", "negative-prompt", "null-text", "direct"};
const std::vector<std::string> kMaskModes = {"auto", "alpha", "grabcut", "none"};
const std::vector<std::string> kFitModes = {"auto", "crop", "pad"};
const std::vector<std::string> kP2pModes = {"", "auto", "replace", "refine"};
const std::vector<std::string> kSamplers = {"llada", "fast-dllm"};

// Reads the rules with CaptionRules (the copywriter's own reader) and folds its problems into
// `p`; returns the normalised rules, or null when invalid. Its message lists the problems as
// "invalid caption rules (N problems): <path>: found ..., expected ...; <path>: ...", each path
// starting with the json_path it was given.
json check_rules(const json& rules, const std::string& path, Problems& p) {
  try {
    return CaptionRules::from_json(rules, "", path).to_json();
  } catch (const ConfigError& e) {
    const std::string& msg = e.what_failed();
    std::size_t start = msg.find("): ");
    start = start == std::string::npos ? msg.find(": ") : start + 1;
    if (start == std::string::npos) {
      p.add(path, msg);
      return nullptr;
    }
    start += 2;
    const std::string sep = "; " + path;
    while (start < msg.size()) {
      std::size_t end = msg.find(sep, start);
      if (end == std::string::npos) end = msg.size();
      const std::string item = msg.substr(start, end - start);
      const std::size_t colon = item.find(": ");
      if (item.rfind(path, 0) == 0 && colon != std::string::npos)
        p.add(item.substr(0, colon), item.substr(colon + 2));
      else
        p.add(path, item);
      start = end == msg.size() ? end : end + 2;
    }
  }
  return nullptr;
}

void check_caption(const json& c, const std::string& path, bool partial, Problems& p, json* out) {
  if (!check::object(c, path, p)) return;
  check::keys(c, path, kCaptionKeys, p);
  const std::size_t before = p.size();
  auto instruction = check::string(c, path, "instruction", !partial, p, true);
  auto gen_length = check::integer(c, path, "gen_length", false, p, 1, 4096);
  auto block_length = check::integer(c, path, "block_length", false, p, 1, 4096);
  auto steps = check::integer(c, path, "steps", false, p, 1, 4096);
  auto drafts = check::integer(c, path, "drafts", false, p, 1, 64);
  auto repair_rounds = check::integer(c, path, "repair_rounds", false, p, 0, 16);
  auto temperature = check::number(c, path, "temperature", false, p, 0.0, 10.0);
  auto sampler = check::string(c, path, "sampler", false, p);
  if (sampler && std::find(kSamplers.begin(), kSamplers.end(), *sampler) == kSamplers.end()) {
    p.add(json_path(path, "sampler"),
          "found \"" + *sampler + "\", expected one of: " + join_names(kSamplers));
    sampler.reset();
  }
  auto threshold = check::number(c, path, "threshold", false, p, 0.0, 1.0, true);
  json rules = json::object();
  if (c.contains("rules") && !c["rules"].is_null()) {
    const std::string rp = json_path(path, "rules");
    if (check::object(c["rules"], rp, p)) {
      if (partial) {
        // A patch's rules are checked once merged (a patch may delete keys with null).
      } else {
        rules = check_rules(c["rules"], rp, p);
      }
    }
  }
  if (partial || p.size() != before) return;

  const int64_t gl = gen_length.value_or(64);
  const int64_t bl = block_length.value_or(std::min<int64_t>(gl, 32));
  const int64_t st = steps.value_or(gl);
  const std::string sm = sampler.value_or("llada");
  bool ok = true;
  if (gl % bl != 0) {
    p.add(json_path(path, "block_length"), "block_length " + std::to_string(bl) +
                                               " does not divide gen_length " + std::to_string(gl));
    ok = false;
  } else if (st % (gl / bl) != 0) {
    p.add(json_path(path, "steps"), "steps " + std::to_string(st) +
                                        " is not a multiple of the number of blocks " +
                                        std::to_string(gl / bl) + " (gen_length / block_length)");
    ok = false;
  }
  if (threshold && sm != "fast-dllm") {
    p.add(json_path(path, "threshold"), "a threshold needs \"sampler\": \"fast-dllm\"");
    ok = false;
  }
  if (!ok) return;
  *out = json{{"instruction", *instruction},
              {"gen_length", gl},
              {"block_length", bl},
              {"steps", st},
              {"drafts", drafts.value_or(4)},
              {"repair_rounds", repair_rounds.value_or(2)},
              {"temperature", temperature.value_or(0.8)},
              {"sampler", sm},
              {"threshold", threshold ? json(*threshold) : json(nullptr)},
              {"rules", rules}};
}

void check_visual(const json& v, const std::string& path, bool partial, Problems& p, json* out) {
  if (!check::object(v, path, p)) return;
  check::keys(v, path, kVisualKeys, p);
  const std::size_t before = p.size();
  auto dim = [&](const char* key) -> std::optional<int64_t> {
    auto x = check::integer(v, path, key, !partial, p, 64, 4096);
    if (x && *x % 8 != 0) {
      p.add(json_path(path, key), "found " + std::to_string(*x) + ", expected a multiple of 8");
      return std::nullopt;
    }
    return x;
  };
  auto width = dim("width");
  auto height = dim("height");
  auto steps = check::integer(v, path, "steps", false, p, 1, 1000);
  auto scheduler = check::string(v, path, "scheduler", false, p);
  if (scheduler) {
    const auto names = preset_scheduler_names();
    if (std::find(names.begin(), names.end(), *scheduler) == names.end()) {
      p.add(json_path(path, "scheduler"),
            "found \"" + *scheduler + "\", expected one of: " + join_names(names));
      scheduler.reset();
    }
  }
  auto guidance = check::number(v, path, "guidance", false, p, 0.0, 50.0);
  auto negative = check::string(v, path, "negative_prompt", false, p);
  auto seeds = check::integers(v, path, "seeds", false, p, 0, kMaxJsonSeed);
  // The edit settings, defaults filled in (an absent or null "edit" is an empty one).
  json edit = json::object();
  const std::string ep = json_path(path, "edit");
  const json e = v.contains("edit") && !v["edit"].is_null() ? v["edit"] : json::object();
  if (check::object(e, ep, p)) {
    check::keys(e, ep, kEditKeys, p);
    auto one_of = [&](const char* key, const std::vector<std::string>& allowed,
                      const std::string& fallback) {
      auto x = check::string(e, ep, key, false, p);
      if (x && std::find(allowed.begin(), allowed.end(), *x) == allowed.end()) {
        p.add(json_path(ep, key), "found \"" + *x + "\", expected one of: " + join_names(allowed));
        x.reset();
      }
      return x.value_or(fallback);
    };
    edit["inversion"] = one_of("inversion", kInversionNames, "negative-prompt");
    edit["mask"] = one_of("mask", kMaskModes, "auto");
    edit["fit"] = one_of("fit", kFitModes, "auto");
    edit["p2p"] = one_of("p2p", kP2pModes, "");
    edit["strength"] = check::number(e, ep, "strength", false, p, 0.0, 1.0, true).value_or(1.0);
    edit["grow"] = check::integer(e, ep, "grow", false, p, -256, 256).value_or(0);
    edit["feather"] = check::integer(e, ep, "feather", false, p, 0, 512).value_or(8);
    edit["outpaint"] = check::boolean(e, ep, "outpaint", false, p).value_or(true);
    edit["cross_replace"] = check::number(e, ep, "cross_replace", false, p, 0.0, 1.0).value_or(0.8);
    edit["self_replace"] = check::number(e, ep, "self_replace", false, p, 0.0, 1.0).value_or(0.4);
  }
  if (partial || p.size() != before) return;
  *out = json{{"width", *width},
              {"height", *height},
              {"steps", steps.value_or(25)},
              {"scheduler", scheduler.value_or("dpmpp_2m_karras")},
              {"guidance", guidance.value_or(7.0)},
              {"negative_prompt", negative.value_or("")},
              {"seeds", seeds.value_or(std::vector<int64_t>{0})},
              {"edit", edit}};
}

std::vector<std::string> stems(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".json" && e.is_regular_file(ec))
      out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

fs::path exe_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

bool has_channels(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir / "channels", ec);
}

}  // namespace

std::vector<std::string> preset_scheduler_names() {
  std::vector<std::string> out;
  for (const auto& n : scheduler_names()) {
    std::string lower = n;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower.find("inverse") == std::string::npos) out.push_back(n);
  }
  return out;
}

json check_channel_preset(const json& j, Problems& p, bool partial) {
  if (!check::object(j, "", p)) return nullptr;
  const std::size_t before = p.size();
  check::keys(j, "", partial ? kPatchKeys : kPresetKeys, p);
  std::optional<std::string> name;
  if (partial)
    check::name(j, "", "base", false, p);
  else
    name = check::name(j, "", "name", true, p);
  auto description = check::string(j, "", "description", false, p);
  json caption, visual;
  const bool has_caption = j.contains("caption") && !j["caption"].is_null();
  const bool has_visual = j.contains("visual") && !j["visual"].is_null();
  if (has_caption) check_caption(j["caption"], "/caption", partial, p, &caption);
  if (has_visual) check_visual(j["visual"], "/visual", partial, p, &visual);
  if (!partial && !has_caption && !has_visual)
    p.add("", "a preset needs a \"caption\" or a \"visual\" section (or both)");
  if (partial || p.size() != before) return nullptr;
  json out{{"name", *name}, {"description", description.value_or("")}};
  if (has_caption) out["caption"] = caption;
  if (has_visual) out["visual"] = visual;
  return out;
}

void check_tier(const json& j, Problems& p) {
  if (!check::object(j, "", p)) return;
  check::keys(j, "", {"name", "description", "overlay"}, p);
  check::name(j, "", "name", true, p);
  check::string(j, "", "description", false, p);
  if (!j.contains("overlay") || j["overlay"].is_null()) return;
  const json& o = j["overlay"];
  if (!check::object(o, "/overlay", p)) return;
  check::keys(o, "/overlay", {"caption", "visual"}, p);
  json unused;
  if (o.contains("caption") && !o["caption"].is_null()) {
    Problems q;
    check_caption(o["caption"], "/caption", true, q, &unused);
    p.append(q, "/overlay");
  }
  if (o.contains("visual") && !o["visual"].is_null()) {
    Problems q;
    check_visual(o["visual"], "/visual", true, q, &unused);
    p.append(q, "/overlay");
  }
}

json apply_tier(json channel, const json& tier) {
  if (!tier.is_object() || !tier.contains("overlay") || !tier["overlay"].is_object())
    return channel;
  for (const char* section : {"caption", "visual"}) {
    auto it = tier["overlay"].find(section);
    if (it != tier["overlay"].end() && channel.contains(section) && channel[section].is_object())
      channel[section].merge_patch(*it);
  }
  return channel;
}

PresetLibrary::PresetLibrary(fs::path dir) : dir_(std::move(dir)) {
  if (!has_channels(dir_))
    throw IoError("not a presets folder (no channels/ folder in it)", dir_.string(),
                  "pass --presets DIR or set STUDIO_PRESETS to a folder with channels/*.json");
}

fs::path PresetLibrary::find_dir(const std::string& option) {
  if (!option.empty()) {
    if (!has_channels(option))
      throw IoError("not a presets folder (no channels/ folder in it)", option, "check --presets");
    return option;
  }
  if (const char* env = std::getenv("STUDIO_PRESETS"); env && *env) {
    if (!has_channels(env))
      throw IoError("not a presets folder (no channels/ folder in it)", env,
                    "check the STUDIO_PRESETS environment variable");
    return env;
  }
  std::vector<fs::path> tried;
  const fs::path exe = exe_dir();
  if (!exe.empty()) {
    tried.push_back((exe / ".." / ".." / "presets").lexically_normal());
    tried.push_back((exe / ".." / "presets").lexically_normal());
  }
#ifdef STUDIO_SOURCE_PRESETS
  tried.emplace_back(STUDIO_SOURCE_PRESETS);
#endif
  std::string list;
  for (const auto& d : tried) {
    if (has_channels(d)) return d;
    list += (list.empty() ? "" : ", ") + d.string();
  }
  throw IoError("no presets folder found (tried " + list + ")", "presets",
                "pass --presets DIR or set STUDIO_PRESETS");
}

PresetLibrary PresetLibrary::find(const std::string& option) {
  return PresetLibrary(find_dir(option));
}

std::vector<std::string> PresetLibrary::channel_names() const { return stems(dir_ / "channels"); }
std::vector<std::string> PresetLibrary::tier_names() const { return stems(dir_ / "tiers"); }

bool PresetLibrary::has_channel(const std::string& name) const {
  std::error_code ec;
  return check::is_name(name) && fs::is_regular_file(channel_file(name), ec);
}

bool PresetLibrary::has_tier(const std::string& name) const {
  std::error_code ec;
  return check::is_name(name) && fs::is_regular_file(tier_file(name), ec);
}

fs::path PresetLibrary::channel_file(const std::string& name) const {
  return dir_ / "channels" / (name + ".json");
}
fs::path PresetLibrary::tier_file(const std::string& name) const {
  return dir_ / "tiers" / (name + ".json");
}

json PresetLibrary::channel(const std::string& name) const {
  if (!has_channel(name))
    throw ConfigError(
        "unknown channel preset \"" + name + "\" (available: " + join_names(channel_names()) + ")",
        (dir_ / "channels").string(), "use one of the available names");
  const fs::path file = channel_file(name);
  const json j = read_json_file(file);
  Problems p;
  json out = check_channel_preset(j, p);
  if (p.empty() && out["name"] != name)
    p.add("/name",
          "found " + describe_json(out["name"]) + ", expected \"" + name + "\" (the file's name)");
  p.throw_if_any(file.string(), "invalid channel preset");
  return out;
}

json PresetLibrary::tier(const std::string& name) const {
  if (!has_tier(name))
    throw ConfigError("unknown tier \"" + name + "\" (available: " + join_names(tier_names()) + ")",
                      (dir_ / "tiers").string(), "use one of the available names");
  const fs::path file = tier_file(name);
  json j = read_json_file(file);
  Problems p;
  check_tier(j, p);
  if (p.empty() && j["name"] != name)
    p.add("/name",
          "found " + describe_json(j["name"]) + ", expected \"" + name + "\" (the file's name)");
  p.throw_if_any(file.string(), "invalid tier");
  if (!j.contains("description") || j["description"].is_null()) j["description"] = "";
  if (!j.contains("overlay") || j["overlay"].is_null()) j["overlay"] = json::object();
  return j;
}

json PresetLibrary::resolve(const std::string& channel_name, const std::string& tier_name,
                            const json& override_patch) const {
  json merged = channel(channel_name);
  std::string origin = channel_file(channel_name).string();
  if (!override_patch.is_null()) {
    Problems p;
    check_channel_preset(override_patch, p, true);
    p.throw_if_any("override of preset \"" + channel_name + "\"", "invalid preset override");
    json patch = override_patch;
    patch.erase("base");
    merged.merge_patch(patch);
    origin += " + override";
  }
  if (!tier_name.empty()) {
    merged = apply_tier(merged, tier(tier_name));
    origin += " + tier " + tier_file(tier_name).string();
  }
  Problems p;
  json out = check_channel_preset(merged, p);
  p.throw_if_any(origin, "invalid resolved preset \"" + channel_name + "\"");
  return out;
}

}  // namespace studio
