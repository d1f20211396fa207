// Image decoding without libtorch: OpenImageIO (libwebp for WebP) into a sample buffer, the
// pixel-count limit checked from the header before anything is allocated; read_image_metadata.
#include "image/image_decode.h"

#include <OpenImageIO/imageio.h>
#include <webp/decode.h>
#include <webp/mux.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/limits.h"

namespace studio::image {

namespace fs = std::filesystem;

namespace detail {

const char* const kBadImageHint =
    "the file is truncated, corrupt or not a supported image; re-export or re-download it";

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// OpenImageIO's messages end with newlines and sometimes repeat; keep them on one line.
std::string one_line(const std::string& s) {
  std::string out;
  std::size_t begin = 0;
  while (begin <= s.size()) {
    std::size_t end = s.find_first_of("\r\n", begin);
    if (end == std::string::npos) end = s.size();
    const std::string line = s.substr(begin, end - begin);
    if (!line.empty()) out += (out.empty() ? "" : "; ") + line;
    begin = end + 1;
  }
  return out.empty() ? "no details given" : out;
}

}  // namespace detail

namespace {

using detail::kBadImageHint;
using detail::lowercase;
using detail::one_line;

void check_readable(const fs::path& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) {
    throw IoError("image file not found", path.string(), "check the path");
  }
  if (fs::is_directory(st)) {
    throw IoError("expected an image file, found a folder", path.string(),
                  "give the path of an image file");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    throw IoError(std::string("cannot open image file: ") + std::strerror(errno), path.string(),
                  "check the file's read permission");
  }
}

std::string read_head(const fs::path& path, std::size_t n) {
  std::ifstream f(path, std::ios::binary);
  std::string s(n, '\0');
  f.read(s.data(), static_cast<std::streamsize>(n));
  s.resize(static_cast<std::size_t>(std::max<std::streamsize>(f.gcount(), 0)));
  return s;
}

bool is_webp(const std::string& head) {
  return head.size() >= 12 && head.compare(0, 4, "RIFF") == 0 && head.compare(8, 4, "WEBP") == 0;
}

std::string read_all(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    throw IoError(std::string("cannot open image file: ") + std::strerror(errno), path.string(),
                  "check the file's read permission");
  }
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void check_pixel_limit(int64_t width, int64_t height, const ImageReadOptions& opt,
                       const std::string& where) {
  if (width <= 0 || height <= 0) {
    throw FormatError(
        "the image has no pixels (" + std::to_string(width) + "x" + std::to_string(height) + ")",
        where, kBadImageHint);
  }
  if (width * height > opt.max_pixels) {
    const OverLimit o = describe_over_limit(
        limit_spec("image_pixels"), width * height, opt.max_pixels,
        "the image is " + std::to_string(width) + "x" + std::to_string(height) + " =",
        "downscale the image");
    throw FormatError(o.what + "; checked before decoding", where, o.hint);
  }
}

// libpng allocates a chunk's declared length before reading it: a 550-byte PNG whose text chunk
// claims 1.8 GB made OpenImageIO's reader allocate that much (found by
// tests/fuzz/fuzz_image_import). A chunk that claims more bytes than the file has left is refused
// here, before OpenImageIO opens the file; a PNG whose chunks fit is left to it.
void check_png_chunks(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  char sig[8];
  if (!f.read(sig, 8) || std::memcmp(sig, "\x89PNG\r\n\x1a\n", 8) != 0) return;
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return;
  uint64_t pos = 8;
  unsigned char h[8];
  while (pos + 8 <= size) {
    f.seekg(static_cast<std::streamoff>(pos));
    if (!f.read(reinterpret_cast<char*>(h), 8)) return;
    const uint64_t len =
        (uint64_t{h[0]} << 24) | (uint64_t{h[1]} << 16) | (uint64_t{h[2]} << 8) | uint64_t{h[3]};
    std::string type;
    for (int i = 4; i < 8; ++i) type += std::isalpha(h[i]) ? static_cast<char>(h[i]) : '?';
    if (pos + 12 + len > size) {
      throw FormatError("the PNG chunk '" + type + "' at byte " + std::to_string(pos) +
                            " runs past the end of the file (declares " + std::to_string(len) +
                            " bytes + 12 of framing, " + std::to_string(size - pos) + " left)",
                        path.string(), kBadImageHint);
    }
    if (type == "IEND") return;
    pos += 12 + len;
  }
}

// OpenEXR allocates an attribute's declared size while reading the header (1.9 GB for a 217-byte
// file whose string attribute says so; found by tests/fuzz/fuzz_image_import): an attribute that
// claims more bytes than the file has left is refused here, before OpenImageIO opens the file.
// OpenEXR does not always read the declared size: a channel list is read up to its empty name and
// a fixed-size type (box2i, float, ...) reads its own size, so a header whose sizes disagree with
// the contents is read by OpenEXR from another offset than ours, where a string's length can be
// any 4 bytes (found by the fuzzer too). Such a header is refused, so both framings agree.

// The bytes OpenEXR reads for a fixed-size attribute type, whatever the header declares; 0 for
// the types whose size comes from the header.
uint64_t exr_fixed_size(const std::string& type) {
  // clang-format off
  static const std::pair<const char*, uint64_t> kSizes[] = {
      {"box2i", 16}, {"box2f", 16}, {"v2i", 8}, {"v2f", 8}, {"v2d", 16}, {"v3i", 12},
      {"v3f", 12}, {"v3d", 24}, {"int", 4}, {"float", 4}, {"double", 8}, {"compression", 1},
      {"lineOrder", 1}, {"envmap", 1}, {"deepImageState", 1}, {"chromaticities", 32},
      {"keycode", 28}, {"timecode", 8}, {"rational", 8}, {"m33f", 36}, {"m33d", 72},
      {"m44f", 64}, {"m44d", 128}, {"tiledesc", 9}};
  // clang-format on
  for (const auto& [name, bytes] : kSizes)
    if (type == name) return bytes;
  return 0;
}

uint32_t le32(const unsigned char* b) {
  return uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
}

void check_exr_header(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char h[8];
  if (!f.read(reinterpret_cast<char*>(h), 8) || h[0] != 0x76 || h[1] != 0x2f || h[2] != 0x31 ||
      h[3] != 0x01)
    return;
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return;
  const bool multipart = (h[5] & 0x10) != 0;  // version flags, bit 12
  auto read_name = [&](std::string& out) {
    out.clear();
    char c;
    while (f.get(c)) {
      if (c == '\0') return true;
      if (out.size() >= 255) return false;
      out += c;
    }
    return false;
  };
  auto refuse = [&](const std::string& what) {
    throw FormatError("the EXR header attribute " + what, path.string(), kBadImageHint);
  };
  for (;;) {  // headers (several for a multi-part file, ended by an empty one)
    int attributes = 0;
    std::string name, type;
    for (;;) {
      if (!read_name(name)) return;  // malformed: left to OpenEXR
      if (name.empty()) break;
      if (!read_name(type)) return;
      unsigned char b[8];
      if (!f.read(reinterpret_cast<char*>(b), 4)) return;
      const auto len = static_cast<int32_t>(le32(b));
      const auto pos = static_cast<uint64_t>(f.tellg());
      if (len < 0 || pos + static_cast<uint64_t>(len) > size) {
        refuse("'" + name + "' declares " + std::to_string(len) + " bytes, more than the " +
               std::to_string(size - std::min(pos, size)) + " left in the file");
      }
      const auto declared = static_cast<uint64_t>(len);
      const auto says = [&](uint64_t takes) {
        return "'" + name + "' (" + type + ") declares " + std::to_string(declared) +
               " bytes but its contents take " + std::to_string(takes);
      };
      if (const uint64_t fixed = exr_fixed_size(type); fixed != 0) {
        if (declared != fixed) refuse(says(fixed));
      } else if (type == "chlist") {  // entries: name, 16 bytes; an empty name ends the list
        std::string channel;
        for (;;) {
          if (!read_name(channel)) return;
          if (channel.empty()) break;
          if (!f.seekg(16, std::ios::cur)) return;
        }
        const auto end = static_cast<uint64_t>(f.tellg());
        if (end != pos + declared) refuse(says(end - pos));
      } else if (type == "preview") {  // width, height, then 4 bytes per pixel
        if (declared < 8) refuse(says(8));
        if (!f.read(reinterpret_cast<char*>(b), 8)) return;
        const uint64_t pixels = uint64_t{le32(b)} * uint64_t{le32(b + 4)};  // < 2^64
        if (pixels != (declared - 8) / 4 || (declared - 8) % 4 != 0) {
          refuse("'" + name + "' (preview) declares " + std::to_string(declared) + " bytes but a " +
                 std::to_string(le32(b)) + "x" + std::to_string(le32(b + 4)) +
                 " preview takes 8 + 4 per pixel");
        }
      } else if (type == "stringvector") {  // (length, bytes) pairs filling the attribute
        uint64_t at = 0;
        while (at < declared) {
          if (declared - at < 4 || !f.read(reinterpret_cast<char*>(b), 4)) refuse(says(at + 4));
          const auto n = static_cast<int32_t>(le32(b));
          at += 4;
          if (n < 0 || static_cast<uint64_t>(n) > declared - at) {
            refuse("'" + name + "' (stringvector) holds a string of " + std::to_string(n) +
                   " bytes, more than the " + std::to_string(declared - at) + " left in it");
          }
          at += static_cast<uint64_t>(n);
          f.seekg(n, std::ios::cur);
        }
      }
      f.clear();
      f.seekg(static_cast<std::streamoff>(pos + declared), std::ios::beg);
      ++attributes;
    }
    if (!multipart || attributes == 0) return;
  }
}

// OpenImageIO's GIF reader decodes the first frame as it opens the file, into a canvas the size of
// the logical screen whose byte count overflows an int past 2^31: a 110-byte GIF declaring
// 65531x65531 ended the process with a std::length_error thrown where nothing can catch it (found
// by tests/fuzz/fuzz_image_import). The screen is checked against the pixel limit before
// OpenImageIO opens the file, and against what its reader can hold whatever the limit.
void check_gif_screen(const fs::path& path, const std::string& h, const ImageReadOptions& opt) {
  if (h.size() < 10) return;
  const auto u16 = [&](size_t at) {
    return int64_t{static_cast<unsigned char>(h[at])} |
           (int64_t{static_cast<unsigned char>(h[at + 1])} << 8);
  };
  const int64_t width = u16(6), height = u16(8);
  if (width == 0 || height == 0) return;  // no screen size: left to the reader
  check_pixel_limit(width, height, opt, path.string());
  if (width * height * 4 > std::numeric_limits<int32_t>::max()) {
    throw FormatError("the GIF's logical screen is " + std::to_string(width) + "x" +
                          std::to_string(height) +
                          ", more than OpenImageIO's GIF reader can hold (2^31 bytes of RGBA)",
                      path.string(), "convert the image to PNG or TIFF first");
  }
}

// The checks of a file's own structure that must run before a library opens it (each stops the
// library allocating what the file claims), picked by the file's magic; returns its first 16 bytes.
std::string check_before_opening(const fs::path& path, const ImageReadOptions& opt) {
  check_readable(path);
  std::string head = read_head(path, 16);
  if (head.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) == 0)
    check_png_chunks(path);
  else if (head.compare(0, 4, "\x76\x2f\x31\x01", 4) == 0)
    check_exr_header(path);
  else if (head.compare(0, 3, "GIF") == 0)
    check_gif_screen(path, head, opt);
  return head;
}

std::string sample_type_name(OIIO::TypeDesc t) {
  if (t == OIIO::TypeDesc::UINT8) return "uint8";
  if (t == OIIO::TypeDesc::UINT16) return "uint16";
  if (t == OIIO::TypeDesc::HALF) return "half";
  if (t == OIIO::TypeDesc::FLOAT) return "float";
  return t.c_str();
}

void fill_from_spec(const OIIO::ImageSpec& spec, const std::string& format, ImageMetadata& md) {
  md.format = format;
  md.width = spec.width;
  md.height = spec.height;
  md.channels = spec.nchannels;
  md.sample_type = sample_type_name(spec.format);
  md.bit_depth =
      spec.get_int_attribute("oiio:BitsPerSample", static_cast<int>(spec.format.size()) * 8);
  const int o = spec.get_int_attribute("Orientation", 1);
  md.orientation = o >= 1 && o <= 8 ? o : 1;
  for (const auto& p : spec.extra_attribs) {
    const OIIO::TypeDesc t = p.type();
    if (t != OIIO::TypeDesc::STRING && t.numelements() * p.nvalues() > 16) continue;  // blobs
    md.entries[p.name().string()] =
        t == OIIO::TypeDesc::STRING ? std::string(p.get_ustring().string()) : p.get_string(16);
  }
}

bool is_linear_colour_space(const std::string& name, const std::string& format) {
  const std::string n = lowercase(name);
  if (n.empty()) return format == "openexr" || format == "hdr";
  return n.find("linear") != std::string::npos || n.rfind("lin_", 0) == 0;
}

DecodedImage decode_oiio(const fs::path& path, const ImageReadOptions& opt, ImageMetadata& md) {
  const std::string where = path.string();
  OIIO::ImageSpec config;
  config.attribute("oiio:UnassociatedAlpha", 1);  // PNG/TIFF: straight alpha as stored
  auto in = OIIO::ImageInput::open(path.string(), &config);
  if (!in) {
    throw FormatError("cannot read the image: " + one_line(OIIO::geterror()), where, kBadImageHint);
  }
  const OIIO::ImageSpec spec = in->spec();
  fill_from_spec(spec, in->format_name(), md);
  if (spec.deep) throw FormatError("deep images are not supported", where, kBadImageHint);
  if (spec.depth > 1) {
    throw FormatError("volume images are not supported", where, "export a 2D image");
  }
  check_pixel_limit(spec.width, spec.height, opt, where);

  DecodedImage raw;
  const int nch = spec.nchannels;
  if (nch < 1) throw FormatError("the image has no channels", where, kBadImageHint);
  raw.alpha = spec.alpha_channel >= 0 && spec.alpha_channel < nch ? spec.alpha_channel : -1;
  // Colour channels: R, G, B by name, else the first non-alpha channels (1 = grey).
  std::vector<int> rgb;
  for (const char* want : {"R", "G", "B"}) {
    for (int c = 0; c < nch; ++c) {
      if (spec.channelnames.size() > static_cast<std::size_t>(c) &&
          lowercase(spec.channelnames[c]) == lowercase(want)) {
        rgb.push_back(c);
        break;
      }
    }
  }
  if (rgb.size() != 3) {
    rgb.clear();
    for (int c = 0; c < nch && rgb.size() < 3; ++c) {
      if (c != raw.alpha) rgb.push_back(c);
    }
    if (rgb.size() == 2) rgb.resize(1);
  }
  if (rgb.empty()) throw FormatError("the image has only an alpha channel", where, kBadImageHint);
  raw.colour = rgb;
  int nread = raw.alpha + 1;
  for (int c : rgb) nread = std::max(nread, c + 1);
  if (static_cast<double>(spec.width) * spec.height * nread > 4.0 * opt.max_pixels) {
    throw FormatError("the colour channels come after " + std::to_string(nread - 4) +
                          " other channels; reading them would exceed the size limit",
                      where, "export the image with R, G, B (and A) as its first channels");
  }

  // 8- and 16-bit files are read as integers and scaled here, so that 8-bit values become exactly
  // v / 255.0f as numpy computes them; everything else is converted by OpenImageIO to float.
  bool uniform = true;
  for (const auto& f : spec.channelformats) uniform = uniform && f == spec.format;
  OIIO::TypeDesc read_type = OIIO::TypeDesc::FLOAT;
  if (uniform && spec.format == OIIO::TypeDesc::UINT8) read_type = OIIO::TypeDesc::UINT8;
  if (uniform && spec.format == OIIO::TypeDesc::UINT16) read_type = OIIO::TypeDesc::UINT16;
  raw.height = spec.height;
  raw.width = spec.width;
  raw.channels = nread;
  raw.sample = read_type == OIIO::TypeDesc::UINT8    ? SampleType::kUint8
               : read_type == OIIO::TypeDesc::UINT16 ? SampleType::kUint16
                                                     : SampleType::kFloat;
  raw.bytes.resize(static_cast<std::size_t>(raw.height * raw.width * nread) *
                   sample_size(raw.sample));
  const bool ok = in->read_image(0, 0, 0, nread, read_type, raw.bytes.data());
  if (!ok || in->has_error()) {
    throw FormatError("cannot decode the image: " + one_line(in->geterror()), where, kBadImageHint);
  }
  in->close();
  raw.associated_alpha = raw.alpha >= 0 && spec.get_int_attribute("oiio:UnassociatedAlpha", 0) == 0;
  raw.linear = is_linear_colour_space(spec.get_string_attribute("oiio:ColorSpace"), md.format);
  if (const OIIO::ParamValue* p = spec.find_attribute("ICCProfile")) {
    if (p->type().basetype == OIIO::TypeDesc::UINT8 && p->datasize() > 0) {
      raw.icc.assign(static_cast<const char*>(p->data()), p->datasize());
    }
  }
  return raw;
}

DecodedImage decode_webp(const fs::path& path, const ImageReadOptions& opt, ImageMetadata& md) {
  const std::string where = path.string();
  const std::string data = read_all(path);
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  WebPBitstreamFeatures f;
  const VP8StatusCode status = WebPGetFeatures(bytes, data.size(), &f);
  if (status != VP8_STATUS_OK) {
    throw FormatError("cannot read the WebP header (libwebp status " + std::to_string(status) + ")",
                      where, kBadImageHint);
  }
  md.format = "webp";
  md.width = f.width;
  md.height = f.height;
  md.channels = f.has_alpha ? 4 : 3;
  md.bit_depth = 8;
  md.sample_type = "uint8";
  if (f.has_animation) {
    throw FormatError("animated WebP is not supported", where, "export a single frame");
  }
  check_pixel_limit(f.width, f.height, opt, where);
  const int c = f.has_alpha ? 4 : 3;
  DecodedImage raw;
  raw.height = f.height;
  raw.width = f.width;
  raw.channels = c;
  raw.sample = SampleType::kUint8;
  raw.bytes.resize(static_cast<std::size_t>(raw.height * raw.width * c));
  auto* out = raw.bytes.data();
  const std::size_t size = raw.bytes.size();
  const uint8_t* res = f.has_alpha ? WebPDecodeRGBAInto(bytes, data.size(), out, size, f.width * 4)
                                   : WebPDecodeRGBInto(bytes, data.size(), out, size, f.width * 3);
  if (!res) {
    throw FormatError("cannot decode the WebP image data (libwebp failed)", where, kBadImageHint);
  }
  raw.colour = {0, 1, 2};
  raw.alpha = f.has_alpha ? 3 : -1;
  WebPData whole{bytes, data.size()};
  if (WebPMux* mux = WebPMuxCreate(&whole, 0)) {
    WebPData icc{nullptr, 0};
    if (WebPMuxGetChunk(mux, "ICCP", &icc) == WEBP_MUX_OK && icc.size > 0) {
      raw.icc.assign(reinterpret_cast<const char*>(icc.bytes), icc.size);
    }
    WebPMuxDelete(mux);
  }
  return raw;
}

}  // namespace

std::size_t sample_size(SampleType t) {
  switch (t) {
    case SampleType::kUint8:
      return 1;
    case SampleType::kUint16:
      return 2;
    case SampleType::kFloat:
      break;
  }
  return 4;
}

DecodedImage decode_image(const fs::path& path, const ImageReadOptions& options) {
  const std::string head = check_before_opening(path, options);
  const std::string where = path.string();
  DecodedImage raw;
  ImageMetadata md;
  try {
    raw = is_webp(head) ? decode_webp(path, options, md) : decode_oiio(path, options, md);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw FormatError(std::string("cannot decode the image: ") + e.what(), where, kBadImageHint);
  }
  detail::add_file_metadata(path, md);
  raw.metadata = std::move(md);
  return raw;
}

ImageMetadata read_image_metadata(const fs::path& path) {
  const std::string head = check_before_opening(path, ImageReadOptions{});
  const std::string where = path.string();
  ImageMetadata md;
  if (is_webp(head)) {
    const std::string data = read_head(path, 64);
    WebPBitstreamFeatures f;
    if (WebPGetFeatures(reinterpret_cast<const uint8_t*>(data.data()), data.size(), &f) !=
        VP8_STATUS_OK) {
      // The header may need more bytes (VP8X with metadata first): read the whole file.
      const std::string all = read_all(path);
      if (WebPGetFeatures(reinterpret_cast<const uint8_t*>(all.data()), all.size(), &f) !=
          VP8_STATUS_OK) {
        throw FormatError("cannot read the WebP header", where, kBadImageHint);
      }
    }
    md.format = "webp";
    md.width = f.width;
    md.height = f.height;
    md.channels = f.has_alpha ? 4 : 3;
    md.bit_depth = 8;
    md.sample_type = "uint8";
  } else {
    OIIO::ImageSpec config;
    config.attribute("oiio:UnassociatedAlpha", 1);
    auto in = OIIO::ImageInput::open(path.string(), &config);
    if (!in) {
      throw FormatError("cannot read the image header: " + one_line(OIIO::geterror()), where,
                        kBadImageHint);
    }
    fill_from_spec(in->spec(), in->format_name(), md);
    in->close();
  }
  detail::add_file_metadata(path, md);
  return md;
}

}  // namespace studio::image
