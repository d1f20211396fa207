// Pixel side of image I/O: image_decode.cpp decodes (torch-free); here the samples become tensors
// and orientation, alpha and colour are normalised on them; outputs are encoded in memory, given
// their metadata (image_metadata.cpp) and written atomically.
#include "image/image_io.h"

#include <ATen/ATen.h>
#include <OpenImageIO/filesystem.h>
#include <OpenImageIO/imageio.h>
#include <lcms2.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/limits.h"
#include "image/image_decode.h"

namespace studio::image {

namespace fs = std::filesystem;

namespace {

using detail::lowercase;
using detail::one_line;

std::string shape_string(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

// The decoded samples as [H, W, N] float32: 8-bit values become v / 255.0f exactly as numpy
// computes them, 16-bit ones v / 65535; float samples are copied as decoded.
at::Tensor samples_to_float(DecodedImage& raw) {
  const std::vector<int64_t> shape = {raw.height, raw.width, raw.channels};
  switch (raw.sample) {
    case SampleType::kUint8:
      return at::from_blob(raw.bytes.data(), shape, at::kByte).to(at::kFloat).div_(255.0);
    case SampleType::kUint16:
      return at::from_blob(raw.bytes.data(), shape, at::kShort)
          .to(at::kInt)
          .bitwise_and_(0xFFFF)
          .to(at::kFloat)
          .div_(65535.0);
    case SampleType::kFloat:
      break;
  }
  return at::from_blob(raw.bytes.data(), shape, at::kFloat).clone();
}

// ---------------------------------------------------------------------------------------------
// Colour helpers on tensors

at::Tensor srgb_encode(const at::Tensor& linear) {
  const at::Tensor x = linear.clamp_min(0.0);
  return at::where(x <= 0.0031308, x * 12.92, at::pow(x, 1.0 / 2.4) * 1.055 - 0.055);
}

at::Tensor srgb_decode(const at::Tensor& encoded) {
  return at::where(encoded <= 0.04045, encoded / 12.92, at::pow((encoded + 0.055) / 1.055, 2.4));
}

// Rotates/flips [H, W, C] so that it looks as the EXIF orientation says it should be displayed.
at::Tensor apply_exif_orientation(const at::Tensor& hwc, int orientation) {
  switch (orientation) {
    case 2:
      return hwc.flip({1});  // mirrored horizontally
    case 3:
      return hwc.flip({0, 1});  // rotated 180
    case 4:
      return hwc.flip({0});  // mirrored vertically
    case 5:
      return hwc.transpose(0, 1);  // transposed
    case 6:
      return hwc.transpose(0, 1).flip({1});  // stored rotated 90 CCW: turn 90 CW
    case 7:
      return hwc.transpose(0, 1).flip({0, 1});  // transversed
    case 8:
      return hwc.transpose(0, 1).flip({0});  // stored rotated 90 CW: turn 90 CCW
    default:
      return hwc;
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

// Converts [H, W, 3] float colours from an RGB ICC profile to sRGB. Returns the profile's
// description, or "" when nothing was done (not an RGB profile, already sRGB, unreadable).
std::string icc_to_srgb(at::Tensor& rgb, const std::string& icc) {
  cmsHPROFILE in = cmsOpenProfileFromMem(icc.data(), static_cast<cmsUInt32Number>(icc.size()));
  if (!in) return "";
  std::string desc;
  char buf[256] = {0};
  if (cmsGetProfileInfoASCII(in, cmsInfoDescription, "en", "US", buf, sizeof(buf)) > 0) desc = buf;
  if (desc.empty()) desc = "embedded ICC profile";
  const bool rgb_profile = cmsGetColorSpace(in) == cmsSigRgbData;
  if (!rgb_profile || lowercase(desc).find("srgb") != std::string::npos) {
    cmsCloseProfile(in);
    return "";
  }
  cmsHPROFILE out = cmsCreate_sRGBProfile();
  cmsHTRANSFORM t =
      out ? cmsCreateTransform(in, TYPE_RGB_FLT, out, TYPE_RGB_FLT, INTENT_PERCEPTUAL, 0) : nullptr;
  cmsCloseProfile(in);
  if (out) cmsCloseProfile(out);
  if (!t) return "";
  at::Tensor src = rgb.contiguous();
  at::Tensor dst = at::empty_like(src);
  const int64_t npix = src.size(0) * src.size(1);
  constexpr int64_t kChunk = int64_t{1} << 20;  // cmsDoTransform takes a 32-bit pixel count
  for (int64_t i = 0; i < npix; i += kChunk) {
    const int64_t n = std::min(kChunk, npix - i);
    cmsDoTransform(t, src.data_ptr<float>() + 3 * i, dst.data_ptr<float>() + 3 * i,
                   static_cast<cmsUInt32Number>(n));
  }
  cmsDeleteTransform(t);
  rgb = dst;
  return desc;
}

// ---------------------------------------------------------------------------------------------
// Encoding

std::string output_format(const fs::path& path) {
  const std::string ext = lowercase(path.extension().string());
  if (ext == ".png") return "png";
  if (ext == ".jpg" || ext == ".jpeg") return "jpeg";
  if (ext == ".webp") return "webp";
  if (ext == ".tif" || ext == ".tiff") return "tiff";
  if (ext == ".exr") return "openexr";
  return "";
}

int resolve_bit_depth(const std::string& format, int requested, const std::string& where) {
  const bool exr = format == "openexr";
  const int bits = requested == 0 ? (exr ? 16 : 8) : requested;
  bool ok = false;
  if (format == "png" || format == "tiff") ok = bits == 8 || bits == 16;
  if (format == "jpeg" || format == "webp") ok = bits == 8;
  if (exr) ok = bits == 16 || bits == 32;
  if (!ok) {
    throw UsageError(std::to_string(bits) + " bits per sample cannot be written as " + format,
                     where,
                     "PNG and TIFF take 8 or 16, JPEG and WebP 8, EXR 16 (half) or 32 (float)");
  }
  return bits;
}

std::string encode_oiio(const std::string& format, const OIIO::ImageSpec& spec,
                        OIIO::TypeDesc data_type, const void* data, const std::string& where) {
  std::vector<unsigned char> buf;
  OIIO::Filesystem::IOVecOutput vecout(buf);
  auto out = OIIO::ImageOutput::create(format);
  if (!out) {
    throw FormatError("OpenImageIO has no " + format + " writer: " + one_line(OIIO::geterror()),
                      where, "install an OpenImageIO build with " + format + " support");
  }
  auto fail = [&](const char* what) {
    return FormatError(std::string(what) + " " + format + ": " + one_line(out->geterror()), where,
                       "this is a bug in studio or OpenImageIO; report it");
  };
  if (!out->set_ioproxy(&vecout)) throw fail("cannot encode to memory as");
  if (!out->open(where, spec)) throw fail("cannot start encoding");
  if (!out->write_image(data_type, data)) throw fail("cannot encode");
  if (!out->close()) throw fail("cannot finish encoding");
  return std::string(buf.begin(), buf.end());
}

std::string encode_webp(const at::Tensor& u8, const ImageWriteOptions& opt,
                        const std::string& where) {
  const int h = static_cast<int>(u8.size(0)), w = static_cast<int>(u8.size(1));
  const int c = static_cast<int>(u8.size(2));
  if (w > WEBP_MAX_DIMENSION || h > WEBP_MAX_DIMENSION) {
    throw UsageError("WebP images are at most " + std::to_string(WEBP_MAX_DIMENSION) +
                         " pixels wide and high, this one is " + std::to_string(w) + "x" +
                         std::to_string(h),
                     where, "write PNG or TIFF, or downscale");
  }
  WebPConfig config;
  if (!WebPConfigInit(&config)) throw FormatError("libwebp version mismatch", where, "");
  if (opt.webp_lossless) {
    WebPConfigLosslessPreset(&config, 6);
  } else {
    WebPConfigPreset(&config, WEBP_PRESET_DEFAULT,
                     static_cast<float>(std::clamp(opt.webp_quality, 1, 100)));
    config.method = 4;
    config.use_sharp_yuv = 1;
  }
  config.exact = 1;  // keep the colour under transparent pixels (straight alpha round trips)
  if (!WebPValidateConfig(&config)) {
    throw UsageError("invalid WebP settings", where, "webp_quality is 1..100");
  }
  WebPPicture pic;
  if (!WebPPictureInit(&pic)) throw FormatError("libwebp version mismatch", where, "");
  pic.width = w;
  pic.height = h;
  pic.use_argb = opt.webp_lossless ? 1 : 0;
  const auto* px = u8.data_ptr<uint8_t>();
  const int imported =
      c == 4 ? WebPPictureImportRGBA(&pic, px, w * 4) : WebPPictureImportRGB(&pic, px, w * 3);
  WebPMemoryWriter writer;
  WebPMemoryWriterInit(&writer);
  pic.writer = WebPMemoryWrite;
  pic.custom_ptr = &writer;
  const int ok = imported && WebPEncode(&config, &pic);
  const int error_code = pic.error_code;
  WebPPictureFree(&pic);
  std::string out(reinterpret_cast<const char*>(writer.mem), writer.size);
  WebPMemoryWriterClear(&writer);
  if (!ok) {
    throw FormatError("WebP encoding failed (libwebp error " + std::to_string(error_code) + ")",
                      where, "out of memory, or a bug; report it");
  }
  return out;
}

std::vector<uint16_t> to_uint16_samples(const at::Tensor& x01) {
  const at::Tensor q = x01.mul(65535.0).round_().to(at::kInt).contiguous();
  const int32_t* p = q.data_ptr<int32_t>();
  return std::vector<uint16_t>(p, p + q.numel());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

Image read_image(const fs::path& path, const ImageReadOptions& options) {
  Image image;
  DecodedImage raw = decode_image(path, options);
  image.metadata = std::move(raw.metadata);
  image.bit_depth = image.metadata.bit_depth;

  const at::Tensor d = samples_to_float(raw);
  at::Tensor rgb;
  if (raw.colour.size() == 3) {
    rgb = d.index_select(
        2, at::tensor(std::vector<int64_t>(raw.colour.begin(), raw.colour.end()), at::kLong));
  } else {
    rgb = d.narrow(2, raw.colour[0], 1).expand({d.size(0), d.size(1), 3});
  }
  at::Tensor alpha;
  if (raw.alpha >= 0) alpha = d.narrow(2, raw.alpha, 1);
  if (alpha.defined() && raw.associated_alpha) rgb = at::where(alpha > 0, rgb / alpha, rgb);
  if (raw.linear) rgb = srgb_encode(rgb);
  if (options.convert_to_srgb && !raw.linear && !raw.icc.empty()) {
    rgb = rgb.contiguous();
    image.converted_from = icc_to_srgb(rgb, raw.icc);
  }
  rgb = at::nan_to_num(rgb, 0.0, 1.0, 0.0).clamp(0.0, 1.0);
  if (alpha.defined()) alpha = at::nan_to_num(alpha, 0.0, 1.0, 0.0).clamp(0.0, 1.0);

  image.file_has_alpha = alpha.defined();
  at::Tensor px = rgb;
  if (alpha.defined()) {
    switch (options.alpha) {
      case AlphaMode::kKeep:
        px = at::cat({rgb, alpha}, 2);
        break;
      case AlphaMode::kDrop:
        break;
      case AlphaMode::kComposite:
        px = rgb * alpha + options.matte * (1.0 - alpha);
        break;
    }
  }
  if (options.apply_orientation) px = apply_exif_orientation(px, image.metadata.orientation);
  image.pixels = px.contiguous();
  image.height = static_cast<int>(image.pixels.size(0));
  image.width = static_cast<int>(image.pixels.size(1));
  image.channels = static_cast<int>(image.pixels.size(2));
  image.has_alpha = image.channels == 4;
  return image;
}

void write_image(const fs::path& path, const at::Tensor& hwc01, const ImageWriteOptions& opt) {
  const std::string where = path.string();
  const std::string format = output_format(path);
  if (format.empty()) {
    throw UsageError("cannot write images with extension '" + path.extension().string() + "'",
                     where, "use .png, .jpg, .jpeg, .webp, .tif, .tiff or .exr");
  }
  if (!hwc01.defined()) throw UsageError("no image to write (undefined tensor)", where, "");
  at::Tensor x = hwc01;
  if (x.dim() == 4 && x.size(0) == 1) x = x[0];
  if (x.dim() != 3 || x.size(0) < 1 || x.size(1) < 1 || x.size(2) < 1 || x.size(2) > 4 ||
      x.size(0) > INT_MAX || x.size(1) > INT_MAX) {
    throw UsageError("expected an [H, W, C] image tensor with C = 1..4, got " + shape_string(x),
                     where, "pass HWC values in [0, 1] (from_model_output gives NHWC)");
  }
  if (!at::isFloatingType(x.scalar_type()) && x.scalar_type() != at::kByte) {
    throw UsageError("expected float values in [0, 1] or uint8, got " +
                         std::string(c10::toString(x.scalar_type())),
                     where, "convert the tensor to float");
  }
  x = x.detach().to(at::kCPU);
  x = x.scalar_type() == at::kByte ? x.to(at::kFloat).div_(255.0) : x.to(at::kFloat);
  x = at::nan_to_num(x, 0.0, 1.0, 0.0).clamp_(0.0, 1.0);
  const int bits = resolve_bit_depth(format, opt.bit_depth, where);
  int64_t c = x.size(2);
  const int h = static_cast<int>(x.size(0)), w = static_cast<int>(x.size(1));
  if (format == "jpeg" && (c == 2 || c == 4)) {  // no alpha in JPEG: composite over the matte
    const at::Tensor a = x.narrow(2, c - 1, 1);
    x = x.narrow(2, 0, c - 1) * a + opt.matte * (1.0 - a);
    c -= 1;
  }
  if (format == "webp" && c < 3) {  // WebP is RGB(A) only
    const at::Tensor grey = x.narrow(2, 0, 1).expand({h, w, 3});
    x = c == 2 ? at::cat({grey, x.narrow(2, 1, 1)}, 2) : grey;
    c = x.size(2);
  }
  x = x.contiguous();
  const bool has_alpha = c == 2 || c == 4;
  const std::string software =
      opt.software_version.empty() ? "studio" : "studio " + opt.software_version;
  detail::EmbedRequest request{opt.parameters, opt.digital_source_type, software};

  std::string bytes;
  if (format == "webp") {
    bytes = encode_webp(to_uint8(x).contiguous(), opt, where);
  } else {
    const OIIO::TypeDesc file_type =
        format == "openexr" ? (bits == 32 ? OIIO::TypeDesc::FLOAT : OIIO::TypeDesc::HALF)
                            : (bits == 16 ? OIIO::TypeDesc::UINT16 : OIIO::TypeDesc::UINT8);
    OIIO::ImageSpec spec(w, h, static_cast<int>(c), file_type);
    spec.channelnames = c == 1   ? std::vector<std::string>{"Y"}
                        : c == 2 ? std::vector<std::string>{"Y", "A"}
                        : c == 3 ? std::vector<std::string>{"R", "G", "B"}
                                 : std::vector<std::string>{"R", "G", "B", "A"};
    spec.alpha_channel = has_alpha ? static_cast<int>(c) - 1 : -1;
    if (format == "openexr") {
      spec.attribute("compression", "zip");
      spec.attribute("oiio:ColorSpace", "Linear");
      if (!opt.parameters.empty()) spec.attribute("parameters", opt.parameters);
      if (!opt.digital_source_type.empty()) {
        spec.attribute("Iptc4xmpExt:DigitalSourceType", opt.digital_source_type);
      }
      spec.attribute("Software", software);
    } else {
      spec.attribute("oiio:UnassociatedAlpha", 1);
      // No oiio:ColorSpace for TIFF/JPEG: OIIO 2.4 then adds an EXIF directory, which its TIFF
      // writer corrupts when encoding to memory. PNG gets an sRGB chunk.
      if (format == "png") spec.attribute("oiio:ColorSpace", "sRGB");
    }
    if (format == "png")
      spec.attribute("png:compressionLevel", std::clamp(opt.png_compression, 0, 9));
    if (format == "tiff") spec.attribute("compression", "zip");
    if (format == "jpeg") {
      const int q = std::clamp(opt.jpeg_quality, 1, 100);
      spec.attribute("compression", "jpeg:" + std::to_string(q));
      spec.attribute("CompressionQuality", q);
    }
    if (format == "openexr") {
      // EXR holds linear light with premultiplied alpha.
      const int64_t nc = has_alpha ? c - 1 : c;
      at::Tensor colour = srgb_decode(x.narrow(2, 0, nc));
      if (has_alpha) {
        const at::Tensor a = x.narrow(2, c - 1, 1);
        x = at::cat({colour * a, a}, 2).contiguous();
      } else {
        x = colour.contiguous();
      }
      bytes = encode_oiio(format, spec, OIIO::TypeDesc::FLOAT, x.data_ptr<float>(), where);
    } else if (bits == 16) {
      const std::vector<uint16_t> samples = to_uint16_samples(x);
      bytes = encode_oiio(format, spec, OIIO::TypeDesc::UINT16, samples.data(), where);
    } else {
      const at::Tensor u8 = to_uint8(x).contiguous();
      bytes = encode_oiio(format, spec, OIIO::TypeDesc::UINT8, u8.data_ptr<uint8_t>(), where);
    }
  }
  if (format != "openexr") bytes = detail::embed_metadata(std::move(bytes), format, request, where);
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

// ---------------------------------------------------------------------------------------------
// Tensor conversions

at::Tensor to_model_input(const at::Tensor& hwc01) {
  if (!hwc01.defined() || hwc01.dim() != 3 || (hwc01.size(2) != 1 && hwc01.size(2) < 3)) {
    throw UsageError("to_model_input expects an [H, W, C] image with C = 1, 3 or 4, got " +
                         (hwc01.defined() ? shape_string(hwc01) : std::string("undefined")),
                     "", "");
  }
  at::Tensor rgb =
      hwc01.size(2) == 1 ? hwc01.expand({hwc01.size(0), hwc01.size(1), 3}) : hwc01.narrow(2, 0, 3);
  rgb = rgb.to(at::kFloat).permute({2, 0, 1}).unsqueeze(0).contiguous();
  return rgb * 2.0 - 1.0;  // diffusers' normalize: 2.0 * images - 1.0
}

at::Tensor to_model_input(const Image& image) { return to_model_input(image.pixels); }

at::Tensor from_model_output(const at::Tensor& nchw) {
  if (!nchw.defined() || (nchw.dim() != 4 && nchw.dim() != 3)) {
    throw UsageError("from_model_output expects NCHW or CHW, got " +
                         (nchw.defined() ? shape_string(nchw) : std::string("undefined")),
                     "", "");
  }
  const bool batched = nchw.dim() == 4;
  at::Tensor x = batched ? nchw : nchw.unsqueeze(0);
  // libtorch's CPU kernels lack half clamp; on the GPU the arithmetic stays in the model's dtype.
  if (x.device().is_cpu() && x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble) {
    x = x.to(at::kFloat);
  }
  at::Tensor y = (x / 2 + 0.5).clamp(0, 1);  // in the model's dtype, as diffusers does
  y = y.to(at::kCPU).permute({0, 2, 3, 1}).to(at::kFloat).contiguous();
  return batched ? y : y[0];
}

at::Tensor to_uint8(const at::Tensor& x01) {
  at::Tensor x = x01.is_floating_point() ? x01 : x01.to(at::kFloat);
  return (x * 255).round().clamp(0, 255).to(at::kByte);
}

at::Tensor resize_image(const at::Tensor& hwc01, int width, int height, ResizeFilter filter) {
  if (!hwc01.defined() || hwc01.dim() != 3 || hwc01.size(2) < 1 || hwc01.size(2) > 4 ||
      hwc01.size(0) < 1 || hwc01.size(1) < 1) {
    throw UsageError("resize_image expects an [H, W, C] image with C = 1..4, got " +
                         (hwc01.defined() ? shape_string(hwc01) : std::string("undefined")),
                     "", "");
  }
  if (width < 1 || height < 1) {
    throw UsageError("cannot resize to " + std::to_string(width) + "x" + std::to_string(height), "",
                     "width and height must be at least 1");
  }
  const int64_t h = hwc01.size(0), w = hwc01.size(1), c = hwc01.size(2);
  at::Tensor x = hwc01.detach().to(at::kCPU, at::kFloat).contiguous();
  if (w == width && h == height) return x.clone();
  const bool alpha = c == 4 || c == 2;
  if (alpha) {  // resize premultiplied: transparent pixels do not bleed their colour
    const at::Tensor a = x.narrow(2, c - 1, 1);
    x = at::cat({x.narrow(2, 0, c - 1) * a, a}, 2).contiguous();
  }
  int interp = cv::INTER_LANCZOS4;
  switch (filter) {
    case ResizeFilter::kAuto:
      interp = width <= w && height <= h ? cv::INTER_AREA : cv::INTER_LANCZOS4;
      break;
    case ResizeFilter::kArea:
      interp = cv::INTER_AREA;
      break;
    case ResizeFilter::kLanczos:
      interp = cv::INTER_LANCZOS4;
      break;
    case ResizeFilter::kBicubic:
      interp = cv::INTER_CUBIC;
      break;
    case ResizeFilter::kBilinear:
      interp = cv::INTER_LINEAR;
      break;
    case ResizeFilter::kNearest:
      interp = cv::INTER_NEAREST;
      break;
  }
  const cv::Mat src(static_cast<int>(h), static_cast<int>(w), CV_32FC(static_cast<int>(c)),
                    x.data_ptr<float>());
  at::Tensor out = at::empty({height, width, c}, at::kFloat);
  cv::Mat dst(height, width, CV_32FC(static_cast<int>(c)), out.data_ptr<float>());
  cv::resize(src, dst, cv::Size(width, height), 0, 0, interp);
  if (dst.data != reinterpret_cast<uchar*>(out.data_ptr<float>())) {
    throw UsageError("OpenCV resize reallocated its output", "", "this is a bug; report it");
  }
  if (alpha) {
    const at::Tensor a = out.narrow(2, c - 1, 1).clamp(0.0, 1.0);
    const at::Tensor colour = out.narrow(2, 0, c - 1);
    out = at::cat({at::where(a > 0, colour / a, at::zeros_like(colour)), a}, 2);
  }
  return out.clamp_(0.0, 1.0).contiguous();
}

at::Tensor resize_to_multiple_of_8(const at::Tensor& hwc01, int multiple, ResizeFilter filter) {
  if (multiple < 1) throw UsageError("multiple must be at least 1", "", "");
  if (!hwc01.defined() || hwc01.dim() != 3) {
    throw UsageError("resize_to_multiple_of_8 expects an [H, W, C] image, got " +
                         (hwc01.defined() ? shape_string(hwc01) : std::string("undefined")),
                     "", "");
  }
  const int h = static_cast<int>(hwc01.size(0)), w = static_cast<int>(hwc01.size(1));
  const int h2 = std::max(multiple, h - h % multiple), w2 = std::max(multiple, w - w % multiple);
  if (h2 == h && w2 == w) return hwc01;
  return resize_image(hwc01, w2, h2, filter);
}

}  // namespace studio::image
