// Drives studio's video file I/O (video/video_io.cpp) through its normal and its error paths in one
// process, for valgrind (tests/leak/CMakeLists.txt, issue #8): valgrind reports leaks and invalid
// accesses; descriptors left open are counted here, from /proc/self/fd at start and at exit.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <typeinfo>
#include <vector>

#include "core/error.h"
#include "video/video_io.h"

namespace fs = std::filesystem;
using namespace studio::video;

namespace {

constexpr const char* kSampleName = "big_buck_bunny_480p_30s.mp4";
// The part of the sample that is decoded, resampled and re-encoded. Valgrind runs libav ~30-50x
// slower than natively: 2 s at 12 fps and 320 px wide keep the whole run well under a minute.
constexpr double kClipStartS = 1.0;
constexpr double kClipS = 2.0;
const Rational kOutFps{12, 1};
constexpr int kOutWidth = 320;

int g_failures = 0;

void fail(const std::string& what) {
  ++g_failures;
  std::cout << "FAIL: " << what << "\n";
}

void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// Open descriptors (number -> what it points at). Valgrind keeps its own descriptors above the
// soft RLIMIT_NOFILE it reports to the program, so only those below it are the program's.
std::map<int, std::string> open_fds() {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  std::map<int, std::string> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) {
    fail("cannot list /proc/self/fd (this check needs Linux's /proc)");
    return fds;
  }
  const int own = dirfd(dir);
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == own) continue;
    if (lim.rlim_cur != RLIM_INFINITY && static_cast<rlim_t>(fd) >= lim.rlim_cur) continue;
    char target[4096];
    const std::string link = "/proc/self/fd/" + std::string(e->d_name);
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    fds[static_cast<int>(fd)] = n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
  }
  closedir(dir);
  return fds;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

// Runs one step; an exception escaping it is a failure (the step expected none).
void step(const std::string& name, const std::function<void()>& fn) {
  std::cout << "== " << name << "\n";
  try {
    fn();
  } catch (const studio::Error& e) {
    fail(name + ": unexpected " + e.kind() + ": " + e.what());
  } catch (const std::exception& e) {
    fail(name + ": unexpected exception: " + e.what());
  }
}

// `fn` must throw exactly E (the type video_io.h documents for that case).
template <typename E>
void expect_throw(const std::string& name, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const studio::Error& e) {
    if (typeid(e) == typeid(E)) {
      std::cout << "  ok, " << name << ": " << e.kind() << ": " << e.what() << "\n";
      return;
    }
    fail(name + ": threw a " + e.kind() + " instead of the documented type: " + e.what());
    return;
  } catch (const std::exception& e) {
    fail(name + ": threw a non-studio exception: " + e.what());
    return;
  }
  fail(name + ": did not throw");
}

// Reads a file to its end (errors surface where the data runs out).
void read_all(const fs::path& p) {
  VideoReader r(p);
  Frame f;
  while (r.read(f)) {
  }
}

// Files in `dir` whose name contains `part` (temporary files of a writer, for instance).
std::vector<std::string> files_containing(const fs::path& dir, const std::string& part) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(part) != std::string::npos) names.push_back(name);
  }
  return names;
}

WriterOptions clip_options(const fs::path& audio_source, int w, int h) {
  WriterOptions wo;
  wo.width = w;
  wo.height = h;
  wo.fps = kOutFps;
  wo.preset = "veryfast";
  wo.audio_source = audio_source;
  wo.audio_start_s = kClipStartS;
  wo.metadata = {{"title", "studio leak test"}, {"studio_leak_test", "1"}};  // one non-standard
  return wo;
}

// A WAV file (one audio stream, no video): 1 s of 8 kHz mono silence.
std::string wav_bytes() {
  auto u32 = [](uint32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
  };
  auto u16 = [](uint16_t v) {
    return std::string{static_cast<char>(v & 0xff), static_cast<char>(v >> 8)};
  };
  const uint32_t data_size = 16000;
  std::string wav = "RIFF" + u32(36 + data_size) + "WAVEfmt ";
  wav += u32(16) + u16(1) + u16(1) + u32(8000) + u32(16000) + u16(2) + u16(16);
  wav += "data" + u32(data_size) + std::string(data_size, '\0');
  return wav;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: " << argv[0] << " WORK_DIR [DATA_ROOT]\n"
              << "  WORK_DIR is emptied and receives the clips written; DATA_ROOT (else "
                 "$STUDIO_DATA, else the shared data folder) holds video/"
              << kSampleName << "\n";
    return 2;
  }
  const fs::path work = argv[1];
  const char* env = std::getenv("STUDIO_DATA");
  const fs::path data = argc == 3     ? fs::path(argv[2])
                        : env && *env ? fs::path(env)
                                      : fs::path(STUDIO_DEFAULT_DATA);
  const fs::path sample = data / "video" / kSampleName;
  if (!fs::is_regular_file(sample)) {
    std::cerr << "error: " << sample
              << " not found: pass the data folder as the second argument or set STUDIO_DATA\n";
    return 2;
  }
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work);

  const std::map<int, std::string> fds_before = open_fds();

  // --- The normal paths ---
  VideoInfo info;
  step("probe the sample", [&] {
    info = probe(sample);
    std::cout << "  " << info.codec << " " << info.width << "x" << info.height << " @ "
              << info.fps.str() << ", " << info.duration_s << " s, audio " << info.audio_codec
              << "\n";
    check(info.width > 0 && info.height > 0 && info.fps.valid(), "probe: no size or frame rate");
    check(info.duration_s >= kClipStartS + kClipS + 1.0, "probe: the sample is too short");
    check(info.has_audio, "probe: the sample has no audio, so the writer's remux is not exercised");
  });

  std::vector<Frame> frames;
  step("reader: resize, constant frame rate, seek forward and back", [&] {
    ReaderOptions ro;
    ro.width = kOutWidth;  // height 0: keeps the aspect ratio
    ro.fps = kOutFps;
    ro.start_s = kClipStartS;
    ro.duration_s = kClipS;
    VideoReader r(sample, ro);
    check(r.output_fps().num == kOutFps.num && r.output_fps().den == kOutFps.den,
          "reader: output rate is not the one asked for");
    Frame f;
    for (int i = 0; i < 3; ++i) check(r.read(f), "reader: the range ended early");
    const double forward = kClipStartS + 0.75 * kClipS;
    r.seek(forward);
    check(r.read(f) && f.pts_s >= forward - 1e-3,
          "reader: seek forward did not land at or after " + std::to_string(forward) + " s");
    r.seek(kClipStartS);
    while (r.read(f)) frames.push_back(f);
    const auto expected = static_cast<size_t>(std::lround(kClipS * kOutFps.value()));
    std::cout << "  " << frames.size() << " frames of " << r.output_width() << "x"
              << r.output_height() << " after the seek back (" << expected << " expected)\n";
    check(frames.size() + 1 >= expected && frames.size() <= expected + 1,
          "reader: " + std::to_string(frames.size()) + " frames in " + std::to_string(kClipS) +
              " s at " + kOutFps.str() + " fps");
    const int expected_h = static_cast<int>(
        std::lround(static_cast<double>(kOutWidth) * info.height / std::max(1, info.width)));
    for (size_t i = 0; i < frames.size(); ++i) {
      check(frames[i].width == kOutWidth && frames[i].height == expected_h,
            "reader: frame " + std::to_string(i) + " is not " + std::to_string(kOutWidth) + "x" +
                std::to_string(expected_h));
      check(frames[i].pts_s >= kClipStartS - 1e-3 && frames[i].pts_s < kClipStartS + kClipS,
            "reader: frame " + std::to_string(i) + " at " + std::to_string(frames[i].pts_s) +
                " s is outside the range");
    }
  });

  step("reader destroyed in the middle of the stream", [&] {
    ReaderOptions ro;
    ro.threads = 2;  // frame threads with packets in flight when it goes
    VideoReader r(sample, ro);
    Frame f;
    for (int i = 0; i < 5; ++i)
      check(r.read(f), "reader: the sample ended after " + std::to_string(i) + " frames");
  });

  const fs::path clip = work / "clip.mp4";
  step("writer: the frames to H.264 MP4 with the source's audio", [&] {
    if (frames.empty()) throw std::runtime_error("no frames from the reader step");
    VideoWriter w(clip, clip_options(sample, frames[0].width, frames[0].height));
    for (const Frame& f : frames) w.write(f);
    w.finish();
    for (const auto& warning : w.warnings()) std::cout << "  writer warning: " << warning << "\n";
    const VideoInfo out = probe(clip);
    std::cout << "  " << w.encoder_name() << ": " << out.frame_count << " frames, "
              << out.duration_s << " s, audio " << out.audio_codec << "\n";
    check(out.width == frames[0].width && out.height == frames[0].height,
          "writer: the clip's size differs from the frames'");
    check(out.frame_count == static_cast<int64_t>(frames.size()),
          "writer: " + std::to_string(out.frame_count) + " frames in the file, " +
              std::to_string(frames.size()) + " written");
    check(out.has_audio && out.audio_codec == info.audio_codec,
          "writer: the source's audio was not remuxed");
    check(files_containing(work, ".tmp-").empty(), "writer: a temporary file was left beside it");
  });

  step("writer destroyed without finish(): nothing left behind", [&] {
    if (frames.empty()) throw std::runtime_error("no frames from the reader step");
    const fs::path target = work / "abandoned.mp4";
    {
      VideoWriter w(target, clip_options(sample, frames[0].width, frames[0].height));
      for (size_t i = 0; i < frames.size() / 2; ++i) w.write(frames[i]);
      check(!files_containing(work, "abandoned.mp4.tmp-").empty(),
            "writer: no temporary file while writing (is the check looking at the right folder?)");
    }
    check(!fs::exists(target), "abandoned writer: the target exists");
    check(files_containing(work, "abandoned").empty(),
          "abandoned writer: its temporary file was left behind");
  });

  // --- The error paths ---
  step("errors: missing file, folder, truncated, corrupt, non-video", [&] {
    const fs::path missing = work / "missing.mp4";
    expect_throw<studio::IoError>("probe of a missing file", [&] { probe(missing); });
    expect_throw<studio::IoError>("reader of a missing file", [&] { VideoReader r(missing); });
    expect_throw<studio::IoError>("reader of a folder", [&] { VideoReader r(work); });

    // The sample keeps its index (moov) at the end: cut in half, it cannot be opened.
    const std::string bytes = read_bytes(sample);
    write_bytes(work / "cut.mp4", bytes.substr(0, bytes.size() / 2));
    expect_throw<studio::FormatError>("probe of a truncated file",
                                      [&] { probe(work / "cut.mp4"); });
    expect_throw<studio::FormatError>("reader of a truncated file",
                                      [&] { read_all(work / "cut.mp4"); });

    // The clip written above is faststart (index first): cut, it opens and fails mid-stream.
    if (fs::exists(clip)) {
      const std::string whole = read_bytes(clip);
      write_bytes(work / "short.mp4", whole.substr(0, whole.size() * 6 / 10));
      expect_throw<studio::FormatError>("reader of a faststart file cut short",
                                        [&] { read_all(work / "short.mp4"); });
    }

    // The same clip with its frame data garbled (index intact): the decoder sees broken packets.
    // Whether libav conceals the damage or reports it depends on where it lands; either way the
    // reader must end cleanly or with a FormatError, and free what it holds.
    if (fs::exists(clip)) {
      std::string corrupt = read_bytes(clip);
      const size_t mdat = corrupt.find("mdat");
      for (size_t i = mdat == std::string::npos ? 0 : mdat + 64; i < corrupt.size(); i += 97)
        corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
      write_bytes(work / "corrupt.mp4", corrupt);
      try {
        read_all(work / "corrupt.mp4");
        std::cout << "  ok, reader of a corrupt file: read to the end (damage concealed)\n";
      } catch (const studio::FormatError& e) {
        std::cout << "  ok, reader of a corrupt file: " << e.kind() << ": " << e.what() << "\n";
      } catch (const studio::Error& e) {
        fail(std::string("reader of a corrupt file: threw a ") + e.kind() +
             " instead of a format error: " + e.what());
      }
    }

    write_bytes(work / "notes.txt", "not a video, just text\n");
    expect_throw<studio::FormatError>("probe of a text file", [&] { probe(work / "notes.txt"); });
    write_bytes(work / "tone.wav", wav_bytes());
    expect_throw<studio::FormatError>("reader of an audio-only file",
                                      [&] { VideoReader r(work / "tone.wav"); });
  });

  step("errors: writer", [&] {
    WriterOptions wo = clip_options({}, 64, 64);
    expect_throw<studio::IoError>("writer into a missing folder",
                                  [&] { VideoWriter w(work / "no" / "such" / "x.mp4", wo); });
    expect_throw<studio::UsageError>("writer of a .gif",
                                     [&] { VideoWriter w(work / "x.gif", wo); });
    WriterOptions no_encoder = wo;
    no_encoder.encoder = "no_such_encoder";
    expect_throw<studio::ConfigError>("writer with no usable encoder",
                                      [&] { VideoWriter w(work / "x.mp4", no_encoder); });
    // Fails after the encoder and the muxer are set up: both must be freed.
    WriterOptions bad_audio = wo;
    bad_audio.audio_source = work / "missing.mp4";
    expect_throw<studio::IoError>("writer with a missing audio source",
                                  [&] { VideoWriter w(work / "x.mp4", bad_audio); });
    // A frame of the wrong size, then the writer is dropped.
    expect_throw<studio::UsageError>("writer given a frame of the wrong size", [&] {
      VideoWriter w(work / "wrong.mp4", wo);
      std::vector<uint8_t> rgb(32 * 32 * 3, 128);
      w.write(rgb.data(), 32, 32, 32 * 3);
    });
    expect_throw<studio::UsageError>("finish() with no frames", [&] {
      VideoWriter w(work / "empty.mp4", wo);
      w.finish();
    });
    check(!fs::exists(work / "x.mp4") && !fs::exists(work / "wrong.mp4") &&
              !fs::exists(work / "empty.mp4") && files_containing(work, ".tmp-").empty(),
          "writer errors left files behind");
    // Odd frames (cut to even, so scaled) with an audio source whose audio cannot go into MP4
    // unchanged (PCM): two warnings and a silent clip.
    WriterOptions odd = clip_options(work / "tone.wav", 65, 49);
    odd.audio_start_s = 0.0;
    VideoWriter w(work / "silent.mp4", odd);
    std::vector<uint8_t> rgb(65 * 49 * 3, 200);
    for (int i = 0; i < 3; ++i) w.write(rgb.data(), 65, 49, 65 * 3);
    w.finish();
    for (const auto& warning : w.warnings()) std::cout << "  writer warning: " << warning << "\n";
    check(w.warnings().size() >= 2, "writer: no warning for the odd size or the PCM audio");
    const VideoInfo silent = probe(work / "silent.mp4");
    check(silent.width == 64 && silent.height == 48, "writer: 65x49 was not cut to 64x48");
    check(!silent.has_audio, "writer: PCM audio went into the MP4");
  });

  // --- Descriptors ---
  const std::map<int, std::string> fds_after = open_fds();
  for (const auto& [fd, target] : fds_after)
    if (!fds_before.count(fd) || fds_before.at(fd) != target)
      fail("descriptor " + std::to_string(fd) + " (" + target + ") left open");
  for (const auto& [fd, target] : fds_before)
    if (!fds_after.count(fd))
      fail("descriptor " + std::to_string(fd) + " (" + target +
           ") open at start was closed by the video code");
  std::cout << "descriptors: " << fds_before.size() << " open at start, " << fds_after.size()
            << " at exit\n";

  if (g_failures) {
    std::cout << g_failures << " check(s) failed\n";
    return 1;
  }
  std::cout << "all video I/O checks passed\n";
  return 0;
}
