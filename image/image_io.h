// Image files in and out: any format OpenImageIO reads (PNG, JPEG, TIFF, EXR, WebP, BMP, ...) to
// float32 HWC tensors in [0, 1] upright as a viewer shows them, and PNG / JPEG / WebP / TIFF / EXR
// out, written atomically with generation parameters and the IPTC "AI-generated" marker. Plus the
// conversions between those tensors and the diffusion models' NCHW [-1, 1] (as diffusers does).
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "image/image_decode.h"
#include "image/image_metadata.h"

namespace studio::image {

struct Image {
  at::Tensor pixels;          // [H, W, C] float32 on the CPU in [0, 1]; C = 3 (RGB) or 4 (RGBA)
  int width = 0, height = 0;  // of `pixels` (after orientation)
  int channels = 0;           // of `pixels`
  bool has_alpha = false;     // `pixels` has an alpha channel (C == 4)
  bool file_has_alpha = false;
  int bit_depth = 0;           // bits per sample in the file (8, 16, 32; half = 16)
  std::string converted_from;  // description of the ICC profile converted to sRGB, if any
  ImageMetadata metadata;      // what the file carries (format, parameters, XMP, ...)
};

// Reads an image. Grey is expanded to RGB; 16-bit, half and float inputs are scaled to [0, 1]
// (linear EXR/HDR values are encoded to sRGB, then clamped); 8-bit values are v / 255 exactly as
// numpy's astype(float32) / 255 (for sRGB files, or with convert_to_srgb off). Throws IoError
// (missing or unreadable file) or FormatError (corrupt, truncated, unsupported, or over
// max_pixels); the message names the file and says what the decoder reported.
Image read_image(const std::filesystem::path& path, const ImageReadOptions& options = {});

struct ImageWriteOptions {
  // Bits per sample: 0 = the format's default (8; EXR: 16 = half). PNG and TIFF: 8 or 16;
  // JPEG and WebP: 8; EXR: 16 (half) or 32 (float).
  int bit_depth = 0;
  int jpeg_quality = 95;  // 1..100
  int webp_quality = 95;  // 1..100
  bool webp_lossless = false;
  int png_compression = 6;  // zlib level 0..9
  float matte = 1.0f;       // JPEG has no alpha: RGBA is composited over this grey level
  // Generation parameters as AUTOMATIC1111's infotext (usually a1111_parameters(params)):
  // PNG tEXt (iTXt when not Latin-1) `parameters`; JPEG/WebP/TIFF EXIF UserComment (and TIFF
  // ImageDescription); EXR string attribute `parameters`. Empty: not written.
  std::string parameters;
  // XMP Iptc4xmpExt:DigitalSourceType; empty: not written.
  std::string digital_source_type = kDigitalSourceTrainedAlgorithmicMedia;
  // Software = "studio <software_version>" (and XMP xmp:CreatorTool).
  std::string software_version;
};

// Writes [H, W, C] (C = 1, 3 or 4; also [1, H, W, C]) values in [0, 1] (clamped; NaN -> 0) in the
// format of the file's extension: .png .jpg/.jpeg .webp .tif/.tiff .exr. The file appears
// atomically (encoded in memory, written to a temporary name, fsync, rename): a reader never sees
// a partial file. 8/16-bit samples are round(x * 255) / round(x * 65535); EXR holds linear values
// (sRGB decoded) with premultiplied alpha, as EXR readers expect.
// Throws UsageError (bad tensor, extension or bit depth), FormatError (the encoder failed) or
// IoError (the file cannot be written).
void write_image(const std::filesystem::path& path, const at::Tensor& hwc01,
                 const ImageWriteOptions& options = {});

// NCHW [1, 3, H, W] in [-1, 1] from an image's RGB (alpha dropped), as diffusers'
// VaeImageProcessor.preprocess for an RGB image that is already at size.
at::Tensor to_model_input(const Image& image);
at::Tensor to_model_input(const at::Tensor& hwc01);
// (x / 2 + 0.5).clamp(0, 1) in the input's dtype, then float32 NHWC on the CPU, as diffusers'
// postprocess(output_type="np"). Accepts NCHW or CHW (then HWC out).
at::Tensor from_model_output(const at::Tensor& nchw);
// round(x * 255) as uint8, as diffusers' numpy_to_pil; any shape.
at::Tensor to_uint8(const at::Tensor& x01);

enum class ResizeFilter {
  kAuto,  // area averaging when shrinking, Lanczos when enlarging
  kArea,
  kLanczos,  // OpenCV's 8x8 Lanczos
  kBicubic,
  kBilinear,
  kNearest,
};

// Resizes [H, W, C] float values (C <= 4) with OpenCV; RGBA is resized premultiplied so
// transparent pixels do not bleed colour. The result is clamped to [0, 1].
at::Tensor resize_image(const at::Tensor& hwc01, int width, int height,
                        ResizeFilter filter = ResizeFilter::kAuto);
// Shrinks width and height to multiples of `multiple` (diffusers' get_default_height_width:
// w - w % 8), resizing when they change; the result is at least `multiple` pixels each way.
at::Tensor resize_to_multiple_of_8(const at::Tensor& hwc01, int multiple = 8,
                                   ResizeFilter filter = ResizeFilter::kLanczos);

}  // namespace studio::image
