// `studio edit`: edits a product photo by inversion (image/photo_edit.h) — new background, season
// or light with the product kept as photographed — optionally fitted to a channel preset's size.
// Writes the edited image with its parameters and provenance, and optionally the product mask
// and a before/after sheet.
#include "pipeline/commands.h"

#ifdef STUDIO_HAVE_IMAGE
#include <fmt/format.h>

#include <iostream>
#include <regex>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/hash.h"
#include "image/image_io.h"
#include "image/photo_edit.h"
#include "image/prompt_to_prompt.h"
#include "pipeline/presets.h"
#include "pipeline/progress.h"

namespace fs = std::filesystem;

namespace studio {

namespace {

struct EditOptions {
  std::string model;
  std::string image;
  std::string source_prompt;
  std::string prompt;
  std::string negative;
  std::string mask = "auto";
  int grow = 0;
  int feather = 8;
  std::string inversion = "negative-prompt";
  std::string p2p;
  double cross_replace = 0.8;
  double self_replace = 0.4;
  double strength = 1.0;
  int steps = 0;         // 0: the preset's, else 50
  double guidance = -1;  // < 0: the preset's, else 7.5
  std::string preset;
  std::string tier = "standard";
  std::string presets_dir;
  std::string size;
  std::string fit = "auto";
  bool no_outpaint = false;
  int64_t work_pixels = 0;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string out;
  std::string save_mask;
  std::string sheet;
  bool no_sidecar = false;
};

void check_output_path(const fs::path& out, const char* option) {
  const std::string ext = out.extension().string();
  if (ext != ".png" && ext != ".jpg" && ext != ".jpeg" && ext != ".webp" && ext != ".tif" &&
      ext != ".tiff")
    throw UsageError("unsupported output format '" + ext + "'", option,
                     "use .png, .jpg, .webp or .tif");
  if (out.has_parent_path() && !fs::is_directory(out.parent_path()))
    throw IoError("output folder does not exist", out.parent_path().string(), "create it first");
}

int run_edit(const EditOptions& o) {
  const fs::path out(o.out);
  check_output_path(out, "--out");
  if (!o.save_mask.empty()) check_output_path(o.save_mask, "--save-mask");
  if (!o.sheet.empty()) check_output_path(o.sheet, "--sheet");

  image::PhotoEditRequest r;
  r.photo = o.image;
  r.source_prompt = o.source_prompt;
  r.prompt = o.prompt;
  r.negative_prompt = o.negative;
  r.method = image::parse_inversion_method(o.inversion);
  r.p2p = o.p2p;
  if (!o.p2p.empty())
    image::parse_prompt_to_prompt_mode(o.p2p);  // validate before loading the model
  r.cross_replace = o.cross_replace;
  r.self_replace = o.self_replace;
  r.strength = o.strength;
  r.mask = o.mask;
  r.mask_options.grow = o.grow;
  r.mask_options.feather = o.feather;
  r.work_pixels = o.work_pixels;
  r.fit = image::parse_fit_mode(o.fit);
  r.outpaint = !o.no_outpaint;
  r.steps = 50;
  r.guidance = 7.5;

  // A channel preset gives the size, steps, guidance and negative prompt (options override).
  nlohmann::json preset_json;
  if (!o.preset.empty()) {
    const PresetLibrary lib = PresetLibrary::find(o.presets_dir);
    preset_json = lib.resolve(o.preset, o.tier);
    if (!preset_json.contains("visual"))
      throw UsageError("preset '" + o.preset + "' has no visual section", "--preset",
                       "pick a channel that makes pictures (studio presets list)");
    const nlohmann::json& v = preset_json["visual"];
    r.steps = v.value("steps", r.steps);
    r.guidance = v.value("guidance", r.guidance);
    if (r.negative_prompt.empty()) r.negative_prompt = v.value("negative_prompt", std::string());
    r.channel_width = v.value("width", 0);
    r.channel_height = v.value("height", 0);
  }
  if (o.steps > 0) r.steps = o.steps;
  if (o.guidance >= 0) r.guidance = o.guidance;
  if (!o.size.empty()) {
    std::smatch m;
    static const std::regex re("^(\\d+)x(\\d+)$");
    if (!std::regex_match(o.size, m, re))
      throw UsageError("invalid size '" + o.size + "'", "--size", "use WxH, e.g. 1080x1920");
    r.channel_width = std::stoi(m[1]);
    r.channel_height = std::stoi(m[2]);
  }

  {
    // Refuse a bad photo or mask file before the model is loaded (seconds to minutes).
    image::ImageReadOptions ro;
    ro.alpha = image::AlphaMode::kKeep;
    image::read_image(o.image, ro);
    if (o.mask != "auto" && o.mask != "alpha" && o.mask != "grabcut" && o.mask != "none")
      image::read_image(o.mask, ro);
  }
  std::cerr << "studio edit: loading " << o.model << "\n";
  auto pipe = image::SdPipeline::load(o.model, o.device, o.dtype);
  std::string phase;
  std::unique_ptr<ProgressBar> bar;
  r.on_progress = [&](const std::string& p, int step, int total) {
    if (p != phase) {
      if (bar) bar->finish();
      phase = p;
      bar = std::make_unique<ProgressBar>(p);
    }
    bar->update(step, total, "");
  };
  const image::PhotoEditResult res = image::edit_photo(*pipe, r);
  if (bar) bar->finish();

  const auto& unet = find_component(pipe->checkpoint(), "unet");
  const std::string unet_sha = sha256_file_hex(unet.weight_files.at(0));
  image::GenerationParams gp;
  gp.prompt = r.prompt;
  gp.negative_prompt = r.negative_prompt;
  gp.steps = r.steps;
  gp.sampler = "DDIM";
  gp.cfg_scale = r.guidance;
  gp.width = int(res.output.size(1));
  gp.height = int(res.output.size(0));
  gp.model_hash = unet_sha.substr(0, 10);
  gp.model_name = fs::path(o.model).lexically_normal().filename().string();
  gp.extra.push_back({"Denoising strength", image::a1111_number(r.strength)});
  gp.extra.push_back({"Inversion", image::inversion_method_name(r.method)});
  if (!r.source_prompt.empty()) gp.extra.push_back({"Source prompt", r.source_prompt});
  gp.extra.push_back({"Version", std::string("studio ") + STUDIO_VERSION});
  image::ImageWriteOptions wo;
  wo.parameters = image::a1111_parameters(gp);
  wo.software_version = STUDIO_VERSION;
  wo.digital_source_type = image::kDigitalSourceCompositeWithTrainedAlgorithmicMedia;
  image::write_image(out, res.output, wo);

  if (!o.save_mask.empty()) {
    if (!res.has_mask)
      std::cerr << "studio edit: --mask none: no mask to save (" << o.save_mask << ")\n";
    else
      image::write_image(o.save_mask, res.mask.soft.unsqueeze(-1), {});
  }
  if (!o.sheet.empty()) {
    image::ImageWriteOptions so;
    so.software_version = STUDIO_VERSION;
    image::write_image(o.sheet, image::before_after_sheet(res.photo, res.edited), so);
  }
  if (!o.no_sidecar) {
    nlohmann::json side = res.parameters;
    side["studio_version"] = STUDIO_VERSION;
    side["kind"] = "edit";
    side["file"] = out.filename().string();
    side["model"] = {{"path", fs::absolute(o.model).string()}, {"unet_sha256", unet_sha}};
    side["photo_sha256"] = sha256_file_hex(o.image);
    side["parameters"] = wo.parameters;
    if (!o.preset.empty()) side["preset"] = {{"name", o.preset}, {"tier", o.tier}};
    write_file_atomic(fs::path(out.string() + ".json"), side.dump(2) + "\n");
  }
  std::cout << out.string() << "\n";
  std::cerr << fmt::format(
      "studio edit: {}x{} (worked at {}x{}), {} UNet calls, {:.2f} s{}\n", gp.width, gp.height,
      res.work_width, res.work_height, res.unet_calls, res.seconds,
      res.has_mask
          ? fmt::format(", product mask {} px ({})", res.mask.product_pixels, res.mask.source)
          : std::string(", no product mask"));
  return 0;
}

}  // namespace

void add_edit_command(CLI::App& app, CommandAction* action) {
  auto* cmd = app.add_subcommand(
      "edit", "Edit a product photo by inversion: change the scene, keep the product");
  auto o = std::make_shared<EditOptions>();
  cmd->add_option("--model", o->model, "diffusers pipeline folder (model_index.json)")->required();
  cmd->add_option("--image", o->image, "the product photo")->required();
  cmd->add_option("--source-prompt", o->source_prompt, "what the photo shows (helps inversion)");
  cmd->add_option("--prompt", o->prompt, "the edited scene")->required();
  cmd->add_option("--negative", o->negative, "negative prompt");
  cmd->add_option("--mask", o->mask,
                  "product mask: auto (alpha, else GrabCut), alpha, grabcut, none, or a mask "
                  "image (white = product)");
  cmd->add_option("--grow", o->grow, "grow (> 0) or shrink (< 0) the mask by N pixels");
  cmd->add_option("--feather", o->feather, "feather the mask's edge outward over N pixels (8)");
  cmd->add_option("--inversion", o->inversion,
                  "ddim, negative-prompt (default), null-text (slow, most faithful), direct");
  cmd->add_option("--p2p", o->p2p,
                  "Prompt-to-Prompt attention control: auto, replace (same words swapped), "
                  "refine (words added); default: a free prompt edit");
  cmd->add_option("--cross-replace", o->cross_replace,
                  "--p2p: fraction of steps taking the photo's cross-attention (0.8)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--self-replace", o->self_replace,
                  "--p2p: fraction of steps taking the photo's self-attention (0.4)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--strength", o->strength,
                  "fraction of the denoising steps re-generated, (0, 1] (1)");
  cmd->add_option("--steps", o->steps, "DDIM steps (default: the preset's, else 50)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--guidance", o->guidance, "classifier-free guidance (default: preset, 7.5)");
  cmd->add_option("--preset", o->preset, "channel preset: its size, steps and guidance");
  cmd->add_option("--tier", o->tier, "preset tier (draft, standard, final)");
  cmd->add_option("--presets", o->presets_dir, "presets folder (default: the shipped presets/)");
  cmd->add_option("--size", o->size, "channel size WxH (overrides the preset's)");
  cmd->add_option("--fit", o->fit,
                  "to the channel size: crop, pad or auto (crop if the "
                  "product fits)");
  cmd->add_flag("--no-outpaint", o->no_outpaint,
                "fill padding with the blurred edge instead of the model");
  cmd->add_option("--work-pixels", o->work_pixels,
                  "pixels the model works at (default: its native size squared)");
  cmd->add_option("--device", o->device, "auto, cpu, cuda, cuda:N");
  cmd->add_option("--dtype", o->dtype, "auto (fp32 CPU, fp16 CUDA), fp32, fp16, bf16");
  cmd->add_option("--out", o->out, "the edited image (.png .jpg .webp .tif)")->required();
  cmd->add_option("--save-mask", o->save_mask, "also write the product mask (soft, grey)");
  cmd->add_option("--sheet", o->sheet, "also write a before/after sheet");
  cmd->add_flag("--no-sidecar", o->no_sidecar, "do not write <out>.json");
  cmd->callback([action, o] { *action = [o] { return run_edit(*o); }; });
}

}  // namespace studio
#endif  // STUDIO_HAVE_IMAGE
