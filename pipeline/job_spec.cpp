#include "pipeline/job_spec.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/json_file.h"
#include "core/limits.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace studio {

const std::vector<std::string> kAssetKinds = {"caption", "visual", "edit", "video", "mesh"};
const std::vector<std::string> kAvailableKinds = {"caption", "visual", "edit"};

namespace {

constexpr int kJobVersion = 1;

const std::vector<std::string> kJobKeys = {"studio_job", "name",  "description", "output",
                                           "models",     "tier",  "presets",     "defaults",
                                           "variants",   "items", "kpi"};
const std::vector<std::string> kDefaultsKeys = {"channels", "make", "seeds",
                                                "language", "tone", "brand"};
const std::vector<std::string> kVariantKeys = {"name", "caption_instruction", "prompt_suffix"};
const std::vector<std::string> kItemKeys = {"id",    "name",          "facts", "tone",  "language",
                                            "brand", "channels",      "make",  "photo", "prompt",
                                            "seeds", "source_prompt", "mask"};
const std::vector<std::string> kKpiKeys = {"gpu_price_per_hour", "cpu_price_per_hour",
                                           "manual_price_per_hour", "manual_minutes",
                                           "review_minutes"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The section of a channel preset a kind is made from.
const char* section_of(const std::string& kind) { return kind == "caption" ? "caption" : "visual"; }
bool needs_photo(const std::string& kind) { return kind == "edit"; }

bool is_language(const std::string& s) {
  // BCP 47-ish: 2-3 letters, then -subtags of letters/digits ("en", "de-CH", "zh-Hant-TW").
  std::size_t i = 0;
  while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
  if (i < 2 || i > 3) return false;
  while (i < s.size()) {
    if (s[i] != '-') return false;
    std::size_t j = ++i;
    while (j < s.size() && std::isalnum(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i || j - i > 8) return false;
    i = j;
  }
  return true;
}

std::optional<std::string> language(const json& obj, const std::string& path, Problems& p) {
  auto s = check::string(obj, path, "language", false, p);
  if (s && !is_language(*s)) {
    p.add(json_path(path, "language"),
          "found \"" + *s + "\", expected a language tag such as \"en\" or \"de-CH\"");
    return std::nullopt;
  }
  return s;
}

// Checks a list of make kinds at path/key; returns the valid, available ones.
std::optional<std::vector<std::string>> make_kinds(const json& obj, const std::string& path,
                                                   Problems& p) {
  auto kinds = check::strings(obj, path, "make", false, p, true, false);
  if (!kinds) return kinds;
  std::vector<std::string> out;
  const std::string here = json_path(path, "make");
  const auto& arr = obj["make"];
  for (std::size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string()) continue;
    const std::string k = arr[i].get<std::string>();
    if (!contains(*kinds, k)) continue;  // a duplicate, already reported
    if (!contains(kAssetKinds, k)) {
      p.add(json_path(here, i),
            "unknown kind \"" + k + "\" (expected one of: " + join_names(kAvailableKinds) + ")");
    } else if (!contains(kAvailableKinds, k)) {
      p.add(json_path(here, i), "the \"" + k + "\" stage is not available in this version " +
                                    "(available: " + join_names(kAvailableKinds) + ")");
    } else {
      out.push_back(k);
    }
  }
  if (out.size() != kinds->size()) return std::nullopt;
  return out;
}

// Minutes per asset kind: {"caption": 15, ...}.
std::map<std::string, double> minutes(const json& obj, const std::string& path,
                                      const std::string& key, Problems& p) {
  std::map<std::string, double> out;
  if (!obj.contains(key) || obj[key].is_null()) return out;
  const std::string here = json_path(path, key);
  if (!check::object(obj[key], here, p)) return out;
  check::keys(obj[key], here, kAssetKinds, p);
  for (const auto& k : kAssetKinds)
    if (auto x = check::number(obj[key], here, k, false, p, 0.0)) out[k] = *x;
  return out;
}

// Folds a preset library error (the file is broken, not the job) into the job's problems at `at`.
void fold(const Error& e, const std::string& at, const std::string& what, Problems& p) {
  if (const auto* v = dynamic_cast<const ValidationError*>(&e)) {
    for (const auto& pr : v->problems())
      p.add(at,
            what + " " + v->where() + ": " + (pr.path.empty() ? "" : pr.path + ": ") + pr.message);
  } else {
    p.add(at, what + ": " + e.what());
  }
}

// Records every string of the job (prompts, facts, instructions, negative prompts in preset
// overrides, ...) longer than STUDIO_LIMIT_PROMPT_CHARS characters. Iterative: a job file may nest
// deeper than the stack would take.
void check_text_lengths(const json& root, int64_t limit, Problems& p) {
  std::vector<std::pair<const json*, std::string>> todo{{&root, ""}};
  while (!todo.empty()) {
    auto [v, path] = std::move(todo.back());
    todo.pop_back();
    if (v->is_string()) {
      const std::string& s = v->get_ref<const std::string&>();
      if (static_cast<int64_t>(s.size()) <= limit) continue;  // bytes >= characters
      const int64_t n = utf8_chars(s);
      if (n <= limit) continue;
      const OverLimit o =
          describe_over_limit(limit_spec("prompt_chars"), n, limit, "the text has", "shorten it");
      p.add(path, o.what + "; " + o.hint);
    } else if (v->is_object()) {
      for (auto it = v->rbegin(); it != v->rend(); ++it)  // reversed: popped in file order
        if (it->is_structured() || it->is_string())
          todo.emplace_back(&it.value(), json_path(path, it.key()));
    } else if (v->is_array()) {
      for (std::size_t i = v->size(); i-- > 0;)
        if ((*v)[i].is_structured() || (*v)[i].is_string())
          todo.emplace_back(&(*v)[i], json_path(path, i));
    }
  }
}

fs::path resolve_path(const fs::path& dir, const std::string& s) {
  const fs::path p(s);
  return (p.is_absolute() ? p : dir / p).lexically_normal();
}

}  // namespace

JobSpec load_job(const fs::path& file, const PresetLibrary& presets) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);  // not a regular file: read_json_file says why
  if (!ec)
    check_limit<ConfigError>("job_file_bytes", static_cast<int64_t>(size), "the job file is",
                             file.string(), "split the job into several job files");
  return parse_job(read_json_file(file), file, presets);
}

JobSpec parse_job(const json& j, const fs::path& file, const PresetLibrary& presets) {
  JobSpec job;
  job.file = file;
  job.dir = fs::absolute(file).parent_path().lexically_normal();
  job.raw = j;
  Problems p;
  const std::string origin = file.string();
  if (!check::object(j, "", p)) p.throw_if_any(origin, "invalid job file");
  check::keys(j, "", kJobKeys, p);
  check_text_lengths(j, resource_limits().prompt_chars, p);

  // Version and identity.
  if (auto v = check::integer(j, "", "studio_job", true, p); v && *v != kJobVersion)
    p.add("/studio_job", "unsupported version " + std::to_string(*v) + " (this studio reads " +
                             "version " + std::to_string(kJobVersion) + ")");
  job.name = check::name(j, "", "name", true, p).value_or("");
  job.description = check::string(j, "", "description", false, p).value_or("");
  if (auto out = check::string(j, "", "output", false, p, true))
    job.output_dir = resolve_path(job.dir, *out);
  else
    job.output_dir = resolve_path(job.dir, "out/" + (job.name.empty() ? "job" : job.name));

  // Models.
  bool models_ok = true;
  if (j.contains("models") && !j["models"].is_null()) {
    if (check::object(j["models"], "/models", p)) {
      check::keys(j["models"], "/models", {"text", "image", "text_sha256", "image_sha256"}, p);
      job.text_model = check::string(j["models"], "/models", "text", false, p, true).value_or("");
      job.image_model = check::string(j["models"], "/models", "image", false, p, true).value_or("");
      for (const char* stage : {"text", "image"}) {
        const std::string key = std::string(stage) + "_sha256";
        const std::string pin =
            check::string(j["models"], "/models", key, false, p, true).value_or("");
        const bool hex = pin.size() == 64 && std::all_of(pin.begin(), pin.end(), [](char c) {
                           return std::isdigit(static_cast<unsigned char>(c)) ||
                                  (c >= 'a' && c <= 'f');
                         });
        if (!pin.empty() && !hex)
          p.add(json_path("/models", key),
                "found \"" + pin + "\", expected the 64 lowercase hex digits `studio models hash` "
                "prints");
        else if (!pin.empty() && !j["models"].contains(stage))
          p.add(json_path("/models", key), std::string("pins a digest but names no ") + stage +
                                               " model");
        (std::string(stage) == "text" ? job.text_model_sha256 : job.image_model_sha256) = pin;
      }
    } else {
      models_ok = false;
    }
  }
  if (!job.text_model.empty()) job.text_model_path = resolve_path(job.dir, job.text_model);
  if (!job.image_model.empty()) job.image_model_path = resolve_path(job.dir, job.image_model);

  // Tier: the job's, else "standard" when the presets folder has one, else none.
  json tier;
  const std::size_t before_tier = p.size();
  const auto tier_name = check::name(j, "", "tier", false, p);
  bool tier_ok = p.size() == before_tier;
  job.tier = tier_name.value_or(presets.has_tier("standard") ? "standard" : "");
  if (tier_ok && !job.tier.empty()) {
    if (!presets.has_tier(job.tier)) {
      p.add("/tier", "unknown tier \"" + job.tier +
                         "\" (available: " + join_names(presets.tier_names()) + ")");
      tier_ok = false;
    } else {
      try {
        tier = presets.tier(job.tier);
      } catch (const Error& e) {
        fold(e, "/tier", "tier \"" + job.tier + "\" is invalid:", p);
        tier_ok = false;
      }
    }
  }

  // The job's own presets: overrides of library presets and new ones with a "base".
  std::map<std::string, json> overrides;
  std::set<std::string> bad_overrides;
  if (j.contains("presets") && !j["presets"].is_null() &&
      check::object(j["presets"], "/presets", p)) {
    for (auto it = j["presets"].begin(); it != j["presets"].end(); ++it) {
      const std::string here = json_path("/presets", it.key());
      const std::size_t before = p.size();
      if (!check::is_name(it.key()))
        p.add(here, "a preset name must be letters, digits, '.', '_' and '-'");
      Problems q;
      check_channel_preset(it.value(), q, true);
      p.append(q, here);
      if (p.size() == before) {
        const json& o = it.value();
        const bool has_base = o.contains("base") && o["base"].is_string();
        const std::string base = has_base ? o["base"].get<std::string>() : it.key();
        if (has_base && !presets.has_channel(base))
          p.add(json_path(here, "base"), "unknown preset \"" + base + "\" (available: " +
                                             join_names(presets.channel_names()) + ")");
        else if (!has_base && !presets.has_channel(base))
          p.add(here, "no preset \"" + base +
                          "\" to override (available: " + join_names(presets.channel_names()) +
                          "); add \"base\" to define a new preset");
      }
      if (p.size() == before)
        overrides[it.key()] = it.value();
      else
        bad_overrides.insert(it.key());
    }
  }
  std::vector<std::string> available = presets.channel_names();
  for (const auto& [name, o] : overrides)
    if (!contains(available, name)) available.push_back(name);
  for (const auto& name : bad_overrides)
    if (!contains(available, name)) available.push_back(name);
  std::sort(available.begin(), available.end());

  // Resolves a channel name once; false (problem recorded at `at`) when unknown or invalid.
  std::map<std::string, bool> resolved;
  auto resolve = [&](const std::string& name, const std::string& at) -> bool {
    if (auto r = resolved.find(name); r != resolved.end()) return r->second;
    if (bad_overrides.count(name)) return resolved[name] = false;  // reported at /presets
    auto o = overrides.find(name);
    if (o == overrides.end() && !presets.has_channel(name)) {
      p.add(at, "unknown preset \"" + name + "\" (available: " + join_names(available) + ")");
      return false;  // reported at each use
    }
    const std::string base = o != overrides.end() && o->second.contains("base")
                                 ? o->second["base"].get<std::string>()
                                 : name;
    json merged;
    try {
      merged = presets.channel(base);
    } catch (const Error& e) {
      fold(e, at, "preset \"" + base + "\" is invalid:", p);
      return resolved[name] = false;
    }
    std::string blame = "/tier";
    if (o != overrides.end()) {
      json patch = o->second;
      patch.erase("base");
      merged.merge_patch(patch);
      blame = json_path("/presets", name);
    }
    merged["name"] = name;
    if (tier_ok) merged = apply_tier(merged, tier);
    Problems q;
    json complete = check_channel_preset(merged, q);
    if (!q.empty()) {
      if (o == overrides.end()) {
        for (const auto& pr : q.list())
          p.add(blame, "preset \"" + name + "\" with tier \"" + job.tier + "\": " + pr.path + ": " +
                           pr.message);
      } else {
        p.append(q, blame);
      }
      return resolved[name] = false;
    }
    job.presets[name] = complete;
    return resolved[name] = true;
  };

  // Defaults.
  std::optional<std::vector<std::string>> def_channels, def_make;
  std::optional<std::vector<int64_t>> def_seeds;
  std::string def_language = "en", def_tone, def_brand;
  bool def_channels_ok = true, def_make_ok = true;
  if (j.contains("defaults") && !j["defaults"].is_null() &&
      check::object(j["defaults"], "/defaults", p)) {
    const json& d = j["defaults"];
    check::keys(d, "/defaults", kDefaultsKeys, p);
    const std::size_t before = p.size();
    def_channels = check::strings(d, "/defaults", "channels", false, p, true, false);
    if (def_channels) {
      for (std::size_t i = 0; i < d["channels"].size(); ++i)
        if (!resolve(d["channels"][i].get<std::string>(), json_path("/defaults/channels", i)))
          def_channels_ok = false;
    }
    if (p.size() != before) def_channels_ok = false;
    const std::size_t before_make = p.size();
    def_make = make_kinds(d, "/defaults", p);
    if (p.size() != before_make) def_make_ok = false;
    def_seeds = check::integers(d, "/defaults", "seeds", false, p, 0, kMaxJsonSeed);
    def_language = language(d, "/defaults", p).value_or("en");
    def_tone = check::string(d, "/defaults", "tone", false, p).value_or("");
    def_brand = check::string(d, "/defaults", "brand", false, p).value_or("");
  }

  // Variants.
  if (j.contains("variants") && !j["variants"].is_null()) {
    const json& vs = j["variants"];
    if (!vs.is_array() || vs.empty()) {
      p.add("/variants", "found " + describe_json(vs) + ", expected a non-empty array of objects");
    } else {
      std::map<std::string, std::string> seen;
      for (std::size_t i = 0; i < vs.size(); ++i) {
        const std::string here = json_path("/variants", i);
        if (!check::object(vs[i], here, p)) continue;
        check::keys(vs[i], here, kVariantKeys, p);
        JobVariant v;
        auto name = check::name(vs[i], here, "name", true, p);
        v.caption_instruction =
            check::string(vs[i], here, "caption_instruction", false, p).value_or("");
        v.prompt_suffix = check::string(vs[i], here, "prompt_suffix", false, p).value_or("");
        if (!name) continue;
        v.name = *name;
        auto [it, fresh] = seen.emplace(v.name, json_path(here, "name"));
        if (!fresh) {
          p.add(json_path(here, "name"),
                "duplicate variant \"" + v.name + "\" (first at " + it->second + ")");
          continue;
        }
        job.variants.push_back(v);
      }
    }
  } else {
    job.variants.push_back(JobVariant{});
  }

  // Items.
  bool uses_caption = false, uses_visual = false;
  std::string first_caption, first_visual;
  if (!j.contains("items") || j["items"].is_null()) {
    p.add("/items", "missing required key");
  } else if (!j["items"].is_array() || j["items"].empty()) {
    p.add("/items",
          "found " + describe_json(j["items"]) + ", expected a non-empty array of objects");
  } else {
    std::map<std::string, std::string> ids;
    const json& items = j["items"];
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::string here = json_path("/items", i);
      if (!check::object(items[i], here, p)) continue;
      const json& it = items[i];
      check::keys(it, here, kItemKeys, p);
      JobItem item;
      item.json_path = here;
      const std::size_t before = p.size();
      auto id = check::name(it, here, "id", true, p);
      if (id) {
        auto [pos, fresh] = ids.emplace(*id, json_path(here, "id"));
        if (!fresh)
          p.add(json_path(here, "id"),
                "duplicate id \"" + *id + "\" (first at " + pos->second + ")");
        item.id = *id;
      }
      item.name = check::string(it, here, "name", false, p, true).value_or(item.id);
      if (auto facts = check::strings(it, here, "facts", false, p)) item.facts = *facts;
      item.tone = check::string(it, here, "tone", false, p).value_or(def_tone);
      item.language = language(it, here, p).value_or(def_language);
      item.brand = check::string(it, here, "brand", false, p).value_or(def_brand);
      if (auto photo = check::string(it, here, "photo", false, p, true)) {
        item.photo = *photo;
        item.photo_path = resolve_path(job.dir, *photo);
      }
      item.prompt = check::string(it, here, "prompt", false, p, true).value_or("");
      item.source_prompt = check::string(it, here, "source_prompt", false, p).value_or("");
      if (auto mask = check::string(it, here, "mask", false, p, true)) {
        item.mask = *mask;
        item.mask_path = resolve_path(job.dir, *mask);
      }

      // Channels: the item's, else the defaults'.
      bool channels_ok = true;
      if (it.contains("channels") && !it["channels"].is_null()) {
        const std::size_t b = p.size();
        if (auto ch = check::strings(it, here, "channels", false, p, true, false)) {
          item.channels = *ch;
          for (std::size_t c = 0; c < it["channels"].size(); ++c)
            if (it["channels"][c].is_string() &&
                contains(*ch, it["channels"][c].get<std::string>()))
              if (!resolve(it["channels"][c].get<std::string>(),
                           json_path(json_path(here, "channels"), c)))
                channels_ok = false;
        }
        if (p.size() != b) channels_ok = false;
      } else if (def_channels) {
        item.channels = *def_channels;
        channels_ok = def_channels_ok;
      } else {
        p.add(json_path(here, "channels"),
              "no channels (set \"channels\" here or in \"defaults\")");
        channels_ok = false;
      }

      // Kinds to make: the item's, else the defaults', else caption + visual.
      bool make_ok = true;
      std::string make_path = json_path(here, "make");
      if (it.contains("make") && !it["make"].is_null()) {
        const std::size_t b = p.size();
        auto mk = make_kinds(it, here, p);
        if (mk) item.make = *mk;
        if (p.size() != b) make_ok = false;
      } else if (def_make) {
        item.make = *def_make;
        make_ok = def_make_ok;
        make_path = "/defaults/make";
      } else if (!def_make_ok) {
        make_ok = false;
      } else {
        item.make = {"caption", "visual"};
      }

      if (auto seeds = check::integers(it, here, "seeds", false, p, 0, kMaxJsonSeed))
        item.seeds = *seeds;
      else if (def_seeds)
        item.seeds = *def_seeds;

      if (make_ok) {
        for (std::size_t k = 0; k < item.make.size(); ++k) {
          const std::string& kind = item.make[k];
          if (needs_photo(kind) && item.photo.empty())
            p.add(json_path(make_path, k),
                  "\"" + kind + "\" needs a \"photo\" (at " + json_path(here, "photo") + ")");
          if (channels_ok) {
            for (const auto& ch : item.channels) {
              const json& preset = job.presets.at(ch);
              if (!preset.contains(section_of(kind)))
                p.add(json_path(make_path, k), "preset \"" + ch + "\" has no \"" +
                                                   section_of(kind) + "\" section to make \"" +
                                                   kind + "\" from");
            }
          }
          if (kind == "caption" && !uses_caption) {
            uses_caption = true;
            first_caption = here;
          }
          if (kind != "caption" && !uses_visual) {
            uses_visual = true;
            first_visual = here;
          }
        }
      }
      if (p.size() == before || id) job.items.push_back(std::move(item));
    }
  }

  // Models the used stages need.
  if (models_ok) {
    if (uses_caption && job.text_model.empty())
      p.add("/models/text",
            "missing: a text model folder is needed to make captions (" + first_caption + ")");
    if (uses_visual && job.image_model.empty())
      p.add("/models/image",
            "missing: an image model folder is needed to make visuals (" + first_visual + ")");
  }

  // KPI settings.
  if (j.contains("kpi") && !j["kpi"].is_null() && check::object(j["kpi"], "/kpi", p)) {
    const json& k = j["kpi"];
    check::keys(k, "/kpi", kKpiKeys, p);
    job.kpi.gpu_price_per_hour =
        check::number(k, "/kpi", "gpu_price_per_hour", false, p, 0.0).value_or(0.0);
    job.kpi.cpu_price_per_hour =
        check::number(k, "/kpi", "cpu_price_per_hour", false, p, 0.0).value_or(0.0);
    job.kpi.manual_price_per_hour =
        check::number(k, "/kpi", "manual_price_per_hour", false, p, 0.0).value_or(0.0);
    job.kpi.manual_minutes = minutes(k, "/kpi", "manual_minutes", p);
    job.kpi.review_minutes = minutes(k, "/kpi", "review_minutes", p);
  }

  p.throw_if_any(origin, "invalid job file");
  return job;
}

}  // namespace studio
