#include "pipeline/plan.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/hash.h"
#include "core/limits.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace studio {

namespace {

// What is known about an input file or folder: its hash (files) or why it is unusable.
struct InputCheck {
  std::string sha256;
  std::string error;
};

InputCheck check_input_file(const fs::path& path, const char* what) {
  InputCheck c;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    c.error = std::string(what) + " not found: " + path.string();
  } else if (!fs::is_regular_file(path, ec)) {
    c.error = std::string(what) + " is not a file: " + path.string();
  } else {
    try {
      c.sha256 = sha256_file_hex(path);
    } catch (const Error& e) {
      c.error = std::string(what) + " unreadable: " + e.what();
    }
  }
  return c;
}

std::string check_model_dir(const fs::path& path, const char* what) {
  std::error_code ec;
  if (!fs::is_directory(path, ec))
    return std::string(what) + " model folder not found: " + path.string();
  return {};
}

std::string join_with_space(const std::string& a, const std::string& b) {
  if (b.empty()) return a;
  if (a.empty()) return b;
  return a + " " + b;
}

}  // namespace

std::string default_prompt(const JobItem& item) {
  std::string p = item.name;
  for (const auto& f : item.facts) p += ", " + f;
  return p + ", professional product photo";
}

std::string work_item_id(const json& inputs) { return sha256_hex(inputs.dump()).substr(0, 16); }

json WorkItem::to_json() const {
  json j{{"id", id},
         {"order", order},
         {"item", item_id},
         {"kind", kind},
         {"channel", channel},
         {"variant", variant},
         {"seed", seed},
         {"output", output.generic_string()},
         {"input_error", input_error.empty() ? json(nullptr) : json(input_error)},
         {"model", model_dir.string()},
         {"photo", photo.empty() ? json(nullptr) : json(photo.string())},
         {"preset", preset}};
  if (kind == "caption")
    j["instruction"] = instruction;
  else
    j["prompt"] = prompt;
  if (kind == "edit") j["source_prompt"] = source_prompt;
  if (revision > 0)
    j["revision"] = {{"revision", revision},
                     {"base_work_id", base_work_id},
                     {"verdict", revision_verdict},
                     {"note", revision_note},
                     {"source", revision_source.generic_string()}};
  j["inputs"] = inputs;
  return j;
}

std::size_t Plan::input_errors() const {
  std::size_t n = 0;
  for (const auto& w : items) n += !w.input_error.empty();
  return n;
}

json Plan::to_json() const {
  json j{{"studio_plan", 1},
         {"job", job_name},
         {"job_file", job_file.string()},
         {"output", output_dir.string()},
         {"tier", tier},
         {"count", items.size()},
         {"input_errors", input_errors()},
         {"work_items", json::array()}};
  for (const auto& w : items) j["work_items"].push_back(w.to_json());
  return j;
}

namespace {

// The seeds a channel's visuals use for an item: the item's, else the preset's, else {0}.
std::vector<int64_t> item_seeds(const JobItem& item, const json& preset) {
  std::vector<int64_t> seeds = item.seeds;
  if (seeds.empty() && preset.contains("visual"))
    seeds = preset["visual"]["seeds"].get<std::vector<int64_t>>();
  if (seeds.empty()) seeds = {0};
  return seeds;
}

// How many work items make_plan will make, counted before anything is built or hashed.
int64_t count_work_items(const JobSpec& job) {
  int64_t n = 0;
  const auto variants = static_cast<int64_t>(job.variants.size());
  for (const auto& item : job.items)
    for (const auto& channel : item.channels) {
      const auto seeds = static_cast<int64_t>(item_seeds(item, job.presets.at(channel)).size());
      for (const auto& kind : kAssetKinds)
        if (std::find(item.make.begin(), item.make.end(), kind) != item.make.end())
          n += variants * (kind == "caption" || kind == "edit" ? 1 : seeds);
    }
  return n;
}

}  // namespace

Plan make_plan(const JobSpec& job) {
  // STUDIO_LIMIT_JOB_ITEMS: refused before any work item is built or any photo hashed.
  check_limit<ConfigError>("job_items", count_work_items(job), "the job expands to",
                           job.file.string(),
                           "split the job into several jobs (fewer items, channels, variants or "
                           "seeds each)");
  Plan plan;
  plan.job_name = job.name;
  plan.job_file = job.file;
  plan.output_dir = fs::absolute(job.output_dir).lexically_normal();
  plan.tier = job.tier;

  const std::string text_model_error =
      job.text_model.empty() ? "" : check_model_dir(job.text_model_path, "text");
  const std::string image_model_error =
      job.image_model.empty() ? "" : check_model_dir(job.image_model_path, "image");

  for (const auto& item : job.items) {
    InputCheck photo;
    if (!item.photo.empty()) photo = check_input_file(item.photo_path, "photo");
    InputCheck mask;
    if (!item.mask.empty()) mask = check_input_file(item.mask_path, "product mask");
    json item_json{{"id", item.id},     {"name", item.name},         {"facts", item.facts},
                   {"tone", item.tone}, {"language", item.language}, {"brand", item.brand}};
    if (!item.photo.empty())
      item_json["photo_sha256"] = photo.sha256.empty() ? json(nullptr) : json(photo.sha256);
    if (!item.mask.empty())
      item_json["mask_sha256"] = mask.sha256.empty() ? json(nullptr) : json(mask.sha256);

    for (const auto& channel : item.channels) {
      const json& preset = job.presets.at(channel);
      const std::vector<int64_t> seeds = item_seeds(item, preset);

      for (const auto& kind : kAssetKinds) {
        bool wanted = false;
        for (const auto& k : item.make) wanted = wanted || k == kind;
        if (!wanted) continue;
        const bool caption = kind == "caption";
        const bool edit = kind == "edit";
        json section = preset.at(caption ? "caption" : "visual");
        section.erase("seeds");            // the work item's own seed is hashed instead
        if (!edit) section.erase("edit");  // a visual does not depend on the edit settings

        for (const auto& variant : job.variants) {
          // Captions and edits (deterministic DDIM from the inverted photo) are made once.
          const std::vector<int64_t> kind_seeds =
              caption || edit ? std::vector<int64_t>{seeds.front()} : seeds;
          for (const int64_t seed : kind_seeds) {
            WorkItem w;
            w.order = plan.items.size();
            w.item_id = item.id;
            w.kind = kind;
            w.channel = channel;
            w.variant = variant.name;
            w.seed = seed;
            w.name = item.name;
            w.facts = item.facts;
            w.tone = item.tone;
            w.language = item.language;
            w.brand = item.brand;
            w.preset = section;
            w.photo = item.photo_path;
            w.photo_sha256 = photo.sha256;
            const std::string& model = caption ? job.text_model : job.image_model;
            w.model_dir = caption ? job.text_model_path : job.image_model_path;
            json variant_json{{"name", variant.name}};
            if (caption) {
              w.instruction = join_with_space(section["instruction"].get<std::string>(),
                                              variant.caption_instruction);
              variant_json["caption_instruction"] = variant.caption_instruction;
            } else {
              const std::string base = item.prompt.empty() ? default_prompt(item) : item.prompt;
              w.prompt = variant.prompt_suffix.empty() ? base : base + ", " + variant.prompt_suffix;
              variant_json["prompt_suffix"] = variant.prompt_suffix;
              if (edit)
                w.source_prompt =
                    item.source_prompt.empty() ? item.name + ", product photo" : item.source_prompt;
            }
            w.inputs = json{{"kind", kind},
                            {"item", item_json},
                            {"channel", channel},
                            {"preset", section},
                            {"variant", variant_json},
                            {"seed", seed},
                            {"model", fs::path(model).lexically_normal().generic_string()}};
            if (caption)
              w.inputs["instruction"] = w.instruction;
            else
              w.inputs["prompt"] = w.prompt;
            if (edit) w.inputs["source_prompt"] = w.source_prompt;
            w.id = work_item_id(w.inputs);
            w.output = fs::path(item.id) / channel /
                       (kind + "-" + variant.name + "-s" + std::to_string(seed) +
                        (caption ? ".txt" : ".png"));
            if (edit) w.mask = item.mask_path;
            if (!photo.error.empty())
              w.input_error = photo.error;
            else if (edit && !mask.error.empty())
              w.input_error = mask.error;
            else
              w.input_error = caption ? text_model_error : image_model_error;
            plan.items.push_back(std::move(w));
          }
        }
      }
    }
  }
  return plan;
}

}  // namespace studio
