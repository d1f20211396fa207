// libFuzzer target: image import (image/image_decode.cpp: OpenImageIO, libwebp for WebP, the
// pixel-count limit checked from the header; image_metadata.cpp: PNG text chunks and EXIF/XMP
// through Exiv2) on arbitrary bytes as an image file, through decode_image (what read_image does
// before it makes a tensor) and read_image_metadata. Each input must decode or be refused with a
// studio::Error; another exception, a crash, a sanitizer report in studio's code, a hang or
// > 2 GB RSS is a finding. A decoded image must be within the pixel limit and its buffer exactly
// [height, width, channels] samples. The system libraries are not instrumented.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "image/image_decode.h"
#include "tests/fuzz/fuzz_temp.h"

namespace {
// Lower than the 64 Mpx default so each input stays cheap; the header check is the same code.
constexpr int64_t kMaxPixels = 4 * 1000 * 1000;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  studio::fuzz::temp_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // No telling extension: OpenImageIO finds the format from the bytes, as for a mislabelled photo.
  const auto path = studio::fuzz::temp_dir().write("image", data, size);
  try {
    (void)studio::image::read_image_metadata(path);
  } catch (const studio::Error&) {
  }
  try {
    studio::image::ImageReadOptions opt;
    opt.max_pixels = kMaxPixels;
    const studio::image::DecodedImage img = studio::image::decode_image(path, opt);
    if (img.height <= 0 || img.width <= 0 || img.height * img.width > kMaxPixels) std::abort();
    if (img.channels < 1 ||
        img.bytes.size() != static_cast<size_t>(img.height * img.width * img.channels) *
                                studio::image::sample_size(img.sample))
      std::abort();
    if (img.colour.size() != 1 && img.colour.size() != 3) std::abort();
    for (const int c : img.colour)
      if (c < 0 || c >= img.channels) std::abort();
    if (img.alpha >= img.channels) std::abort();
  } catch (const studio::Error&) {
  }
  return 0;
}
