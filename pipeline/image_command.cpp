// `studio image`: txt2img / img2img with a Stable-Diffusion-family pipeline folder. Writes each
// image with its generation parameters (A1111 `parameters`, IPTC AI-generated marker) and a
// sidecar JSON with everything needed to reproduce it.
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <regex>

#include "core/atomic_file.h"
#include "core/checkpoint.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/json_file.h"
#include "core/scheduler.h"
#include "image/image_io.h"
#include "image/sd_pipeline.h"
#include "pipeline/commands.h"
#include "pipeline/progress.h"

namespace fs = std::filesystem;

namespace studio {

namespace {

struct ImageOptions {
  std::string model;
  std::string prompt;
  std::string negative;
  uint64_t seed = 0;
  int steps = 25;
  std::string scheduler;
  std::string scheduler_config;
  double guidance = 7.5;
  std::string size;
  std::string init;
  double strength = 0.8;
  int num_images = 1;
  double eta = 0.0;
  int clip_skip = 0;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string variant;
  std::string out;
  bool no_sidecar = false;
};

// AUTOMATIC1111's sampler name for a scheduler, so tools that read `parameters` show it.
std::pair<std::string, std::string> a1111_sampler(const Scheduler& s) {
  const std::string c = s.class_name();
  const bool karras = s.config().value("use_karras_sigmas", false);
  std::string name = c;
  if (c == "DDIMScheduler") name = "DDIM";
  else if (c == "DDPMScheduler") name = "DDPM";
  else if (c == "EulerDiscreteScheduler") name = "Euler";
  else if (c == "EulerAncestralDiscreteScheduler") name = "Euler a";
  else if (c == "DPMSolverMultistepScheduler")
    name = s.config().value("solver_order", 2) == 1 ? "DPM++ 1S" : "DPM++ 2M";
  return {name, karras ? "Karras" : ""};
}

void parse_size(const std::string& s, int* w, int* h) {
  std::smatch m;
  static const std::regex re("^(\\d+)(?:x(\\d+))?$");
  if (!std::regex_match(s, m, re))
    throw UsageError("invalid size '" + s + "'", "--size", "use WxH, e.g. 512x512, or one number");
  *w = std::stoi(m[1]);
  *h = m[2].matched ? std::stoi(m[2].str()) : *w;
}

fs::path numbered(const fs::path& out, int i, int n) {
  if (n == 1) return out;
  return out.parent_path() /
         (out.stem().string() + fmt::format("-{:0{}}", i + 1, n >= 100 ? 3 : 2) +
          out.extension().string());
}

int run_image(const ImageOptions& o) {
  if (o.out.empty()) throw UsageError("no output path", "--out");
  const fs::path out(o.out);
  const std::string ext = out.extension().string();
  if (ext != ".png" && ext != ".jpg" && ext != ".jpeg" && ext != ".webp" && ext != ".tif" &&
      ext != ".tiff" && ext != ".exr")
    throw UsageError("unsupported output format '" + ext + "'", "--out",
                     "use .png, .jpg, .webp, .tif or .exr");
  if (out.has_parent_path() && !fs::is_directory(out.parent_path()))
    throw IoError("output folder does not exist", out.parent_path().string(), "create it first");

  image::GenerateRequest r;
  r.prompt = o.prompt;
  r.negative_prompt = o.negative;
  r.seed = o.seed;
  r.steps = o.steps;
  r.guidance = o.guidance;
  r.num_images = o.num_images;
  r.eta = o.eta;
  r.clip_skip = o.clip_skip;
  r.scheduler = o.scheduler;
  if (!o.scheduler_config.empty()) {
    fs::path p(o.scheduler_config);
    if (fs::is_directory(p)) p /= "scheduler_config.json";
    r.scheduler_config = read_json_file(p);
    make_scheduler(*r.scheduler_config, p.string());  // validate before loading models
  } else if (!o.scheduler.empty()) {
    make_scheduler(o.scheduler, nlohmann::json::object(), "--scheduler");
  }
  if (!o.size.empty()) parse_size(o.size, &r.width, &r.height);

  std::optional<image::Image> init;
  if (!o.init.empty()) {
    image::ImageReadOptions ro;
    ro.alpha = image::AlphaMode::kDrop;
    init = image::read_image(o.init, ro);
  }

  std::cerr << "studio image: loading " << o.model << "\n";
  auto pipe = image::SdPipeline::load(o.model, o.device, o.dtype, o.variant);
  if (init) {
    at::Tensor px = init->pixels;
    if (r.width > 0) {
      px = image::resize_image(px, r.width, r.height);
    } else {
      px = image::resize_to_multiple_of_8(px, pipe->vae_scale_factor());
      r.width = static_cast<int>(px.size(1));
      r.height = static_cast<int>(px.size(0));
    }
    r.init_image = image::to_model_input(px);
    r.strength = o.strength;
  }

  const auto sched = pipe->make_request_scheduler(r);
  ProgressBar bar("denoising");
  r.on_step = [&bar](const image::StepInfo& s) {
    bar.update(s.step, s.total, fmt::format("t={:g}", s.timestep));
    return true;
  };
  const auto t0 = std::chrono::steady_clock::now();
  const image::GenerateResult res = pipe->generate(r);
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const auto& unet = find_component(pipe->checkpoint(), "unet");
  const std::string unet_sha = sha256_file_hex(unet.weight_files.at(0));
  const auto [sampler, schedule_type] = a1111_sampler(*sched);

  image::GenerationParams gp;
  gp.prompt = r.prompt;
  gp.negative_prompt = r.negative_prompt;
  gp.steps = r.steps;
  gp.sampler = sampler;
  gp.schedule_type = schedule_type;
  gp.cfg_scale = r.guidance;
  gp.width = static_cast<int>(res.images.size(2));
  gp.height = static_cast<int>(res.images.size(1));
  gp.model_hash = unet_sha.substr(0, 10);
  gp.model_name = fs::path(o.model).lexically_normal().filename().string();
  if (gp.model_name.empty()) gp.model_name = fs::path(o.model).parent_path().filename().string();
  if (init) gp.extra.push_back({"Denoising strength", image::a1111_number(r.strength)});
  if (r.clip_skip > 0) gp.extra.push_back({"Clip skip", std::to_string(r.clip_skip + 1)});
  gp.extra.push_back({"Version", std::string("studio ") + STUDIO_VERSION});

  // The images of one call share one generator (one randn of the whole batch, as diffusers
  // draws it): an image is reproduced by its seed, batch size and position.
  gp.seed = r.seed;
  if (r.num_images > 1) gp.extra.push_back({"Batch size", std::to_string(r.num_images)});
  for (int i = 0; i < r.num_images; ++i) {
    const fs::path file = numbered(out, i, r.num_images);
    image::GenerationParams gpi = gp;
    if (r.num_images > 1) gpi.extra.push_back({"Batch pos", std::to_string(i)});
    image::ImageWriteOptions wo;
    wo.parameters = image::a1111_parameters(gpi);
    wo.software_version = STUDIO_VERSION;
    wo.digital_source_type = init ? image::kDigitalSourceCompositeWithTrainedAlgorithmicMedia
                                  : image::kDigitalSourceTrainedAlgorithmicMedia;
    image::write_image(file, res.images[i], wo);
    if (!o.no_sidecar) {
      nlohmann::json side{
          {"studio_version", STUDIO_VERSION},
          {"kind", init ? "img2img" : "txt2img"},
          {"file", file.filename().string()},
          {"model", {{"path", fs::absolute(o.model).string()},
                     {"unet_sha256", unet_sha},
                     {"variant", o.variant}}},
          {"prompt", r.prompt},
          {"negative_prompt", r.negative_prompt},
          {"seed", r.seed},
          {"batch_index", i},
          {"num_images", r.num_images},
          {"steps", r.steps},
          {"guidance", r.guidance},
          {"eta", r.eta},
          {"clip_skip", r.clip_skip},
          {"width", gp.width},
          {"height", gp.height},
          {"scheduler", sched->config()},
          {"timesteps", res.timesteps},
          {"unet_calls", res.unet_calls},
          {"device", o.device},
          {"dtype", o.dtype},
          {"seconds", seconds},
          {"parameters", wo.parameters},
      };
      if (init) {
        side["init_image"] = fs::absolute(o.init).string();
        side["strength"] = r.strength;
      }
      write_file_atomic(fs::path(file.string() + ".json"), side.dump(2) + "\n");
    }
    std::cout << file.string() << "\n";
  }
  std::cerr << fmt::format("studio image: {} image(s), {} UNet calls, {:.2f} s\n", r.num_images,
                           res.unet_calls, seconds);
  return 0;
}

}  // namespace

void add_image_command(CLI::App& app, CommandAction* action) {
  auto* cmd = app.add_subcommand(
      "image", "Generate images (txt2img, or img2img with --init) with a Stable Diffusion model");
  auto o = std::make_shared<ImageOptions>();
  cmd->add_option("--model", o->model, "diffusers pipeline folder (model_index.json)")->required();
  cmd->add_option("--prompt", o->prompt, "what to generate")->required();
  cmd->add_option("--negative", o->negative, "negative prompt");
  cmd->add_option("--seed", o->seed, "random seed (same seed, same image as diffusers)");
  cmd->add_option("--steps", o->steps, "denoising steps")->check(CLI::Range(1, 1000));
  auto* sn = cmd->add_option("--scheduler", o->scheduler,
                             "ddim, ddpm, euler, euler_a, dpmpp_2m, dpmpp_2m_karras (or a class "
                             "name), over the model's scheduler config");
  auto* sc = cmd->add_option("--scheduler-config", o->scheduler_config,
                             "a diffusers scheduler_config.json (its _class_name picks the "
                             "scheduler; every option is honoured)");
  sn->excludes(sc);
  cmd->add_option("--guidance", o->guidance, "classifier-free guidance scale (<= 1: off)");
  cmd->add_option("--size", o->size, "WxH (default: the model's native size)");
  cmd->add_option("--init", o->init, "init image for img2img");
  cmd->add_option("--strength", o->strength, "img2img strength in [0, 1]")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("-n,--num-images", o->num_images, "images per prompt")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--eta", o->eta, "DDIM eta (0 = deterministic)");
  cmd->add_option("--clip-skip", o->clip_skip, "skip the last N CLIP layers");
  cmd->add_option("--device", o->device, "auto, cpu, cuda, cuda:N");
  cmd->add_option("--dtype", o->dtype, "auto (fp32 CPU, fp16 CUDA), fp32, fp16, bf16");
  cmd->add_option("--variant", o->variant, "weights variant, e.g. fp16");
  cmd->add_option("--out", o->out, "output file (.png .jpg .webp .tif .exr); -n > 1 numbers it")
      ->required();
  cmd->add_flag("--no-sidecar", o->no_sidecar, "do not write <out>.json");
  cmd->callback([action, o] { *action = [o] { return run_image(*o); }; });
}

}  // namespace studio
