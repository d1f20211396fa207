// Video file I/O through libavformat/libavcodec/libswscale (see video_io.h). Every libav object is
// owned by a unique_ptr with its libav free function, so no error path leaks.
#include "video/video_io.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/display.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>

#include "core/error.h"

namespace studio::video {

namespace fs = std::filesystem;

namespace {

struct InputFormatDeleter {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
struct OutputFormatDeleter {
  void operator()(AVFormatContext* p) const {
    if (p->pb && !(p->oformat->flags & AVFMT_NOFILE)) avio_closep(&p->pb);
    avformat_free_context(p);
  }
};
struct CodecDeleter {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};
using InputPtr = std::unique_ptr<AVFormatContext, InputFormatDeleter>;
using OutputPtr = std::unique_ptr<AVFormatContext, OutputFormatDeleter>;
using CodecPtr = std::unique_ptr<AVCodecContext, CodecDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;

// An AVDictionary freed on scope exit.
struct Dict {
  AVDictionary* d = nullptr;
  ~Dict() { av_dict_free(&d); }
};

FramePtr make_frame() {
  FramePtr f(av_frame_alloc());
  if (!f) throw std::bad_alloc();
  return f;
}
PacketPtr make_packet() {
  PacketPtr p(av_packet_alloc());
  if (!p) throw std::bad_alloc();
  return p;
}

void quiet_libav() {
  // libav's own log lines would duplicate (and interleave with) our errors; keep only fatal ones.
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_FATAL); });
}

constexpr const char* kOpenHint =
    "check that it is a complete video file (MP4, MOV, MKV, WebM, AVI, ...); re-download or "
    "re-export it if it was cut short";

Rational to_rational(AVRational r) { return Rational{r.num, r.den}; }

double ts_seconds(int64_t ts, AVRational tb) {
  return static_cast<double>(ts) * tb.num / static_cast<double>(tb.den);
}

int normalise_rotation(double degrees) {
  long r = std::lround(degrees / 90.0) * 90;
  r %= 360;
  if (r < 0) r += 360;
  return static_cast<int>(r);
}

// Clockwise rotation needed to show the stream upright (as ffmpeg's autorotate does).
int stream_rotation(const AVStream* st) {
  const int32_t* matrix = nullptr;
#if LIBAVFORMAT_VERSION_INT >= AV_VERSION_INT(60, 15, 100)
  const AVPacketSideData* sd = av_packet_side_data_get(
      st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  if (sd && sd->size >= 9 * sizeof(int32_t)) matrix = reinterpret_cast<const int32_t*>(sd->data);
#else
  size_t size = 0;
  const uint8_t* sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (sd && size >= 9 * sizeof(int32_t)) matrix = reinterpret_cast<const int32_t*>(sd);
#endif
  if (matrix) {
    const double theta = -av_display_rotation_get(matrix);
    if (std::isfinite(theta)) return normalise_rotation(theta);
  }
  if (const AVDictionaryEntry* e = av_dict_get(st->metadata, "rotate", nullptr, 0)) {
    char* end = nullptr;
    const double v = std::strtod(e->value, &end);
    if (end != e->value) return normalise_rotation(v);
  }
  return 0;
}

// Rotates a packed RGB8 image clockwise by 90/180/270 degrees.
void rotate_rgb(const uint8_t* src, int w, int h, int rotation, uint8_t* dst) {
  if (rotation == 180) {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        std::memcpy(dst + 3 * (static_cast<size_t>(h - 1 - y) * w + (w - 1 - x)),
                    src + 3 * (static_cast<size_t>(y) * w + x), 3);
    return;
  }
  // 90 / 270: the output is h wide and w high.
  for (int yo = 0; yo < w; ++yo) {
    for (int xo = 0; xo < h; ++xo) {
      const int yi = rotation == 90 ? h - 1 - xo : xo;
      const int xi = rotation == 90 ? yo : w - 1 - yo;
      std::memcpy(dst + 3 * (static_cast<size_t>(yo) * h + xo),
                  src + 3 * (static_cast<size_t>(yi) * w + xi), 3);
    }
  }
}

std::string stream_summary(const AVFormatContext* fmt) {
  std::string s;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    if (!s.empty()) s += ", ";
    const char* type = av_get_media_type_string(fmt->streams[i]->codecpar->codec_type);
    s += type ? type : "unknown";
    s += std::string(" (") + avcodec_get_name(fmt->streams[i]->codecpar->codec_id) + ")";
  }
  return s.empty() ? "none" : s;
}

// Opens a container and reads its stream info; throws IoError / FormatError naming the file.
InputPtr open_input(const fs::path& path) {
  quiet_libav();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError("file not found", path.string(), "check the path");
  if (fs::is_directory(path, ec))
    throw IoError("is a folder, not a video file", path.string(), "pass a video file");
  AVFormatContext* raw = nullptr;
  int ret = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (ret < 0) {
    if (ret == AVERROR(EACCES) || ret == AVERROR(EIO))
      throw IoError("cannot read the file: " + av_error_text(ret), path.string(),
                    "check its permissions");
    throw FormatError("not a readable video file (truncated or corrupt?): " + av_error_text(ret),
                      path.string(), kOpenHint);
  }
  InputPtr fmt(raw);
  ret = avformat_find_stream_info(fmt.get(), nullptr);
  if (ret < 0)
    throw FormatError("cannot read the stream info (truncated or corrupt?): " + av_error_text(ret),
                      path.string(), kOpenHint);
  return fmt;
}

VideoInfo describe(const fs::path& path, AVFormatContext* fmt, int vidx) {
  VideoInfo info;
  info.path = path;
  info.container = fmt->iformat ? fmt->iformat->name : "";
  const AVStream* st = fmt->streams[vidx];
  const AVCodecParameters* par = st->codecpar;
  info.codec = avcodec_get_name(par->codec_id);
  const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
  info.pix_fmt = pf ? pf : "unknown";
  info.coded_width = par->width;
  info.coded_height = par->height;
  info.rotation_deg = stream_rotation(st);
  const bool swap = info.rotation_deg == 90 || info.rotation_deg == 270;
  info.width = swap ? par->height : par->width;
  info.height = swap ? par->width : par->height;
  AVRational fr = st->avg_frame_rate;
  if (fr.num <= 0 || fr.den <= 0) fr = st->r_frame_rate;
  if (fr.num > 0 && fr.den > 0) {
    av_reduce(&fr.num, &fr.den, fr.num, fr.den, 1 << 30);
    info.fps = to_rational(fr);
  }
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
    info.duration_s = ts_seconds(st->duration, st->time_base);
  else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
    info.duration_s = static_cast<double>(fmt->duration) / AV_TIME_BASE;
  if (st->nb_frames > 0) {
    info.frame_count = st->nb_frames;
    info.frame_count_exact = true;
  } else if (info.duration_s > 0 && info.fps.valid()) {
    info.frame_count = std::llround(info.duration_s * info.fps.value());
  }
  info.bit_rate = fmt->bit_rate;
  const int aidx = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (aidx >= 0) {
    const AVCodecParameters* ap = fmt->streams[aidx]->codecpar;
    info.has_audio = true;
    info.audio_codec = avcodec_get_name(ap->codec_id);
    info.audio_sample_rate = ap->sample_rate;
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(59, 24, 100)
    info.audio_channels = ap->ch_layout.nb_channels;
#else
    info.audio_channels = ap->channels;
#endif
  }
  const AVDictionaryEntry* e = nullptr;
  while ((e = av_dict_get(fmt->metadata, "", e, AV_DICT_IGNORE_SUFFIX)))
    info.tags[e->key] = e->value;
  return info;
}

int find_video_stream(AVFormatContext* fmt, const fs::path& path) {
  // Cover art (attached pictures) is not a video stream.
  int best = -1;
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    const AVStream* st = fmt->streams[i];
    if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
    if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) continue;
    best = static_cast<int>(i);
    break;
  }
  if (best < 0)
    throw FormatError("no video stream (streams: " + stream_summary(fmt) + ")", path.string(),
                      "pass a file that contains video");
  return best;
}

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  if (av_strerror(code, buf, sizeof buf) < 0) std::snprintf(buf, sizeof buf, "error %d", code);
  return buf;
}

Rational parse_fps(const std::string& text) {
  const auto bad = [&] {
    return UsageError("invalid frame rate '" + text + "'", "",
                      "use a number such as 24, 29.97 or a fraction such as 30000/1001");
  };
  if (text.empty()) throw bad();
  Rational r;
  const auto slash = text.find('/');
  try {
    size_t used = 0;
    if (slash != std::string::npos) {
      r.num = std::stoi(text.substr(0, slash), &used);
      if (used != slash) throw bad();
      const std::string den = text.substr(slash + 1);
      r.den = std::stoi(den, &used);
      if (used != den.size()) throw bad();
    } else {
      const double v = std::stod(text, &used);
      if (used != text.size() || !std::isfinite(v)) throw bad();
      const AVRational q = av_d2q(v, 1001000);
      r = Rational{q.num, q.den};
    }
  } catch (const std::invalid_argument&) {
    throw bad();
  } catch (const std::out_of_range&) {
    throw bad();
  }
  if (!r.valid() || r.value() > 1000.0 || r.value() < 0.01) throw bad();
  return r;
}

VideoInfo probe(const fs::path& path) {
  InputPtr fmt = open_input(path);
  VideoInfo info = describe(path, fmt.get(), find_video_stream(fmt.get(), path));
  // A corrupt header can declare a negative size (found by tests/fuzz/fuzz_video_import).
  if (info.coded_width < 0 || info.coded_height < 0)
    throw FormatError("the video stream declares a negative frame size " +
                          std::to_string(info.coded_width) + "x" +
                          std::to_string(info.coded_height) + " (corrupt?)",
                      path.string(), kOpenHint);
  return info;
}

// ---------------------------------------------------------------------------------------------
// VideoReader

struct VideoReader::Impl {
  fs::path path;
  ReaderOptions opt;
  VideoInfo info;
  InputPtr fmt;
  CodecPtr dec;
  int vidx = -1;
  AVStream* st = nullptr;
  PacketPtr pkt = make_packet();
  FramePtr cur = make_frame(), next = make_frame();
  bool cur_valid = false, next_valid = false;
  bool demux_eof = false, decoder_done = false;
  SwsPtr sws;
  int out_w = 0, out_h = 0;      // after rotation
  int scale_w = 0, scale_h = 0;  // before rotation
  std::vector<uint8_t> upright;  // scaled, not yet rotated
  double range_start = 0.0, range_end = std::numeric_limits<double>::infinity();
  double src_frame_s = 1.0 / 25;  // one source frame's duration
  double last_pts = -1.0;
  double last_decoded_pts = -1.0;
  int64_t frames_read = 0;
  int64_t cfr_k = 0;
  double cfr_origin = -1.0;

  double pts_of(const AVFrame* f) {
    int64_t ts = f->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) ts = f->pts;
    if (ts == AV_NOPTS_VALUE) return last_decoded_pts < 0 ? 0.0 : last_decoded_pts + src_frame_s;
    double t = ts_seconds(ts, st->time_base);
    if (st->start_time != AV_NOPTS_VALUE) t -= ts_seconds(st->start_time, st->time_base);
    return t;
  }

  // The next decoded frame (any time), false at the end of the stream.
  bool decode_any(AVFrame* out) {
    while (true) {
      if (decoder_done) return false;
      int ret = avcodec_receive_frame(dec.get(), out);
      if (ret == 0) return true;
      if (ret == AVERROR_EOF) {
        decoder_done = true;
        return false;
      }
      if (ret != AVERROR(EAGAIN))
        throw FormatError("corrupt video data: " + av_error_text(ret), path.string(), kOpenHint);
      if (demux_eof) {  // flushed and still EAGAIN: nothing left
        decoder_done = true;
        return false;
      }
      ret = av_read_frame(fmt.get(), pkt.get());
      if (ret == AVERROR_EOF) {
        demux_eof = true;
        avcodec_send_packet(dec.get(), nullptr);
        continue;
      }
      if (ret < 0)
        throw FormatError("cannot read the file (truncated or corrupt?): " + av_error_text(ret),
                          path.string(), kOpenHint);
      if (pkt->stream_index != vidx) {
        av_packet_unref(pkt.get());
        continue;
      }
      ret = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (ret < 0 && ret != AVERROR(EAGAIN))
        throw FormatError("corrupt video data: " + av_error_text(ret), path.string(), kOpenHint);
    }
  }

  // The next decoded frame at or after range_start and before `until`; false past it / at end.
  bool decode_in_range(AVFrame* out, double until) {
    const double eps = std::min(1e-3, 0.1 * src_frame_s);
    while (decode_any(out)) {
      const double t = pts_of(out);
      last_decoded_pts = t;
      if (t < range_start - eps) continue;
      if (t >= until - eps) return false;
      return true;
    }
    check_complete();
    return false;
  }

  // At the end of the stream: did it end where the container says it should?
  void check_complete() const {
    if (info.duration_s <= 0 || last_decoded_pts < 0) {
      if (last_decoded_pts < 0 && range_start <= 0)
        throw FormatError("no video frame could be decoded (truncated or corrupt?)", path.string(),
                          kOpenHint);
      return;
    }
    const double expected_end = std::min(range_end, info.duration_s);
    const double reached = last_decoded_pts + src_frame_s;
    const double tolerance = std::max(0.5, 3 * src_frame_s);
    if (reached < expected_end - tolerance)
      throw FormatError("the video stops at " + fmt_double(reached) +
                            " s but the file says it lasts " + fmt_double(info.duration_s) +
                            " s (truncated?)",
                        path.string(), kOpenHint);
  }

  void convert(const AVFrame* f, Frame& out, double pts) {
    if (f->width <= 0 || f->height <= 0)
      throw FormatError("decoded a frame with no size", path.string(), kOpenHint);
    sws.reset(sws_getCachedContext(sws.release(), f->width, f->height,
                                   static_cast<AVPixelFormat>(f->format), scale_w, scale_h,
                                   AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!sws)
      throw FormatError(
          "cannot convert the pixel format '" +
              std::string(av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format))
                              ? av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format))
                              : "?") +
              "' to RGB",
          path.string(), "transcode the file to yuv420p with ffmpeg");
    const int rotation = opt.apply_rotation ? info.rotation_deg : 0;
    out.width = out_w;
    out.height = out_h;
    out.stride = out_w * 3;
    out.rgb.resize(static_cast<size_t>(out.stride) * out_h);
    uint8_t* target = out.rgb.data();
    if (rotation != 0) {
      upright.resize(static_cast<size_t>(scale_w) * scale_h * 3);
      target = upright.data();
    }
    uint8_t* dst[4] = {target, nullptr, nullptr, nullptr};
    int dst_stride[4] = {scale_w * 3, 0, 0, 0};
    sws_scale(sws.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (rotation != 0) rotate_rgb(upright.data(), scale_w, scale_h, rotation, out.rgb.data());
    out.pts_s = pts;
    out.index = frames_read;
  }

  void count_frame(double pts) {
    ++frames_read;
    if (frames_read > opt.limits.max_frames)
      throw FormatError("more than " + std::to_string(opt.limits.max_frames) +
                            " frames (the reader's limit, STUDIO_LIMIT_VIDEO_FRAMES)",
                        path.string(),
                        "read a shorter range (start/duration) or raise STUDIO_LIMIT_VIDEO_FRAMES");
    last_pts = pts;
  }

  bool read_native(Frame& out) {
    if (!decode_in_range(cur.get(), range_end)) return false;
    const double t = pts_of(cur.get());
    convert(cur.get(), out, t);
    count_frame(t);
    return true;
  }

  // Constant frame rate: output frame k shows the source frame nearest before k / fps.
  bool read_cfr(Frame& out) {
    const double step = 1.0 / opt.fps.value();
    const double lookahead_end = range_end + src_frame_s + step;
    if (cfr_origin < 0) {
      if (!cur_valid) {
        if (!decode_in_range(cur.get(), lookahead_end)) return false;
        cur_valid = true;
      }
      cfr_origin = std::max(range_start, pts_of(cur.get()));
    }
    const double t = cfr_origin + static_cast<double>(cfr_k) * step;
    const double eps = 1e-6;
    if (t >= range_end - eps) return false;
    while (true) {
      if (!next_valid) next_valid = decode_in_range(next.get(), lookahead_end);
      if (next_valid && pts_of(next.get()) <= t + 0.5 * step + eps) {
        std::swap(cur, next);
        next_valid = false;
        continue;
      }
      break;
    }
    if (!next_valid && t >= pts_of(cur.get()) + src_frame_s - eps) return false;  // the end
    convert(cur.get(), out, t);
    ++cfr_k;
    count_frame(t);
    return true;
  }

  void restart(double seconds) {
    range_start = std::max(0.0, seconds);
    cur_valid = next_valid = false;
    demux_eof = decoder_done = false;
    cfr_origin = -1.0;
    cfr_k = 0;
    last_decoded_pts = -1.0;
    int64_t ts = static_cast<int64_t>(range_start / av_q2d(st->time_base));
    if (st->start_time != AV_NOPTS_VALUE) ts += st->start_time;
    int ret = av_seek_frame(fmt.get(), vidx, ts, AVSEEK_FLAG_BACKWARD);
    if (ret < 0 && range_start > 0)
      throw FormatError("cannot seek to " + fmt_double(range_start) + " s: " + av_error_text(ret),
                        path.string(), "the file may not be seekable; read it from the start");
    avcodec_flush_buffers(dec.get());
  }
};

VideoReader::VideoReader(const fs::path& path, ReaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  m.opt = options;
  m.fmt = open_input(path);
  m.vidx = find_video_stream(m.fmt.get(), path);
  m.st = m.fmt->streams[m.vidx];
  m.info = describe(path, m.fmt.get(), m.vidx);
  // Only the video stream is demuxed into packets we look at; the others are discarded early.
  for (unsigned i = 0; i < m.fmt->nb_streams; ++i)
    if (static_cast<int>(i) != m.vidx) m.fmt->streams[i]->discard = AVDISCARD_ALL;

  const Limits& lim = options.limits;
  if (m.info.coded_width <= 0 || m.info.coded_height <= 0)
    throw FormatError("the video stream has no frame size (corrupt?)", path.string(), kOpenHint);
  if (m.info.coded_width > lim.max_width || m.info.coded_height > lim.max_height)
    throw FormatError("frame size " + std::to_string(m.info.coded_width) + "x" +
                          std::to_string(m.info.coded_height) + " exceeds the limit " +
                          std::to_string(lim.max_width) + "x" + std::to_string(lim.max_height) +
                          " (STUDIO_LIMIT_VIDEO_SIDE)",
                      path.string(),
                      "scale the video down first, or raise STUDIO_LIMIT_VIDEO_SIDE if the file is "
                      "trusted");
  const AVCodec* codec = avcodec_find_decoder(m.st->codecpar->codec_id);
  if (!codec)
    throw FormatError("unsupported video codec '" + m.info.codec + "' (no decoder in this FFmpeg)",
                      path.string(), "transcode it to H.264 with another tool first");
  m.dec.reset(avcodec_alloc_context3(codec));
  if (!m.dec) throw std::bad_alloc();
  int ret = avcodec_parameters_to_context(m.dec.get(), m.st->codecpar);
  if (ret < 0)
    throw FormatError("bad codec parameters: " + av_error_text(ret), path.string(), kOpenHint);
  m.dec->pkt_timebase = m.st->time_base;
  m.dec->thread_count = options.threads;
  ret = avcodec_open2(m.dec.get(), codec, nullptr);
  if (ret < 0)
    throw FormatError("cannot open the " + m.info.codec + " decoder: " + av_error_text(ret),
                      path.string(), "transcode it to H.264 with another tool first");

  if (m.info.fps.valid()) m.src_frame_s = 1.0 / m.info.fps.value();
  if (options.fps.valid() && options.fps.value() > 1000.0)
    throw UsageError("frame rate " + options.fps.str() + " is too high", path.string(),
                     "use at most 1000 fps");

  // Output size: the displayed size, or the requested one (a 0 keeps the aspect ratio).
  int w = options.width, h = options.height;
  if (w < 0 || h < 0) throw UsageError("negative output size", path.string(), "use WxH > 0");
  if (w == 0 && h == 0) {
    w = m.info.width;
    h = m.info.height;
  } else if (w == 0) {
    w = std::max(
        1, static_cast<int>(std::lround(static_cast<double>(h) * m.info.width / m.info.height)));
  } else if (h == 0) {
    h = std::max(
        1, static_cast<int>(std::lround(static_cast<double>(w) * m.info.height / m.info.width)));
  }
  if (w > lim.max_width || h > lim.max_height)
    throw UsageError("output size " + std::to_string(w) + "x" + std::to_string(h) +
                         " exceeds the limit " + std::to_string(lim.max_width) + "x" +
                         std::to_string(lim.max_height) + " (STUDIO_LIMIT_VIDEO_SIDE)",
                     path.string(), "ask for a smaller size");
  if (!options.apply_rotation) {
    w = options.width == 0 && options.height == 0 ? m.info.coded_width : w;
    h = options.width == 0 && options.height == 0 ? m.info.coded_height : h;
  }
  m.out_w = w;
  m.out_h = h;
  const int rotation = options.apply_rotation ? m.info.rotation_deg : 0;
  const bool swap = rotation == 90 || rotation == 270;
  m.scale_w = swap ? h : w;
  m.scale_h = swap ? w : h;

  if (options.start_s < 0 || options.duration_s < 0 || !std::isfinite(options.start_s) ||
      !std::isfinite(options.duration_s))
    throw UsageError("start and duration must be >= 0", path.string(), "");
  if (options.duration_s > 0) m.range_end = options.start_s + options.duration_s;
  const double span =
      std::min(m.range_end, std::max(m.info.duration_s, options.start_s)) - options.start_s;
  if (std::isfinite(span) && span > lim.max_duration_s)
    throw UsageError("the range to read (" + fmt_double(span) + " s) exceeds the limit of " +
                         fmt_double(lim.max_duration_s) + " s (STUDIO_LIMIT_VIDEO_SECONDS)",
                     path.string(),
                     "read a shorter range (start/duration) or raise STUDIO_LIMIT_VIDEO_SECONDS");
  if (options.start_s > 0) m.restart(options.start_s);
}

VideoReader::~VideoReader() = default;

const VideoInfo& VideoReader::info() const { return impl_->info; }
int VideoReader::output_width() const { return impl_->out_w; }
int VideoReader::output_height() const { return impl_->out_h; }
Rational VideoReader::output_fps() const {
  return impl_->opt.fps.valid() ? impl_->opt.fps : impl_->info.fps;
}
int64_t VideoReader::frames_read() const { return impl_->frames_read; }

bool VideoReader::read(Frame& frame) {
  return impl_->opt.fps.valid() ? impl_->read_cfr(frame) : impl_->read_native(frame);
}

void VideoReader::seek(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    throw UsageError("cannot seek to " + fmt_double(seconds) + " s", impl_->path.string(),
                     "seek to a time >= 0");
  impl_->restart(seconds);
}

// ---------------------------------------------------------------------------------------------
// VideoWriter

namespace {

std::atomic<int> g_temp_counter{0};

// Keys the MP4 muxer stores as standard iTunes-style atoms; others need `use_metadata_tags`.
const std::set<std::string>& standard_mp4_keys() {
  static const std::set<std::string> keys = {
      "title",    "artist",        "album_artist", "composer", "album",      "date",    "comment",
      "genre",    "copyright",     "description",  "synopsis", "show",       "network", "lyrics",
      "grouping", "encoding_tool", "encoder",      "keywords", "episode_id", "track",   "disc"};
  return keys;
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

struct VideoWriter::Impl {
  fs::path target, temp;
  WriterOptions opt;
  OutputPtr oc;
  CodecPtr enc;
  AVStream* vst = nullptr;
  FramePtr yuv = make_frame();
  PacketPtr pkt = make_packet();
  SwsPtr sws;
  std::vector<uint8_t> rgb_padded;  // write()'s input, with libav's padding after it
  int enc_w = 0, enc_h = 0;
  int64_t next_pts = 0;
  std::string encoder;
  std::vector<std::string> warnings;
  bool finished = false;
  // Audio passthrough.
  InputPtr ain;
  int aidx = -1;
  AVStream* ast = nullptr;
  PacketPtr apkt = make_packet();
  bool apkt_pending = false, audio_eof = false;

  ~Impl() {
    if (!finished) {
      oc.reset();  // closes the temporary file
      std::error_code ec;
      if (!temp.empty()) fs::remove(temp, ec);
    }
  }

  [[noreturn]] void fail_io(const std::string& what, int ret) {
    throw IoError(what + ": " + av_error_text(ret), target.string(),
                  "check that the folder exists, is writable and has space");
  }

  bool try_encoder(const std::string& name) {
    const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
    if (!codec) return false;
    CodecPtr c(avcodec_alloc_context3(codec));
    if (!c) throw std::bad_alloc();
    c->width = enc_w;
    c->height = enc_h;
    c->time_base = AVRational{opt.fps.den, opt.fps.num};
    c->framerate = AVRational{opt.fps.num, opt.fps.den};
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->gop_size = std::max(1, static_cast<int>(std::lround(2 * opt.fps.value())));
    c->color_range = AVCOL_RANGE_MPEG;
    c->colorspace = AVCOL_SPC_SMPTE170M;  // swscale's default RGB->YUV matrix (BT.601)
    c->color_primaries = AVCOL_PRI_SMPTE170M;
    c->color_trc = AVCOL_TRC_SMPTE170M;
    if (oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    Dict opts;
    if (opt.bit_rate > 0) {
      c->bit_rate = opt.bit_rate;
      if (name == "libx264") {
        c->rc_max_rate = opt.bit_rate;
        c->rc_buffer_size = static_cast<int>(std::min<int64_t>(2 * opt.bit_rate, INT32_MAX));
      }
    } else if (name == "libx264") {
      av_dict_set(&opts.d, "crf", std::to_string(opt.crf).c_str(), 0);
    } else if (name == "libopenh264") {
      c->bit_rate = static_cast<int64_t>(0.1 * enc_w * enc_h * opt.fps.value() *
                                         std::pow(2.0, (23 - opt.crf) / 6.0));
    } else {  // mpeg4 and others: constant quantiser from the CRF
      c->flags |= AV_CODEC_FLAG_QSCALE;
      const int q = std::clamp(2 + (opt.crf - 18) / 3, 2, 31);
      c->global_quality = FF_QP2LAMBDA * q;
    }
    if (name == "libx264") av_dict_set(&opts.d, "preset", opt.preset.c_str(), 0);
    const int ret = avcodec_open2(c.get(), codec, &opts.d);
    if (ret < 0) {
      warnings.push_back("encoder " + name + " could not be opened: " + av_error_text(ret));
      return false;
    }
    enc = std::move(c);
    encoder = name;
    return true;
  }

  void pump_audio(double until_s) {
    if (!ain) return;
    const AVStream* ist = ain->streams[aidx];
    const int64_t offset = static_cast<int64_t>(opt.audio_start_s / av_q2d(ist->time_base)) +
                           (ist->start_time != AV_NOPTS_VALUE ? ist->start_time : 0);
    while (!audio_eof) {
      if (!apkt_pending) {
        const int ret = av_read_frame(ain.get(), apkt.get());
        if (ret < 0) {  // end (or a damaged tail): the audio simply ends here
          audio_eof = true;
          if (ret != AVERROR_EOF)
            warnings.push_back("audio from " + opt.audio_source.string() +
                               " ended early: " + av_error_text(ret));
          break;
        }
        if (apkt->stream_index != aidx || apkt->pts == AV_NOPTS_VALUE) {
          av_packet_unref(apkt.get());
          continue;
        }
        if (apkt->pts < offset) {
          av_packet_unref(apkt.get());
          continue;
        }
        apkt_pending = true;
      }
      const double t = ts_seconds(apkt->pts - offset, ist->time_base);
      if (t >= until_s) break;
      apkt->pts -= offset;
      if (apkt->dts != AV_NOPTS_VALUE) apkt->dts -= offset;
      if (apkt->dts != AV_NOPTS_VALUE && apkt->dts < 0) apkt->dts = apkt->pts;
      av_packet_rescale_ts(apkt.get(), ist->time_base, ast->time_base);
      apkt->stream_index = ast->index;
      apkt->pos = -1;
      apkt_pending = false;
      const int ret = av_interleaved_write_frame(oc.get(), apkt.get());
      if (ret < 0) fail_io("cannot write audio", ret);
    }
  }

  void encode(const AVFrame* frame) {
    int ret = avcodec_send_frame(enc.get(), frame);
    if (ret < 0) fail_io("the " + encoder + " encoder refused a frame", ret);
    while (true) {
      ret = avcodec_receive_packet(enc.get(), pkt.get());
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      if (ret < 0) fail_io("encoding failed", ret);
      av_packet_rescale_ts(pkt.get(), enc->time_base, vst->time_base);
      pkt->stream_index = vst->index;
      if (pkt->dts != AV_NOPTS_VALUE) pump_audio(ts_seconds(pkt->dts, vst->time_base));
      ret = av_interleaved_write_frame(oc.get(), pkt.get());
      if (ret < 0) fail_io("cannot write video", ret);
    }
  }
};

VideoWriter::VideoWriter(const fs::path& path, WriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  quiet_libav();
  Impl& m = *impl_;
  m.target = path;
  m.opt = options;
  const Limits& lim = options.limits;
  if (options.width < 2 || options.height < 2 || options.width > lim.max_width ||
      options.height > lim.max_height)
    throw UsageError("video size " + std::to_string(options.width) + "x" +
                         std::to_string(options.height) + " is out of range",
                     path.string(),
                     "use 2x2 to " + std::to_string(lim.max_width) + "x" +
                         std::to_string(lim.max_height) +
                         " (the upper bound is STUDIO_LIMIT_VIDEO_SIDE)");
  if (!options.fps.valid() || options.fps.value() > 1000.0)
    throw UsageError("invalid frame rate " + options.fps.str(), path.string(),
                     "use a rate between 0.01 and 1000 fps");
  if (options.crf < 0 || options.crf > 51)
    throw UsageError("CRF " + std::to_string(options.crf) + " is out of range", path.string(),
                     "use 0 (lossless) to 51 (worst); 18-28 is usual");
  m.enc_w = options.width & ~1;
  m.enc_h = options.height & ~1;
  if (m.enc_w != options.width || m.enc_h != options.height)
    m.warnings.push_back("yuv420p needs even sizes: " + std::to_string(options.width) + "x" +
                         std::to_string(options.height) + " frames are scaled to " +
                         std::to_string(m.enc_w) + "x" + std::to_string(m.enc_h));

  std::string ext = path.extension().string();
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const char* muxer = ext == ".mp4" || ext == ".m4v" ? "mp4"
                      : ext == ".mov"                ? "mov"
                      : ext == ".mkv"                ? "matroska"
                                                     : nullptr;
  if (!muxer)
    throw UsageError("cannot write video as '" + ext + "'", path.string(),
                     "use a .mp4 (or .mov / .mkv) file name");
  std::error_code ec;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec))
    throw IoError("the output folder does not exist", path.string(), "create the folder first");
  m.temp = dir / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                  std::to_string(g_temp_counter++));

  AVFormatContext* raw = nullptr;
  int ret = avformat_alloc_output_context2(&raw, nullptr, muxer, m.temp.c_str());
  if (ret < 0 || !raw) m.fail_io("cannot set up the " + std::string(muxer) + " muxer", ret);
  m.oc.reset(raw);

  std::vector<std::string> candidates;
  if (!options.encoder.empty()) {
    size_t from = 0;
    while (from <= options.encoder.size()) {
      const size_t comma = std::min(options.encoder.find(',', from), options.encoder.size());
      if (comma > from) candidates.push_back(options.encoder.substr(from, comma - from));
      from = comma + 1;
    }
  }
  if (candidates.empty()) candidates = {"libx264", "libopenh264", "mpeg4"};
  for (const auto& name : candidates)
    if (m.try_encoder(name)) break;
  if (!m.enc)
    throw ConfigError("no usable video encoder (tried " + candidates.front() +
                          (candidates.size() > 1 ? " and fallbacks" : "") + ")",
                      path.string(), "install an FFmpeg with libx264 (Debian: libavcodec59)");
  if (m.encoder != candidates.front())
    m.warnings.push_back(
        candidates.front() + " is not available in this FFmpeg; encoded with " + m.encoder +
        " instead" +
        (m.encoder == "mpeg4" ? " (MPEG-4 Part 2: larger files; some players expect H.264)" : ""));

  m.vst = avformat_new_stream(m.oc.get(), nullptr);
  if (!m.vst) throw std::bad_alloc();
  ret = avcodec_parameters_from_context(m.vst->codecpar, m.enc.get());
  if (ret < 0) m.fail_io("cannot set the stream parameters", ret);
  m.vst->time_base = m.enc->time_base;
  m.vst->avg_frame_rate = AVRational{options.fps.num, options.fps.den};

  if (!options.audio_source.empty()) {
    m.ain = open_input(options.audio_source);
    m.aidx = av_find_best_stream(m.ain.get(), AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
    if (m.aidx < 0) {
      m.warnings.push_back(options.audio_source.string() + " has no audio; the clip is silent");
      m.ain.reset();
    } else {
      const AVCodecParameters* ap = m.ain->streams[m.aidx]->codecpar;
      if (avformat_query_codec(m.oc->oformat, ap->codec_id, FF_COMPLIANCE_NORMAL) != 1) {
        m.warnings.push_back(std::string("the source's audio (") + avcodec_get_name(ap->codec_id) +
                             ") cannot go into " + muxer + " unchanged; the clip is silent");
        m.ain.reset();
      } else {
        for (unsigned i = 0; i < m.ain->nb_streams; ++i)
          if (static_cast<int>(i) != m.aidx) m.ain->streams[i]->discard = AVDISCARD_ALL;
        m.ast = avformat_new_stream(m.oc.get(), nullptr);
        if (!m.ast) throw std::bad_alloc();
        ret = avcodec_parameters_copy(m.ast->codecpar, ap);
        if (ret < 0) m.fail_io("cannot copy the audio parameters", ret);
        m.ast->codecpar->codec_tag = 0;
        m.ast->time_base = m.ain->streams[m.aidx]->time_base;
        if (options.audio_start_s > 0) {
          const AVStream* ist = m.ain->streams[m.aidx];
          const int64_t ts = static_cast<int64_t>(options.audio_start_s / av_q2d(ist->time_base));
          av_seek_frame(m.ain.get(), m.aidx, ts, AVSEEK_FLAG_BACKWARD);
        }
      }
    }
  }

  bool extra_keys = false;
  for (const auto& [k, v] : options.metadata) {
    av_dict_set(&m.oc->metadata, k.c_str(), v.c_str(), 0);
    if (!standard_mp4_keys().count(k)) extra_keys = true;
  }

  ret = avio_open(&m.oc->pb, m.temp.c_str(), AVIO_FLAG_WRITE);
  if (ret < 0) m.fail_io("cannot create the file", ret);
  Dict mux_opts;
  if (std::string(muxer) != "matroska") {
    std::string flags;
    if (options.faststart) flags += "+faststart";
    if (extra_keys) flags += "+use_metadata_tags";
    if (!flags.empty()) av_dict_set(&mux_opts.d, "movflags", flags.c_str(), 0);
  }
  ret = avformat_write_header(m.oc.get(), &mux_opts.d);
  if (ret < 0) m.fail_io("cannot write the file header", ret);

  m.yuv->format = AV_PIX_FMT_YUV420P;
  m.yuv->width = m.enc_w;
  m.yuv->height = m.enc_h;
  ret = av_frame_get_buffer(m.yuv.get(), 0);
  if (ret < 0) throw std::bad_alloc();
}

VideoWriter::~VideoWriter() = default;

void VideoWriter::write(const Frame& frame) {
  write(frame.rgb.data(), frame.width, frame.height, frame.stride ? frame.stride : frame.width * 3);
}

void VideoWriter::write(const uint8_t* rgb, int width, int height, int stride) {
  Impl& m = *impl_;
  if (m.finished)
    throw UsageError("write() after finish()", m.target.string(), "open a new VideoWriter");
  if (width != m.opt.width || height != m.opt.height || stride < width * 3 || !rgb)
    throw UsageError("frame of " + std::to_string(width) + "x" + std::to_string(height) +
                         " does not match the video's " + std::to_string(m.opt.width) + "x" +
                         std::to_string(m.opt.height),
                     m.target.string(), "scale the frames to the size the writer was opened with");
  if (m.next_pts >= m.opt.limits.max_frames ||
      static_cast<double>(m.next_pts + 1) / m.opt.fps.value() > m.opt.limits.max_duration_s)
    throw UsageError("the clip would exceed the writer's limit (" +
                         std::to_string(m.opt.limits.max_frames) + " frames, " +
                         fmt_double(m.opt.limits.max_duration_s) +
                         " s; STUDIO_LIMIT_VIDEO_FRAMES, STUDIO_LIMIT_VIDEO_SECONDS)",
                     m.target.string(), "write a shorter clip or raise the limits");
  m.sws.reset(sws_getCachedContext(m.sws.release(), width, height, AV_PIX_FMT_RGB24, m.enc_w,
                                   m.enc_h, AV_PIX_FMT_YUV420P, SWS_BICUBIC, nullptr, nullptr,
                                   nullptr));
  if (!m.sws) throw std::bad_alloc();
  int ret = av_frame_make_writable(m.yuv.get());
  if (ret < 0) throw std::bad_alloc();
  // swscale's SIMD input readers load up to 16 bytes past the last pixel: scale from a copy
  // with libav's input padding, not from the caller's buffer (which ends at the last pixel).
  const size_t row = static_cast<size_t>(width) * 3;
  m.rgb_padded.resize(row * height + AV_INPUT_BUFFER_PADDING_SIZE);
  for (int y = 0; y < height; ++y)
    std::memcpy(m.rgb_padded.data() + row * y, rgb + static_cast<size_t>(stride) * y, row);
  const uint8_t* src[4] = {m.rgb_padded.data(), nullptr, nullptr, nullptr};
  const int src_stride[4] = {static_cast<int>(row), 0, 0, 0};
  sws_scale(m.sws.get(), src, src_stride, 0, height, m.yuv->data, m.yuv->linesize);
  m.yuv->pts = m.next_pts++;
  m.encode(m.yuv.get());
}

void VideoWriter::finish() {
  Impl& m = *impl_;
  if (m.finished) return;
  if (m.next_pts == 0)
    throw UsageError("no frames were written", m.target.string(), "write at least one frame");
  m.encode(nullptr);
  m.pump_audio(static_cast<double>(m.next_pts) / m.opt.fps.value());
  int ret = av_write_trailer(m.oc.get());
  if (ret < 0) m.fail_io("cannot finish the file", ret);
  ret = avio_closep(&m.oc->pb);
  if (ret < 0) m.fail_io("cannot close the file", ret);
  m.oc.reset();
  fsync_path(m.temp, false);
  std::error_code ec;
  fs::rename(m.temp, m.target, ec);
  if (ec)
    throw IoError("cannot rename the finished file into place: " + ec.message(), m.target.string(),
                  "check the folder's permissions");
  m.finished = true;
  fsync_path(m.target.has_parent_path() ? m.target.parent_path() : fs::path("."), true);
}

const std::string& VideoWriter::encoder_name() const { return impl_->encoder; }
const std::vector<std::string>& VideoWriter::warnings() const { return impl_->warnings; }
int64_t VideoWriter::frames_written() const { return impl_->next_pts; }

}  // namespace studio::video
