// Image decoding without libtorch: any format OpenImageIO reads (libwebp for WebP) into a buffer
// of the file's samples, refused from its header when it has too many pixels. read_image
// (image_io.h) turns the buffer into a tensor; the fuzz target (tests/fuzz) calls this directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/limits.h"
#include "image/image_metadata.h"

namespace studio::image {

enum class AlphaMode {
  kKeep,  // 4 channels when the file has alpha (straight, not premultiplied)
  kDrop,  // RGB as stored, alpha ignored (PIL's convert("RGB"), what diffusers' load_image does)
  kComposite,  // RGB composited over a grey matte (ImageReadOptions::matte)
};

struct ImageReadOptions {
  // Images with more pixels than this are refused from their header, before decoding (a 100 kB
  // PNG can claim 100000 x 100000 pixels and take 40 GB to decode).
  // Default: STUDIO_LIMIT_IMAGE_PIXELS (core/limits.h, 64 Mpx unless set).
  int64_t max_pixels = resource_limits().image_pixels;
  AlphaMode alpha = AlphaMode::kKeep;
  float matte = 1.0f;             // kComposite: background grey level in [0, 1]
  bool apply_orientation = true;  // rotate/flip by the EXIF orientation
  // Convert colours from an embedded non-sRGB ICC profile (Adobe RGB, Display P3, ...) to sRGB
  // (LittleCMS, perceptual intent), as a colour-managed viewer shows them. PIL, and so diffusers,
  // ignore ICC profiles: turn this off to get their values for such files.
  bool convert_to_srgb = true;
};

enum class SampleType { kUint8, kUint16, kFloat };
std::size_t sample_size(SampleType t);  // bytes: 1, 2, 4

// The samples of an image as decoded, before normalisation (read_image does that on tensors).
struct DecodedImage {
  int64_t height = 0, width = 0;
  int channels = 0;  // N: the file's first N channels (up to the last colour or alpha one)
  SampleType sample = SampleType::kFloat;
  std::vector<uint8_t> bytes;  // [height, width, channels] samples of `sample`, row-major
  std::vector<int> colour;     // 3 channel indices (R, G, B) or 1 (grey)
  int alpha = -1;              // alpha channel index, -1 for none
  bool associated_alpha = false;
  bool linear = false;  // linear light (EXR, HDR): read_image encodes it to sRGB
  std::string icc;      // embedded ICC profile
  ImageMetadata metadata;
};

// Decodes a file (what read_image does before it makes a tensor). Throws IoError (missing or
// unreadable file) or FormatError (corrupt, truncated, unsupported, or over max_pixels, checked
// from the header before any pixel buffer is allocated); the message names the file.
DecodedImage decode_image(const std::filesystem::path& path, const ImageReadOptions& options = {});

namespace detail {
extern const char* const kBadImageHint;
std::string lowercase(std::string s);
// OpenImageIO's messages on one line.
std::string one_line(const std::string& s);
}  // namespace detail

}  // namespace studio::image
