// Generation-parameter text (AUTOMATIC1111's infotext), PNG text chunks, the XMP packet, and the
// Exiv2 side of embedding and reading EXIF/XMP. Exiv2 (0.27) is used under one process-wide lock:
// its XMP toolkit is not thread-safe, and metadata work is tiny next to encoding the pixels.
#include "image/image_metadata.h"

#include <webp/mux.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <exiv2/exiv2.hpp>

#include "core/error.h"

namespace studio::image {

// ---------------------------------------------------------------------------------------------
// AUTOMATIC1111 infotext

std::string a1111_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<long long>(value));
  }
  std::array<char, 64> buf{};
  const auto res = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  return std::string(buf.data(), res.ptr);
}

std::string a1111_quote(const std::string& value) {
  // infotext_utils.quote: json.dumps(text, ensure_ascii=False) when the value holds ',', '\n'
  // or ':'; non-ASCII characters stay as they are.
  if (value.find_first_of(",\n:") == std::string::npos) return value;
  std::string out = "\"";
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof(esc), "\\u%04x", c);
          out += esc;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

namespace {

using detail::EmbedRequest;

bool is_python_space(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

std::string python_strip(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && is_python_space(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && is_python_space(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

}  // namespace

std::string a1111_parameters(const GenerationParams& p) {
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back("Steps", std::to_string(p.steps));
  if (!p.sampler.empty()) fields.emplace_back("Sampler", p.sampler);
  if (!p.schedule_type.empty()) fields.emplace_back("Schedule type", p.schedule_type);
  fields.emplace_back("CFG scale", a1111_number(p.cfg_scale));
  fields.emplace_back("Seed", std::to_string(p.seed));
  if (p.width > 0 && p.height > 0) {
    fields.emplace_back("Size", std::to_string(p.width) + "x" + std::to_string(p.height));
  }
  if (!p.model_hash.empty()) fields.emplace_back("Model hash", p.model_hash);
  if (!p.model_name.empty()) fields.emplace_back("Model", p.model_name);
  if (!p.vae_hash.empty()) fields.emplace_back("VAE hash", p.vae_hash);
  if (!p.vae_name.empty()) fields.emplace_back("VAE", p.vae_name);
  for (const auto& kv : p.extra) {
    if (!kv.first.empty() && !kv.second.empty()) fields.push_back(kv);
  }
  std::string line;
  for (const auto& [key, value] : fields) {
    if (!line.empty()) line += ", ";
    line += key == value ? key : key + ": " + a1111_quote(value);
  }
  std::string text = p.prompt;
  if (!p.negative_prompt.empty()) text += "\nNegative prompt: " + p.negative_prompt;
  text += "\n" + line;
  return python_strip(text);
}

// ---------------------------------------------------------------------------------------------
// Text encodings

namespace {

// UTF-8 -> code points; invalid sequences become U+FFFD.
std::vector<char32_t> utf8_decode(const std::string& s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = 0;
    char32_t cp = 0;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    bool ok = i + len <= n;
    for (int k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (!ok || overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string latin1_to_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) utf8_append(out, static_cast<unsigned char>(c));
  return out;
}

// UTF-8 -> Latin-1 bytes, or false when a character is outside Latin-1.
bool utf8_to_latin1(const std::string& s, std::string& out) {
  out.clear();
  for (const char32_t cp : utf8_decode(s)) {
    if (cp > 0xFF) return false;
    out += static_cast<char>(cp);
  }
  return true;
}

std::string utf8_to_utf16(const std::string& s, bool big_endian) {
  std::string out;
  auto put = [&](uint16_t u) {
    const char hi = static_cast<char>(u >> 8), lo = static_cast<char>(u & 0xFF);
    out += big_endian ? hi : lo;
    out += big_endian ? lo : hi;
  };
  for (char32_t cp : utf8_decode(s)) {
    if (cp >= 0x10000) {
      cp -= 0x10000;
      put(static_cast<uint16_t>(0xD800 | (cp >> 10)));
      put(static_cast<uint16_t>(0xDC00 | (cp & 0x3FF)));
    } else {
      put(static_cast<uint16_t>(cp));
    }
  }
  return out;
}

std::string utf16_to_utf8(const std::string& bytes, bool big_endian) {
  std::string out;
  const std::size_t n = bytes.size() / 2;
  auto unit = [&](std::size_t i) {
    const auto a = static_cast<unsigned char>(bytes[2 * i]);
    const auto b = static_cast<unsigned char>(bytes[2 * i + 1]);
    return static_cast<uint16_t>(big_endian ? (a << 8) | b : (b << 8) | a);
  };
  for (std::size_t i = 0; i < n; ++i) {
    const uint16_t u = unit(i);
    if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n) {
      const uint16_t v = unit(i + 1);
      if (v >= 0xDC00 && v <= 0xDFFF) {
        utf8_append(out, 0x10000 + ((char32_t(u) - 0xD800) << 10) + (v - 0xDC00));
        ++i;
        continue;
      }
    }
    utf8_append(out, (u >= 0xD800 && u <= 0xDFFF) ? 0xFFFD : u);
  }
  return out;
}

// An EXIF UserComment value (8-byte character code + text) as UTF-8. `file_big_endian` is the
// byte order of the file's EXIF data; UTF-16 without a BOM is checked against where the zero bytes
// fall, since some writers (piexif, AUTOMATIC1111) always write big-endian.
std::string decode_user_comment(const std::string& raw, bool file_big_endian) {
  if (raw.size() < 8) return raw;
  const std::string code = raw.substr(0, 8);
  std::string text = raw.substr(8);
  std::string out;
  if (code == std::string("UNICODE\0", 8)) {
    bool be = file_big_endian;
    if (text.size() >= 2 && static_cast<unsigned char>(text[0]) == 0xFE &&
        static_cast<unsigned char>(text[1]) == 0xFF) {
      be = true;
      text = text.substr(2);
    } else if (text.size() >= 2 && static_cast<unsigned char>(text[0]) == 0xFF &&
               static_cast<unsigned char>(text[1]) == 0xFE) {
      be = false;
      text = text.substr(2);
    } else {
      std::size_t zero_even = 0, zero_odd = 0;
      for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
        zero_even += text[i] == '\0';
        zero_odd += text[i + 1] == '\0';
      }
      if (zero_even != zero_odd) be = zero_even > zero_odd;
    }
    out = utf16_to_utf8(text, be);
  } else {
    out = text;  // ASCII, undefined (A1111 decodes these as UTF-8), JIS
  }
  while (!out.empty() && (out.back() == '\0' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\n':
        out += "&#xA;";
        break;
      case '\r':
        out += "&#xD;";
        break;
      case '\t':
        out += "&#x9;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PNG chunks

const char kPngSignature[] = "\x89PNG\r\n\x1a\n";
constexpr uint32_t kMaxTextChunk = 64u << 20;

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

void put_be32(std::string& out, uint32_t v) {
  out += static_cast<char>(v >> 24);
  out += static_cast<char>((v >> 16) & 0xFF);
  out += static_cast<char>((v >> 8) & 0xFF);
  out += static_cast<char>(v & 0xFF);
}

std::string png_chunk(const char type[4], const std::string& data) {
  std::string out;
  put_be32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_be32(out, static_cast<uint32_t>(
                    crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size())));
  return out;
}

std::string png_itxt_chunk(const std::string& keyword, const std::string& utf8_text) {
  // keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL
  return png_chunk("iTXt", keyword + std::string(5, '\0') + utf8_text);
}

// A text chunk as PIL's PngInfo.add_text writes it: tEXt when the text is Latin-1, else iTXt.
std::string png_text_chunk(const std::string& keyword, const std::string& utf8_text) {
  std::string latin1;
  if (utf8_to_latin1(utf8_text, latin1) && latin1.find('\0') == std::string::npos) {
    return png_chunk("tEXt", keyword + '\0' + latin1);
  }
  return png_itxt_chunk(keyword, utf8_text);
}

bool is_text_chunk(const char* type) {
  return !std::memcmp(type, "tEXt", 4) || !std::memcmp(type, "zTXt", 4) ||
         !std::memcmp(type, "iTXt", 4);
}

// zlib stream -> bytes, at most `cap` bytes (text chunks are small; this bounds a zip bomb).
bool zlib_inflate(const std::string& in, std::size_t cap, std::string& out) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return false;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  out.clear();
  std::array<char, 16384> buf{};
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf.data(), buf.size() - zs.avail_out);
    if (out.size() > cap) rc = Z_MEM_ERROR;
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) rc = Z_DATA_ERROR;
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END;
}

// Keyword and UTF-8 text of a tEXt / zTXt / iTXt chunk body; false when malformed.
bool parse_png_text(const char* type, const std::string& body, std::string& keyword,
                    std::string& text) {
  const std::size_t nul = body.find('\0');
  if (nul == std::string::npos || nul == 0 || nul > 79) return false;
  keyword = latin1_to_utf8(body.substr(0, nul));
  if (!std::memcmp(type, "tEXt", 4)) {
    text = latin1_to_utf8(body.substr(nul + 1));
    return true;
  }
  if (!std::memcmp(type, "zTXt", 4)) {
    if (body.size() < nul + 2 || body[nul + 1] != 0) return false;
    std::string raw;
    if (!zlib_inflate(body.substr(nul + 2), kMaxTextChunk, raw)) return false;
    text = latin1_to_utf8(raw);
    return true;
  }
  // iTXt: compression flag, method, language tag NUL, translated keyword NUL, text
  if (body.size() < nul + 3) return false;
  const bool compressed = body[nul + 1] != 0;
  const std::size_t lang_end = body.find('\0', nul + 3);
  if (lang_end == std::string::npos) return false;
  const std::size_t tkey_end = body.find('\0', lang_end + 1);
  if (tkey_end == std::string::npos) return false;
  const std::string raw = body.substr(tkey_end + 1);
  if (!compressed) {
    text = raw;
    return true;
  }
  return zlib_inflate(raw, kMaxTextChunk, text);
}

// Every text chunk of a PNG file (keyword, UTF-8 text), read chunk by chunk (pixel data skipped).
std::vector<std::pair<std::string, std::string>> read_png_text_chunks(
    const std::filesystem::path& path) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in(path, std::ios::binary);
  char sig[8];
  if (!in.read(sig, 8) || std::memcmp(sig, kPngSignature, 8) != 0) return out;
  unsigned char head[8];
  while (in.read(reinterpret_cast<char*>(head), 8)) {
    const uint32_t len = read_be32(head);
    const char* type = reinterpret_cast<const char*>(head + 4);
    if (!std::memcmp(type, "IEND", 4) || len > 0x7FFFFFFFu) break;
    if (is_text_chunk(type) && len <= kMaxTextChunk) {
      std::string body(len, '\0');
      if (!in.read(body.data(), len)) break;
      in.seekg(4, std::ios::cur);  // CRC
      std::string keyword, text;
      if (parse_png_text(type, body, keyword, text)) out.emplace_back(keyword, text);
    } else {
      in.seekg(static_cast<std::streamoff>(len) + 4, std::ios::cur);
    }
  }
  return out;
}

std::string embed_png(const std::string& png, const EmbedRequest& rq, const std::string& where) {
  if (png.size() < 8 || png.compare(0, 8, kPngSignature, 8) != 0) {
    throw FormatError("the PNG encoder produced no PNG signature", where,
                      "this is a bug in studio; report it");
  }
  std::string ours;
  std::vector<std::string> keywords;
  if (!rq.parameters.empty()) {
    ours += png_text_chunk("parameters", rq.parameters);
    keywords.emplace_back("parameters");
  }
  if (!rq.software.empty()) {
    ours += png_text_chunk("Software", rq.software);
    keywords.emplace_back("Software");
  }
  const std::string xmp = detail::make_xmp_packet(rq.digital_source_type, rq.software);
  if (!xmp.empty()) {
    ours += png_itxt_chunk("XML:com.adobe.xmp", xmp);
    keywords.emplace_back("XML:com.adobe.xmp");
  }
  std::string out = png.substr(0, 8);
  bool inserted = false;
  std::size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(png.data() + pos);
    const uint32_t len = read_be32(p);
    if (len > png.size() - pos - 12) break;
    const char* type = png.data() + pos + 4;
    bool skip = false;
    if (is_text_chunk(type)) {
      const std::string body = png.substr(pos + 8, len);
      const std::string keyword = body.substr(0, body.find('\0'));
      skip = std::find(keywords.begin(), keywords.end(), keyword) != keywords.end();
    }
    if (!inserted && (!std::memcmp(type, "IDAT", 4) || !std::memcmp(type, "IEND", 4))) {
      out += ours;
      inserted = true;
    }
    if (!skip) out.append(png, pos, 12 + static_cast<std::size_t>(len));
    pos += 12 + static_cast<std::size_t>(len);
  }
  if (!inserted || pos != png.size()) {
    throw FormatError("the PNG encoder produced a malformed chunk list", where,
                      "this is a bug in studio; report it");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Exiv2

std::mutex& exiv2_mutex() {
  static std::mutex m;
  return m;
}

// Call with exiv2_mutex() held.
void exiv2_init_locked() {
  static bool done = false;
  if (done) return;
  Exiv2::LogMsg::setLevel(Exiv2::LogMsg::mute);
  Exiv2::XmpParser::initialize();
  done = true;
}

// Software, and the parameters as UserComment ("UNICODE\0" + UTF-16 in the EXIF byte order; TIFF
// also as ImageDescription, the tag TIFF tools show).
void add_exif_fields(Exiv2::ExifData& exif, const EmbedRequest& rq, Exiv2::ByteOrder bo,
                     bool image_description) {
  if (!rq.software.empty()) exif["Exif.Image.Software"] = rq.software;
  if (!rq.parameters.empty()) {
    std::string raw("UNICODE\0", 8);
    raw += utf8_to_utf16(rq.parameters, bo == Exiv2::bigEndian);
    Exiv2::CommentValue comment;
    comment.read(reinterpret_cast<const Exiv2::byte*>(raw.data()), static_cast<long>(raw.size()),
                 bo);
    exif.add(Exiv2::ExifKey("Exif.Photo.UserComment"), &comment);
    if (image_description) exif["Exif.Image.ImageDescription"] = rq.parameters;
  }
}

// WebP: the EXIF block (big-endian, as Pillow writes piexif's bytes) is built by Exiv2, the
// EXIF and XMP chunks are added by libwebpmux, which also writes the VP8X header they need.
// (Exiv2 0.27's WebP writer always re-encodes EXIF little-endian.)
std::string embed_webp(const std::string& webp, const EmbedRequest& rq, const std::string& where) {
  std::string exif_blob;
  {
    std::lock_guard<std::mutex> lock(exiv2_mutex());
    exiv2_init_locked();
    try {
      Exiv2::ExifData exif;
      add_exif_fields(exif, rq, Exiv2::bigEndian, false);
      Exiv2::Blob blob;
      if (!exif.empty()) Exiv2::ExifParser::encode(blob, Exiv2::bigEndian, exif);
      exif_blob.assign(blob.begin(), blob.end());
    } catch (const Exiv2::AnyError& e) {
      throw FormatError(std::string("cannot encode EXIF metadata: Exiv2: ") + e.what(), where,
                        "this is a bug in studio or Exiv2; report it with the output path");
    }
  }
  const std::string xmp = detail::make_xmp_packet(rq.digital_source_type, rq.software);
  WebPData image{reinterpret_cast<const uint8_t*>(webp.data()), webp.size()};
  WebPMux* mux = WebPMuxCreate(&image, 1);
  if (!mux) {
    throw FormatError("cannot parse the encoded WebP data to add metadata", where,
                      "this is a bug in studio or libwebp; report it");
  }
  WebPMuxError err = WEBP_MUX_OK;
  if (!exif_blob.empty()) {
    WebPData chunk{reinterpret_cast<const uint8_t*>(exif_blob.data()), exif_blob.size()};
    err = WebPMuxSetChunk(mux, "EXIF", &chunk, 1);
  }
  if (err == WEBP_MUX_OK && !xmp.empty()) {
    WebPData chunk{reinterpret_cast<const uint8_t*>(xmp.data()), xmp.size()};
    err = WebPMuxSetChunk(mux, "XMP ", &chunk, 1);
  }
  WebPData assembled{nullptr, 0};
  if (err == WEBP_MUX_OK) err = WebPMuxAssemble(mux, &assembled);
  WebPMuxDelete(mux);
  if (err != WEBP_MUX_OK) {
    WebPDataClear(&assembled);
    throw FormatError("cannot add metadata to the WebP data (libwebpmux error " +
                          std::to_string(static_cast<int>(err)) + ")",
                      where, "this is a bug in studio or libwebp; report it");
  }
  std::string out(reinterpret_cast<const char*>(assembled.bytes), assembled.size);
  WebPDataClear(&assembled);
  return out;
}

// Removes the APP1 Exif segments of a JPEG stream (OpenImageIO always writes a little-endian one;
// Exiv2 would then edit it in place and keep its byte order).
std::string strip_jpeg_exif(const std::string& jpeg) {
  if (jpeg.size() < 4 || static_cast<unsigned char>(jpeg[0]) != 0xFF ||
      static_cast<unsigned char>(jpeg[1]) != 0xD8) {
    return jpeg;
  }
  std::string out = jpeg.substr(0, 2);
  std::size_t pos = 2;
  while (pos + 4 <= jpeg.size() && static_cast<unsigned char>(jpeg[pos]) == 0xFF) {
    const auto marker = static_cast<unsigned char>(jpeg[pos + 1]);
    if (marker == 0xDA) break;  // start of scan: the rest is entropy-coded data
    const std::size_t len = (static_cast<unsigned char>(jpeg[pos + 2]) << 8) |
                            static_cast<unsigned char>(jpeg[pos + 3]);
    if (len < 2 || pos + 2 + len > jpeg.size()) return jpeg;
    const bool exif = marker == 0xE1 && len >= 8 && jpeg.compare(pos + 4, 6, "Exif\0\0", 6) == 0;
    if (!exif) out.append(jpeg, pos, 2 + len);
    pos += 2 + len;
  }
  out.append(jpeg, pos, std::string::npos);
  return out;
}

std::string embed_exiv2(const std::string& input, const std::string& format, const EmbedRequest& rq,
                        const std::string& where) {
  const std::string encoded = format == "jpeg" ? strip_jpeg_exif(input) : input;
  std::lock_guard<std::mutex> lock(exiv2_mutex());
  exiv2_init_locked();
  try {
    auto img = Exiv2::ImageFactory::open(reinterpret_cast<const Exiv2::byte*>(encoded.data()),
                                         static_cast<long>(encoded.size()));
    img->readMetadata();
    const bool tiff = format == "tiff";
    // JPEG: big-endian EXIF, as piexif (and so AUTOMATIC1111) writes it; its UserComment reader
    // assumes UTF-16BE. TIFF: the file's own byte order.
    if (!tiff) img->setByteOrder(Exiv2::bigEndian);
    Exiv2::ByteOrder bo = img->byteOrder();
    if (bo == Exiv2::invalidByteOrder) {
      bo = Exiv2::littleEndian;
      img->setByteOrder(bo);
    }
    add_exif_fields(img->exifData(), rq, bo, tiff);
    const std::string xmp = detail::make_xmp_packet(rq.digital_source_type, rq.software);
    if (!xmp.empty()) {
      img->setXmpPacket(xmp);
      img->writeXmpFromPacket(true);
    }
    img->writeMetadata();
    Exiv2::BasicIo& io = img->io();
    if (io.open() != 0) throw Exiv2::Error(Exiv2::kerDataSourceOpenFailed, "memory", "");
    std::string out(static_cast<std::size_t>(io.size()), '\0');
    io.seek(0, Exiv2::BasicIo::beg);
    const long got =
        io.read(reinterpret_cast<Exiv2::byte*>(out.data()), static_cast<long>(out.size()));
    io.close();
    if (got != static_cast<long>(out.size())) {
      throw Exiv2::Error(Exiv2::kerFailedToReadImageData);
    }
    return out;
  } catch (const Exiv2::AnyError& e) {
    throw FormatError(
        std::string("cannot add EXIF/XMP metadata to the ") + format + " data: Exiv2: " + e.what(),
        where, "this is a bug in studio or Exiv2; report it with the output path");
  }
}

const std::string* find_entry(const ImageMetadata& md, const char* key) {
  const auto it = md.entries.find(key);
  return it == md.entries.end() || it->second.empty() ? nullptr : &it->second;
}

}  // namespace

namespace detail {

std::string make_xmp_packet(const std::string& digital_source_type, const std::string& software) {
  if (digital_source_type.empty() && software.empty()) return "";
  std::string s =
      "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
      "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
      " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
      "  <rdf:Description rdf:about=\"\"\n"
      "    xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"\n"
      "    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"";
  if (!digital_source_type.empty()) {
    s += "\n    Iptc4xmpExt:DigitalSourceType=\"" + xml_escape(digital_source_type) + "\"";
  }
  if (!software.empty()) s += "\n    xmp:CreatorTool=\"" + xml_escape(software) + "\"";
  s += "/>\n"
       " </rdf:RDF>\n"
       "</x:xmpmeta>\n"
       "<?xpacket end=\"w\"?>";
  return s;
}

std::string embed_metadata(std::string encoded, const std::string& format,
                           const EmbedRequest& request, const std::string& where) {
  if (request.parameters.empty() && request.digital_source_type.empty() &&
      request.software.empty()) {
    return encoded;
  }
  if (format == "png") return embed_png(encoded, request, where);
  if (format == "webp") return embed_webp(encoded, request, where);
  if (format == "jpeg" || format == "tiff") {
    return embed_exiv2(encoded, format, request, where);
  }
  throw UsageError("cannot embed metadata into " + format + " data", where,
                   "metadata is written for PNG, JPEG, WebP and TIFF; EXR uses header attributes");
}

void add_file_metadata(const std::filesystem::path& path, ImageMetadata& md) {
  std::string png_parameters, user_comment;
  if (md.format == "png") {
    for (const auto& [keyword, text] : read_png_text_chunks(path)) {
      md.entries["png:" + keyword] = text;
      if (keyword == "parameters") png_parameters = text;
    }
  }
  if (md.format != "openexr") {
    std::lock_guard<std::mutex> lock(exiv2_mutex());
    exiv2_init_locked();
    try {
      auto img = Exiv2::ImageFactory::open(path.string(), false);
      img->readMetadata();
      const Exiv2::ByteOrder bo = img->byteOrder();
      for (const auto& d : img->exifData()) {
        const std::string key = d.key();
        if (key == "Exif.Photo.UserComment") {
          std::string raw(static_cast<std::size_t>(d.size()), '\0');
          d.copy(reinterpret_cast<Exiv2::byte*>(raw.data()), bo);
          user_comment = decode_user_comment(raw, bo == Exiv2::bigEndian);
          md.entries[key] = user_comment;
          continue;
        }
        const bool blob = d.typeId() == Exiv2::undefined || d.typeId() == Exiv2::unsignedByte;
        if ((blob && d.size() > 64) || d.size() > 4096) continue;  // maker notes, thumbnails
        md.entries[key] = d.toString();
      }
      for (const auto& d : img->iptcData()) md.entries[d.key()] = d.toString();
      for (const auto& d : img->xmpData()) md.entries[d.key()] = d.toString();
      md.xmp = img->xmpPacket();
      const auto orient = img->exifData().findKey(Exiv2::ExifKey("Exif.Image.Orientation"));
      if (md.orientation == 1 && orient != img->exifData().end() && orient->count() > 0) {
        const long o = orient->toLong();
        if (o >= 1 && o <= 8) md.orientation = static_cast<int>(o);
      }
    } catch (const std::exception&) {
      // Exiv2 does not know the format or cannot parse its metadata: the pixels still count.
    }
  }
  if (!png_parameters.empty()) {
    md.parameters = png_parameters;
  } else if (!user_comment.empty()) {
    md.parameters = user_comment;
  } else if (const auto* v = find_entry(md, "parameters")) {
    md.parameters = *v;
  }
  if (const auto* v = find_entry(md, "Xmp.iptcExt.DigitalSourceType")) {
    md.digital_source_type = *v;
  } else if (const auto* v = find_entry(md, "Iptc4xmpExt:DigitalSourceType")) {
    md.digital_source_type = *v;
  }
  for (const char* key :
       {"png:Software", "Exif.Image.Software", "Software", "Xmp.xmp.CreatorTool"}) {
    if (const auto* v = find_entry(md, key)) {
      md.software = *v;
      break;
    }
  }
}

}  // namespace detail

}  // namespace studio::image

#pragma GCC diagnostic pop
