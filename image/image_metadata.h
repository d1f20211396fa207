// Metadata of generated images: the generation parameters as AUTOMATIC1111's webui writes them
// (the `parameters` text other tools read back), the IPTC digital source type that marks a file as
// AI-generated, and a reader that reports what a file carries. Pixel I/O is in image/image_io.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace studio::image {

// IPTC NewsCodes for XMP Iptc4xmpExt:DigitalSourceType.
inline constexpr const char* kDigitalSourceTrainedAlgorithmicMedia =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
// A capture edited or composited with a generative model (inversion edits of a product photo).
inline constexpr const char* kDigitalSourceCompositeWithTrainedAlgorithmicMedia =
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia";

// What produced an image, in the fields (and the order) of AUTOMATIC1111's infotext. Empty strings
// and non-positive sizes are left out, as the webui leaves out fields that are None.
struct GenerationParams {
  std::string prompt;
  std::string negative_prompt;  // the "Negative prompt:" line is omitted when empty
  int steps = 20;
  std::string sampler = "Euler a";  // webui sampler names: "Euler a", "DPM++ 2M", "DDIM", ...
  std::string schedule_type;        // "Schedule type" (webui >= 1.9: "Karras", "Automatic", ...)
  double cfg_scale = 7.0;
  uint64_t seed = 0;
  int width = 0, height = 0;  // "Size: WxH"
  std::string model_hash;     // webui short hash: the first 10 hex digits of the file's SHA-256
  std::string model_name;
  std::string vae_hash, vae_name;
  // Further fields in order ("Denoising strength", "Clip skip", "Version", ...). Values are
  // written as given (format numbers with a1111_number()); a field whose value equals its key is
  // written as the key alone, as the webui does.
  std::vector<std::pair<std::string, std::string>> extra;
};

// The infotext, byte for byte as the webui's processing.create_infotext writes it:
//   <prompt>\nNegative prompt: <negative>\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, ...
// Field values containing ',', ':' or a newline are JSON-quoted (infotext_utils.quote).
std::string a1111_parameters(const GenerationParams& params);
// A number as Python's repr writes it, but integral values without ".0" ("7", "7.5", "0.75").
std::string a1111_number(double value);
// The quoting the webui applies to one field value.
std::string a1111_quote(const std::string& value);

// What a file carries (read_image_metadata), and the same for read_image's result.
struct ImageMetadata {
  std::string format;  // OpenImageIO's format name: "png", "jpeg", "tiff", "openexr", "webp", ...
  int width = 0, height = 0;
  int channels = 0;         // in the file
  int bit_depth = 0;        // bits per sample in the file (8, 16, 32; half = 16)
  std::string sample_type;  // "uint8", "uint16", "half", "float", ...
  int orientation = 1;      // EXIF orientation (1 = upright)
  std::string parameters;   // generation parameters (PNG text, EXIF UserComment, EXR attribute)
  std::string digital_source_type;  // XMP Iptc4xmpExt:DigitalSourceType
  std::string software;
  std::string xmp;  // the raw XMP packet, if any
  // Everything found, as text: OpenImageIO's attribute names ("Software", "Orientation",
  // "exif:...", "parameters" for PNG text chunks and EXR attributes), Exiv2's keys
  // ("Exif.Photo.UserComment", "Xmp.iptcExt.DigitalSourceType", ...) and "png:<keyword>" for
  // every PNG text chunk. Binary blobs (ICC profiles, maker notes) are left out.
  std::map<std::string, std::string> entries;
};

// Reads the header and metadata of an image file without decoding its pixels.
// Throws IoError when the file is missing or unreadable, FormatError when it is not an image.
ImageMetadata read_image_metadata(const std::filesystem::path& path);

namespace detail {

// Metadata to embed into an encoded file (image_metadata.cpp; used by write_image).
struct EmbedRequest {
  std::string parameters;           // "" = none
  std::string digital_source_type;  // "" = none
  std::string software;             // "" = none
};

// Adds `request` to the encoded bytes of a PNG, JPEG, WebP or TIFF file (`format` as OpenImageIO
// names it) and returns the new bytes. PNG: tEXt/iTXt chunks written directly; JPEG, WebP and
// TIFF: EXIF and XMP through Exiv2. `where` names the file in error messages.
std::string embed_metadata(std::string encoded, const std::string& format,
                           const EmbedRequest& request, const std::string& where);

// The XMP packet studio writes (Iptc4xmpExt:DigitalSourceType, xmp:CreatorTool).
std::string make_xmp_packet(const std::string& digital_source_type, const std::string& software);

// Exiv2 / PNG-chunk metadata of a file, merged into `md` (called by read_image_metadata and
// read_image once OpenImageIO has filled the header fields). Never throws for damaged metadata.
void add_file_metadata(const std::filesystem::path& path, ImageMetadata& md);

}  // namespace detail

}  // namespace studio::image
