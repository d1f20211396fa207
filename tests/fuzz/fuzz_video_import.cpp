// libFuzzer target: the video reader (video/video_io.cpp over libav) on arbitrary bytes as a video
// file: probe() and then the first frames through VideoReader (scaled down, frame rate resampled,
// rotation applied). Each input must be read or refused with a studio::Error; another exception, a
// crash, a sanitizer report in studio's code, a hang or > 2 GB RSS is a finding. libav itself is
// not instrumented (the system library), but every buffer it fills is checked here.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "tests/fuzz/fuzz_temp.h"
#include "video/video_io.h"

namespace {

void check_frame(const studio::video::Frame& f, int w, int h) {
  if (f.width != w || f.height != h || f.stride < 3 * f.width ||
      f.rgb.size() < static_cast<std::size_t>(f.stride) * static_cast<std::size_t>(f.height))
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  studio::fuzz::temp_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // No extension: libav finds the container from the bytes, as it does for a mislabelled upload.
  const auto path = studio::fuzz::temp_dir().write("input", data, size);
  try {
    const studio::video::VideoInfo info = studio::video::probe(path);
    if (info.width < 0 || info.height < 0 || info.coded_width < 0 || info.coded_height < 0) {
      std::fprintf(stderr, "probe: negative size: coded %dx%d, displayed %dx%d\n",
                   info.coded_width, info.coded_height, info.width, info.height);
      std::abort();
    }
  } catch (const studio::Error&) {
  }
  try {
    studio::video::ReaderOptions opt;
    opt.width = 32;  // a small output keeps swscale cheap; the decoder still sees every byte
    opt.threads = 1;
    opt.fps = {12, 1};
    studio::video::VideoReader reader(path, opt);
    studio::video::Frame frame;
    for (int i = 0; i < 4 && reader.read(frame); ++i)
      check_frame(frame, reader.output_width(), reader.output_height());
  } catch (const studio::Error&) {
  }
  return 0;
}
