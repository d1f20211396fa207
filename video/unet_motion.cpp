#include "video/unet_motion.h"

#include <torch/torch.h>

#include "core/checkpoint.h"
#include "core/error.h"

namespace studio::video {

UNetMotionModelImpl::UNetMotionModelImpl(image::UNet2DConditionModel unet, MotionAdapter adapter)
    : unet_(std::move(unet)), adapter_(std::move(adapter)) {
  const auto& u = unet_->config();
  const auto& a = adapter_->config();
  const std::string where = "UNetMotionModel";
  if (u.block_out_channels != a.block_out_channels)
    throw ConfigError("the motion adapter's block_out_channels differ from the UNet's", where,
                      "use an adapter made for this UNet family (e.g. SD 1.5 adapters for SD 1.x)");
  for (std::size_t i = 0; i < u.layers_per_block.size(); ++i)
    if (u.layers_per_block[i] != a.motion_layers_per_block)
      throw ConfigError("the motion adapter has " + std::to_string(a.motion_layers_per_block) +
                            " motion layers per block, the UNet's block " + std::to_string(i) +
                            " has " + std::to_string(u.layers_per_block[i]) + " layers",
                        where);
  if (a.use_motion_mid_block) {
    if (!unet_->has_cross_attention_mid_block())
      throw ConfigError(
          "the adapter has a motion mid block but the UNet's mid block is not "
          "UNetMidBlock2DCrossAttn",
          where);
    if (a.motion_mid_block_layers_per_block != 1)
      throw ConfigError("motion_mid_block_layers_per_block must be 1 (one mid-block attention)",
                        where);
  }
  register_module("unet", unet_);
  register_module("motion_adapter", adapter_);
}

at::Tensor UNetMotionModelImpl::forward(const at::Tensor& sample, double timestep,
                                        const at::Tensor& encoder_hidden_states) {
  return forward(sample, at::full({1}, timestep, sample.options().dtype(at::kDouble)),
                 encoder_hidden_states);
}

at::Tensor UNetMotionModelImpl::forward(const at::Tensor& sample, const at::Tensor& timestep,
                                        const at::Tensor& encoder_hidden_states) {
  if (sample.dim() != 5)
    throw UsageError("sample must be video latents [B, C, F, H, W]", "UNetMotionModel");
  const int64_t b = sample.size(0), c = sample.size(1), f = sample.size(2);
  if (!encoder_hidden_states.defined() || encoder_hidden_states.dim() != 3 ||
      encoder_hidden_states.size(0) != b)
    throw UsageError("encoder_hidden_states must be [B, L, D] with B = " + std::to_string(b),
                     "UNetMotionModel");
  const at::Tensor x =
      sample.permute({0, 2, 1, 3, 4}).reshape({b * f, c, sample.size(3), sample.size(4)});
  const at::Tensor context = encoder_hidden_states.repeat_interleave(f, 0);
  at::Tensor t = timestep;
  if (t.dim() == 1 && t.size(0) == b && b > 1) t = t.repeat_interleave(f, 0);

  image::UNetExtraInputs extra;
  extra.after_layer = [this, f](const image::UNetLayerSite& site, const at::Tensor& h) {
    switch (site.part) {
      case image::UNetPart::kDown:
        return adapter_->down(site.block, site.layer)->forward(h, f);
      case image::UNetPart::kUp:
        return adapter_->up(site.block, site.layer)->forward(h, f);
      case image::UNetPart::kMid:
        if (MotionModule* m = adapter_->mid(site.layer)) return (*m)->forward(h, f);
        return h;
    }
    return h;
  };
  const at::Tensor out = unet_->forward(x, t, context, extra);
  return out.reshape({b, f, out.size(1), out.size(2), out.size(3)}).permute({0, 2, 1, 3, 4});
}

UNetMotionModel load_unet_motion(const std::filesystem::path& sd_unet_dir,
                                 const std::filesystem::path& adapter_dir) {
  const CheckpointInfo info = inspect_checkpoint(sd_unet_dir);
  if (info.components.size() != 1)
    throw ConfigError("expected a diffusers unet/ folder", sd_unet_dir.string(),
                      "point at the unet/ folder of a Stable Diffusion pipeline");
  return UNetMotionModel(image::load_unet(info.components.front()),
                         load_motion_adapter(adapter_dir));
}

}  // namespace studio::video
