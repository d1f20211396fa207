// What `studio video generate` and `studio video edit` share: model hashes for sidecars, the
// working size of a clip, fitting pictures and masks to it, and the file's metadata.
#pragma once

#include <ATen/Tensor.h>

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace studio::video_cli {

// "WxH" → width, height; UsageError naming `option` otherwise. "" leaves them 0.
void parse_size(const std::string& text, const std::string& option, int* width, int* height);
// The working size for a picture of src_w x src_h: the long side `native` pixels, the aspect kept,
// both sides multiples of `multiple` (at least `multiple`).
void fit_size(int src_w, int src_h, int native, int multiple, int* width, int* height);
// [H, W, C] in [0, 1] → [height, width, C]: centre-cropped to the target's aspect, then resized.
at::Tensor cover(const at::Tensor& hwc01, int width, int height);

// A product mask image (white = product; a cut-out's alpha when it has one) drawn over the
// picture or clip it belongs to (ref_w x ref_h; same aspect required, UsageError otherwise),
// brought to the working size as that reference is: centre-cropped then resized (crop, pictures) or
// resized (clips). [height, width] soft mask in [0, 1], 1 = keep, refined with grow/feather.
at::Tensor load_keep_mask(const std::filesystem::path& file, int ref_w, int ref_h, int width,
                          int height, bool crop, int grow, int feather);

// The sidecar's "models" (folders and weight hashes) and "output" (file, encoder, size, hash).
nlohmann::json models_json(const std::string& sd_dir, const std::string& motion_dir);
nlohmann::json output_json(const std::string& file, const std::string& encoder);

// The AI-generated marking and parameters every clip studio makes carries.
std::map<std::string, std::string> clip_metadata(const std::string& title,
                                                 const std::string& parameters,
                                                 const std::string& what);

}  // namespace studio::video_cli
