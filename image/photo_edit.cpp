#include "image/photo_edit.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "image/image_io.h"
#include "image/prompt_to_prompt.h"

namespace studio::image {

namespace {

namespace fs = std::filesystem;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The working size for a photo of w x h: about `pixels` pixels, the photo's aspect, multiples of f.
std::pair<int, int> work_size(int w, int h, int64_t pixels, int f) {
  const double scale = std::sqrt(double(pixels) / (double(w) * double(h)));
  auto snap = [f](double v) { return std::max(f, int(std::lround(v / f)) * f); };
  return {snap(w * scale), snap(h * scale)};
}

// [H, W] mask -> [h, w] latent keep-mask: a latent cell is kept when any pixel of its block is
// (conservative, so no product pixel is left to the edit).
at::Tensor latent_keep(const at::Tensor& mask_hw, int width, int height, int f) {
  at::Tensor m = mask_hw;
  if (m.size(0) != height || m.size(1) != width)
    m = resize_image(m.unsqueeze(-1), width, height, ResizeFilter::kBilinear).squeeze(-1);
  m = (m > 0).to(at::kFloat).unsqueeze(0).unsqueeze(0);
  return at::max_pool2d(m, {f, f}, {f, f}).squeeze(0).squeeze(0);
}

// The request's progress callback as the inversion's and the denoising loops' callbacks.
InversionCallback inversion_progress(const PhotoEditRequest& r, const std::string& prefix) {
  return [&r, prefix](const InversionProgress& p) {
    if (r.on_progress) r.on_progress(prefix + p.phase, p.step, p.total);
    return true;
  };
}
StepCallback step_progress(const PhotoEditRequest& r, const std::string& phase) {
  return [&r, phase](const StepInfo& s) {
    if (r.on_progress) r.on_progress(phase, s.step, s.total);
    return true;
  };
}

ProductMask make_mask(const PhotoEditRequest& r, const Image& photo, const std::string& name) {
  const std::string& m = r.mask;
  if (m == "alpha") return mask_from_alpha(photo, name, r.mask_options);
  if (m == "grabcut") return mask_from_grabcut(photo, name, r.mask_options);
  if (m == "auto") {
    if (photo.has_alpha) {
      const at::Tensor a = photo.pixels.select(-1, 3);
      if (a.min().item<float>() < 1.0f) return mask_from_alpha(photo, name, r.mask_options);
    }
    return mask_from_grabcut(photo, name, r.mask_options);
  }
  return mask_from_file(m, photo, name, r.mask_options);
}

}  // namespace

PhotoEditResult edit_photo(SdPipeline& pipe, const PhotoEditRequest& r) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string name = r.photo.string();
  if (r.prompt.empty())
    throw UsageError("no edited prompt", "--prompt", "say what the edited photo should show");
  if (!(r.strength > 0 && r.strength <= 1))
    throw UsageError("strength must be in (0, 1]", "--strength");
  if (r.steps < 1) throw UsageError("steps must be at least 1", "--steps");
  if ((r.channel_width > 0) != (r.channel_height > 0))
    throw UsageError("a channel size needs both width and height", "--size");

  ImageReadOptions ro;
  ro.max_pixels = r.max_photo_pixels;
  ro.alpha = AlphaMode::kKeep;
  const Image photo = read_image(r.photo, ro);

  PhotoEditResult out;
  out.photo = photo.pixels.narrow(-1, 0, 3).contiguous();
  out.has_mask = r.mask != "none";
  if (out.has_mask) out.mask = make_mask(r, photo, name);

  // Inversion at the working size.
  const int f = pipe.vae_scale_factor();
  const int64_t pixels =
      r.work_pixels > 0 ? r.work_pixels : int64_t(pipe.default_size()) * pipe.default_size();
  const auto [ww, wh] = work_size(photo.width, photo.height, pixels, f);
  out.work_width = ww;
  out.work_height = wh;
  const at::Tensor work_rgb = resize_image(out.photo, ww, wh);
  const at::Tensor x = preprocess_for_inversion(work_rgb, f);

  InversionOptions io;
  io.prompt = r.source_prompt;
  io.negative_prompt = r.negative_prompt;
  io.steps = r.steps;
  io.method = r.method;
  io.guidance = r.guidance;
  io.on_progress = inversion_progress(r, "");
  const Inversion inv = invert(pipe, x, io);
  out.unet_calls += inv.unet_calls;

  at::Tensor keep;
  if (out.has_mask) keep = latent_keep(out.mask.soft, ww, wh, f);
  Regeneration regen;
  if (r.p2p.empty()) {
    RegenerateOptions rg;
    rg.prompt = r.prompt;
    rg.guidance = r.guidance;
    rg.strength = r.strength;
    rg.keep_mask = keep;
    rg.on_step = step_progress(r, "edit");
    regen = regenerate(pipe, inv, rg);
  } else {
    PromptToPromptOptions po;
    po.prompt = r.prompt;
    po.mode = parse_prompt_to_prompt_mode(r.p2p);
    po.guidance = r.guidance;
    po.strength = r.strength;
    po.cross_replace_steps = r.cross_replace;
    po.self_replace_steps = r.self_replace;
    po.keep_mask = keep;
    po.on_step = step_progress(r, "edit");
    regen = prompt_to_prompt(pipe, inv, po);
  }
  out.unet_calls += regen.unet_calls;

  // Back to the photo's resolution; the product's own pixels over it.
  at::Tensor edited = regen.images[0];
  if (edited.size(0) != photo.height || edited.size(1) != photo.width)
    edited = resize_image(edited, photo.width, photo.height);
  out.edited = out.has_mask ? composite(out.photo, edited, out.mask.soft) : edited;
  out.output = out.edited;

  bool outpainted = false;
  if (r.channel_width > 0) {
    out.fit = fit_to_channel(out.edited, out.has_mask ? out.mask.hard : at::Tensor(),
                             r.channel_width, r.channel_height, r.fit);
    out.fitted = true;
    out.output = out.fit.pixels;
    const bool has_fill = out.fit.fill.defined() && out.fit.fill.max().item<float>() > 0;
    outpainted = has_fill && r.outpaint;
    if (outpainted) {
      // Outpaint the padding: invert the padded picture, regenerate with everything but the new
      // pixels kept in latent space, then put the kept pixels back exactly (feathered seam).
      const int cw = r.channel_width, ch = r.channel_height;
      const auto [ow, oh] = work_size(cw, ch, pixels, f);
      const at::Tensor fill = out.fit.fill;
      InversionOptions oo;
      oo.prompt = r.prompt;
      oo.negative_prompt = r.negative_prompt;
      oo.steps = r.steps;
      oo.method = InversionMethod::kNegativePrompt;
      oo.guidance = r.guidance;
      oo.on_progress = inversion_progress(r, "outpaint-");
      const Inversion pinv =
          invert(pipe, preprocess_for_inversion(resize_image(out.output, ow, oh), f), oo);
      RegenerateOptions pg;
      pg.guidance = r.guidance;
      pg.keep_mask = 1 - latent_keep(fill, ow, oh, f);
      pg.on_step = step_progress(r, "outpaint");
      const Regeneration pr = regenerate(pipe, pinv, pg);
      out.unet_calls += pinv.unet_calls + pr.unet_calls;
      at::Tensor painted = pr.images[0];
      if (painted.size(0) != ch || painted.size(1) != cw) painted = resize_image(painted, cw, ch);
      ProductMaskOptions seam;
      seam.feather = std::max(2, std::min(cw, ch) / 64);
      const ProductMask kept = refine_mask(1 - fill, "the channel canvas", seam);
      out.output = composite(out.output, painted, kept.soft);
    }
  }

  out.seconds = seconds_since(t0);
  out.parameters = {
      {"photo", fs::absolute(r.photo).string()},
      {"photo_size", {photo.width, photo.height}},
      {"source_prompt", r.source_prompt},
      {"prompt", r.prompt},
      {"negative_prompt", r.negative_prompt},
      {"inversion", inversion_method_name(r.method)},
      {"steps", r.steps},
      {"guidance", r.guidance},
      {"strength", r.strength},
      {"work_size", {ww, wh}},
      {"mask",
       {{"mode", r.mask},
        {"source", out.has_mask ? out.mask.source : "none"},
        {"product_pixels", out.has_mask ? out.mask.product_pixels : 0},
        {"grow", r.mask_options.grow},
        {"feather", r.mask_options.feather}}},
      {"unet_calls", out.unet_calls},
      {"seconds", out.seconds},
  };
  if (!r.p2p.empty())
    out.parameters["prompt_to_prompt"] = {
        {"mode", r.p2p}, {"cross_replace", r.cross_replace}, {"self_replace", r.self_replace}};
  if (out.fitted)
    out.parameters["channel"] = {{"size", {r.channel_width, r.channel_height}},
                                 {"fit", fit_mode_name(out.fit.mode)},
                                 {"fell_back", out.fit.fell_back},
                                 {"outpainted", outpainted},
                                 {"description", out.fit.description}};
  return out;
}

at::Tensor before_after_sheet(const at::Tensor& before, const at::Tensor& after) {
  const int64_t h = std::max(before.size(0), after.size(0));
  auto to_height = [h](const at::Tensor& x) {
    if (x.size(0) == h) return x.narrow(-1, 0, 3);
    const int w = int(std::lround(double(x.size(1)) * double(h) / double(x.size(0))));
    return resize_image(x.narrow(-1, 0, 3).contiguous(), std::max(1, w), int(h));
  };
  const at::Tensor a = to_height(before), b = to_height(after);
  const int64_t gap = std::max<int64_t>(4, h / 64);
  const at::Tensor sep = at::ones({h, gap, 3}, a.options());
  return at::cat({a, sep, b}, 1).contiguous();
}

}  // namespace studio::image
