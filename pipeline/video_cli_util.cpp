#include "pipeline/video_cli_util.h"

#include <ATen/ATen.h>

#include <cmath>
#include <regex>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/hash.h"
#include "image/edit_mask.h"
#include "image/image_io.h"

namespace studio::video_cli {

namespace fs = std::filesystem;

namespace {

// sha256 of every weight file of a folder (one entry per shard).
nlohmann::json weight_hashes(const fs::path& dir) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& f : find_weight_files(dir)) files[f.filename().string()] = sha256_file_hex(f);
  return files;
}

fs::path motion_weights_dir(const fs::path& motion) {
  return fs::exists(motion / "motion_adapter") ? motion / "motion_adapter" : motion;
}

}  // namespace

void parse_size(const std::string& text, const std::string& option, int* width, int* height) {
  if (text.empty()) return;
  static const std::regex re("^(\\d{1,5})x(\\d{1,5})$");
  std::smatch m;
  if (!std::regex_match(text, m, re) || std::stoi(m[1]) == 0 || std::stoi(m[2]) == 0)
    throw UsageError(option + " must be WxH, e.g. 512x512, not '" + text + "'", option);
  *width = std::stoi(m[1]);
  *height = std::stoi(m[2]);
}

void fit_size(int src_w, int src_h, int native, int multiple, int* width, int* height) {
  const double scale = double(native) / double(std::max(src_w, src_h));
  const auto round_to = [&](double v) {
    return std::max(multiple, static_cast<int>(std::lround(v / multiple)) * multiple);
  };
  *width = round_to(src_w * scale);
  *height = round_to(src_h * scale);
}

at::Tensor cover(const at::Tensor& hwc01, int width, int height) {
  const int64_t h = hwc01.size(0), w = hwc01.size(1);
  at::Tensor img = hwc01;
  // Crop the source to the target's aspect (centred), then resize.
  const double target = double(width) / double(height), have = double(w) / double(h);
  if (std::abs(have - target) > 1e-3) {
    if (have > target) {
      const int64_t cw = std::max<int64_t>(1, std::llround(double(h) * target));
      img = img.slice(1, (w - cw) / 2, (w - cw) / 2 + cw);
    } else {
      const int64_t ch = std::max<int64_t>(1, std::llround(double(w) / target));
      img = img.slice(0, (h - ch) / 2, (h - ch) / 2 + ch);
    }
  }
  if (img.size(0) == height && img.size(1) == width) return img.contiguous();
  return image::resize_image(img.contiguous(), width, height);
}

at::Tensor load_keep_mask(const fs::path& file, int ref_w, int ref_h, int width, int height,
                          bool crop, int grow, int feather) {
  const image::Image m = image::read_image(file, image::mask_read_options());  // errors name it
  const double have = double(m.width) / double(m.height), want = double(ref_w) / double(ref_h);
  if (std::abs(have - want) > 0.02 * want)
    throw UsageError("the mask is " + std::to_string(m.width) + "x" + std::to_string(m.height) +
                         ", which does not have the aspect of the picture it masks (" +
                         std::to_string(ref_w) + "x" + std::to_string(ref_h) + ")",
                     file.string(), "draw the mask over the picture (or a frame of the clip)");
  const at::Tensor hw1 = image::mask_level(m.pixels).unsqueeze(2).contiguous();
  const at::Tensor sized =
      (crop ? cover(hw1, width, height)
            : image::resize_image(hw1, width, height, image::ResizeFilter::kBilinear))
          .squeeze(2);
  image::ProductMaskOptions opts;
  opts.grow = grow;
  opts.feather = feather;
  return image::refine_mask(sized >= 0.5, "mask file " + file.string(), opts).soft;
}

nlohmann::json models_json(const std::string& sd_dir, const std::string& motion_dir) {
  return {
      {"sd", {{"dir", sd_dir}, {"unet_sha256", weight_hashes(fs::path(sd_dir) / "unet")}}},
      {"motion", {{"dir", motion_dir}, {"sha256", weight_hashes(motion_weights_dir(motion_dir))}}}};
}

nlohmann::json output_json(const std::string& file, const std::string& encoder) {
  return {{"file", file},
          {"encoder", encoder},
          {"bytes", fs::file_size(file)},
          {"sha256", sha256_file_hex(file)}};
}

std::map<std::string, std::string> clip_metadata(const std::string& title,
                                                 const std::string& parameters,
                                                 const std::string& what) {
  return {{"title", title},
          {"comment", parameters},
          {"description", what},
          {"ai_generated", "true"},
          {"digital_source_type",
           "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}};
}

}  // namespace studio::video_cli
