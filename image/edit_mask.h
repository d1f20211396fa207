// Product masks for photo editing (issue #5): where the product is in a photo (its alpha channel, a
// user mask file, or OpenCV GrabCut), refined (grow/shrink, feather), reduced to the latent grid
// for latent blending, and composited back so that the product keeps its photographed pixels
// exactly.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "image/image_io.h"

namespace studio::image {

// Automatic segmentation: OpenCV GrabCut seeded with a centre prior. The photo's border band is
// definite background, a centred rectangle is probable foreground, the rest probable background.
struct GrabCutOptions {
  double centre_fraction = 0.7;   // the centred rectangle's width and height, as a fraction of the
                                  // photo's (0.1..0.98)
  double border_fraction = 0.03;  // the definite-background border band, fraction of the shorter
                                  // side (at least 1 pixel; 0..0.25)
  int iterations = 5;             // GrabCut iterations (1..50)
  // Colour-distance initialisation: pixels of the centred rectangle whose Lab colour is no farther
  // from the border's median colour than 90 % of the border pixels are (they look like background)
  // start as probable background instead of probable foreground.
  bool colour_init = true;
  int max_side = 640;  // GrabCut runs on a copy shrunk to at most this many pixels a side (>= 32);
                       // the result is scaled back up (bilinear, threshold 0.5)
  // Connected product regions smaller than this fraction of the largest one are dropped (GrabCut
  // leaves specks); 0 keeps every region, 1 keeps only the largest.
  double min_region_fraction = 0.02;
};

struct ProductMaskOptions {
  double threshold = 0.5;  // alpha / mask-file level at or above which a pixel is product
  // Grow (> 0, dilate) or shrink (< 0, erode) the product by this many pixels: one morphological
  // pass with an elliptical kernel of diameter 2 * |grow| + 1. |grow| <= 256.
  int grow = 0;
  int feather = 0;  // feather width F in pixels (0..512), outward from the hard mask; see `soft`
  GrabCutOptions grabcut;  // for mask_from_grabcut
};

// A product mask at the photo's size. 1 = product (keep as photographed), 0 = free to edit.
//
//   hard: the binary mask after grow/shrink: [H, W] float32, every value exactly 0.0 or 1.0.
//   soft: [H, W] float32 in [0, 1], feathered OUTWARD so that the inside of the mask is exactly the
//         original: soft == 1.0 exactly on every pixel where hard == 1; for a pixel outside, with d
//         its Euclidean distance (pixel centre to pixel centre, d >= 1) to the nearest hard pixel,
//         soft = 0.5 * (1 + cos(pi * d / (F + 1))) when d < F + 1 (a raised-cosine falloff,
//         strictly between 0 and 1), and exactly 0.0 when d >= F + 1. F = 0: soft == hard.
struct ProductMask {
  at::Tensor hard;
  at::Tensor soft;
  int width = 0, height = 0;
  int grow = 0, feather = 0;   // the refinement applied
  int64_t product_pixels = 0;  // pixels with hard == 1
  std::string source;          // e.g. "the alpha channel of shoe.png", "mask file shoe-mask.png"
};

// Builds the mask from a binary [H, W] tensor (any dtype; non-zero = product): grow/shrink,
// feather. Throws UsageError naming `source` when the mask has no product pixel (before or after
// shrinking) or covers the whole photo (nothing left to edit, before or after growing), or on bad
// options.
ProductMask refine_mask(const at::Tensor& binary_hw, const std::string& source,
                        const ProductMaskOptions& options = {});

// From the photo's own alpha channel (alpha >= threshold = product). `photo_name` names the photo
// in messages (usually its path). UsageError when the photo has no alpha channel.
ProductMask mask_from_alpha(const Image& photo, const std::string& photo_name,
                            const ProductMaskOptions& options = {});

// From a user mask file, white = product: its alpha channel when it has one that is not fully
// opaque (a cut-out), else its Rec. 709 luma (grey and RGB masks), thresholded at `threshold`.
// The file must have the photo's size (UsageError naming both sizes and the file); IoError /
// FormatError from read_image for missing, truncated or corrupt files.
ProductMask mask_from_file(const std::filesystem::path& mask_file, const Image& photo,
                           const std::string& photo_name, const ProductMaskOptions& options = {});

// The level of a mask picture, 1 = product: [..., H, W, C] pixels in [0, 1] → [..., H, W], the
// alpha channel when there is one that is not fully opaque (a cut-out), else Rec. 709 luma (exact
// for grey). What mask_from_file thresholds; also for mask clips.
at::Tensor mask_level(const at::Tensor& pixels);
// How mask files are read: alpha kept, no ICC conversion (mask levels are data, not colours).
ImageReadOptions mask_read_options();

// Automatically, with GrabCut and a centre prior (options.grabcut). Works on the photo's RGB
// (alpha ignored). UsageError naming the photo when it finds no product or only product.
ProductMask mask_from_grabcut(const Image& photo, const std::string& photo_name,
                              const ProductMaskOptions& options = {});

// The mask on the latent grid: [H / factor, W / factor] float32 with values 0.0 or 1.0, 1 = keep.
// Conservative: a latent cell is 1 when any pixel of its factor x factor block has soft > 0.
// H and W must be multiples of `factor` (UsageError otherwise; resize the photo first).
at::Tensor latent_mask(const ProductMask& mask, int factor = 8);

// out = soft * original + (1 - soft) * edited, per channel, for [H, W, C] images of equal shape
// and an [H, W] soft mask in [0, 1]. Guarantee: wherever soft == 1 the output is bit-for-bit the
// original's value (and wherever soft == 0 the edited one's), so an 8-bit photo written back to an
// 8-bit file keeps the product's bytes. Float32 out, on the CPU.
at::Tensor composite(const at::Tensor& original_hwc, const at::Tensor& edited_hwc,
                     const at::Tensor& soft_hw);

}  // namespace studio::image
