#include "core/tensor_io.h"

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <regex>

#include "core/atomic_file.h"
#include "core/error.h"

namespace studio {

at::ScalarType to_scalar_type(DType d) {
  switch (d) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::Bool: return at::kBool;
  }
  return at::kFloat;
}

DType from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::Bool;
    default: break;
  }
  throw UsageError(std::string("dtype ") + c10::toString(t) + " cannot be stored in safetensors");
}

at::Tensor tensor_view(const SafetensorsFile& file, const TensorInfo& info) {
  const auto st = to_scalar_type(info.dtype);
  const uint8_t* p = file.bytes(info);
  const auto opts = at::TensorOptions().dtype(st).device(at::kCPU);
  if (info.numel() == 0) return at::empty(info.shape, opts);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(info.dtype) != 0) {
    at::Tensor t = at::empty(info.shape, opts);
    std::memcpy(t.data_ptr(), p, info.nbytes());
    return t;
  }
  auto keep = file.mapping();
  return at::from_blob(
      const_cast<uint8_t*>(p), info.shape, [keep](void*) mutable { keep.reset(); }, opts);
}

void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;
  std::vector<TensorBlob> blobs;
  keep.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.detach().to(at::kCPU).contiguous());
    const auto& c = keep.back();
    blobs.push_back({name, from_scalar_type(c.scalar_type()),
                     std::vector<int64_t>(c.sizes().begin(), c.sizes().end()), c.data_ptr(),
                     static_cast<std::size_t>(c.nbytes())});
  }
  write_safetensors(path, blobs, metadata);
}

namespace {

struct NpyType {
  const char* descr;
  at::ScalarType type;
};
constexpr NpyType kNpyTypes[] = {
    {"<f4", at::kFloat}, {"<f8", at::kDouble}, {"<f2", at::kHalf}, {"<i8", at::kLong},
    {"<i4", at::kInt},   {"<i2", at::kShort},  {"|i1", at::kChar}, {"|u1", at::kByte},
    {"|b1", at::kBool},
};

}  // namespace

at::Tensor load_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open .npy file", path.string(), "check the path");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw FormatError("not a NumPy .npy file (bad magic)", path.string());
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t hlen = 0;
  if (major == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  if (!in || hlen > (1u << 20)) throw FormatError("truncated .npy header", path.string());
  std::string header(hlen, '\0');
  if (!in.read(header.data(), hlen)) throw FormatError("truncated .npy header", path.string());

  std::smatch m;
  static const std::regex descr_re("'descr'\\s*:\\s*'([^']+)'");
  static const std::regex order_re("'fortran_order'\\s*:\\s*(True|False)");
  static const std::regex shape_re("'shape'\\s*:\\s*\\(([^)]*)\\)");
  if (!std::regex_search(header, m, descr_re))
    throw FormatError("npy header has no descr", path.string());
  const std::string descr = m[1];
  if (std::regex_search(header, m, order_re) && m[1] == "True")
    throw FormatError("Fortran-order .npy arrays are not supported", path.string(),
                      "save with np.ascontiguousarray");
  if (!std::regex_search(header, m, shape_re))
    throw FormatError("npy header has no shape", path.string());
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  static const std::regex num_re("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num_re);
       it != std::sregex_iterator(); ++it)
    shape.push_back(std::stoll(it->str()));

  at::ScalarType st = at::kFloat;
  bool found = false;
  for (const auto& t : kNpyTypes) {
    if (descr == t.descr) {
      st = t.type;
      found = true;
    }
  }
  if (!found)
    throw FormatError("unsupported .npy dtype '" + descr + "'", path.string(),
                      "use little-endian f2/f4/f8/i1/i2/i4/i8/u1/b1");
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(st));
  if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes())))
    throw FormatError("truncated .npy data", path.string());
  return t;
}

void save_npy(const std::filesystem::path& path, const at::Tensor& tensor) {
  const at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const char* descr = nullptr;
  for (const auto& e : kNpyTypes)
    if (e.type == t.scalar_type()) descr = e.descr;
  if (!descr)
    throw UsageError(std::string("cannot save dtype ") + c10::toString(t.scalar_type()) +
                     " as .npy", path.string());
  std::string shape = "(";
  for (int64_t d : t.sizes()) shape += std::to_string(d) + ", ";
  if (t.dim() > 1) shape.erase(shape.size() - 2);
  if (t.dim() == 1) shape.erase(shape.size() - 1);
  shape += ")";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  write_file_atomic(path, out);
}

}  // namespace studio
