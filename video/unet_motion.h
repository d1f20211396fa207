// UNetMotionModel (diffusers 0.29 UNetMotionModel.from_unet2d): an image UNet2DConditionModel with
// its weights unchanged plus an AnimateDiff MotionAdapter's modules after every resnet(+attention)
// of each down/up block and after the mid block's attention; video latents [B, C, F, H, W].
#pragma once

#include <ATen/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <filesystem>

#include "image/unet.h"
#include "video/motion_module.h"

namespace studio::video {

class UNetMotionModelImpl : public torch::nn::Module {
 public:
  // ConfigError when the adapter does not fit the UNet (channels, layers per block, mid block).
  UNetMotionModelImpl(image::UNet2DConditionModel unet, MotionAdapter adapter);

  // sample [B, C, F, H, W]; timestep a 0-d, [1] or [B] tensor; encoder_hidden_states [B, L, D]
  // (repeat_interleave'd over the F frames inside). Frames are folded into the batch b-major
  // ([B·F, C, H, W], row b·F + f). Returns the prediction [B, out, F, H, W].
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep,
                     const at::Tensor& encoder_hidden_states);
  at::Tensor forward(const at::Tensor& sample, double timestep,
                     const at::Tensor& encoder_hidden_states);

  image::UNet2DConditionModel& unet() { return unet_; }
  MotionAdapter& adapter() { return adapter_; }

 private:
  image::UNet2DConditionModel unet_;
  MotionAdapter adapter_;
};
TORCH_MODULE(UNetMotionModel);

// sd_unet_dir: a diffusers unet/ folder (UNet2DConditionModel); adapter_dir: a MotionAdapter
// folder. Both load strictly; fp32 on the CPU.
UNetMotionModel load_unet_motion(const std::filesystem::path& sd_unet_dir,
                                 const std::filesystem::path& adapter_dir);

}  // namespace studio::video
