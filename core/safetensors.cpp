#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace studio {

namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::Bool, "BOOL", 1},
};

const char* kHint = "the file is truncated or corrupt; re-download or re-export it";

[[noreturn]] void fail(const std::string& origin, const std::string& what,
                       const std::string& hint = kHint) {
  throw FormatError(what, origin, hint);
}

// a * b with overflow detection.
bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return true;
  *out = a * b;
  return false;
}

}  // namespace

const char* dtype_name(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.name;
  return "?";
}

std::size_t dtype_size(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e.size;
  return 0;
}

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& e : kDTypes) {
    if (name == e.name) {
      *out = e.dtype;
      return true;
    }
  }
  return false;
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, std::size_t available,
                                           uint64_t total_size, const std::string& origin) {
  if (total_size < 8 || available < 8)
    fail(origin, "file is " + std::to_string(total_size) +
                     " bytes, too short for a safetensors header (needs at least 8)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian u64
  if (n > kMaxSafetensorsHeader)
    fail(origin, "header length " + std::to_string(n) + " exceeds the " +
                     std::to_string(kMaxSafetensorsHeader) + "-byte cap",
         "this is not a safetensors file, or it is corrupt");
  if (n > total_size - 8)
    fail(origin, "header length " + std::to_string(n) + " is larger than the file (" +
                     std::to_string(total_size) + " bytes)");
  if (n > available - 8) fail(origin, "header is not fully available in memory");
  if (n < 2) fail(origin, "header of " + std::to_string(n) + " bytes cannot hold a JSON object");

  const char* text = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, text + n);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for numbers too large to represent (found by the fuzzer).
    fail(origin, std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(origin, "header is JSON but not an object");

  SafetensorsHeader h;
  h.header_size = n;
  h.data_size = total_size - 8 - n;

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(origin, "__metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(origin, "__metadata__ entry '" + m.key() + "' is not a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) fail(origin, where + ": entry is not an object");
    for (auto k = v.begin(); k != v.end(); ++k) {
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
        fail(origin, where + ": unexpected key '" + k.key() + "'");
    }
    TensorInfo t;
    t.name = name;
    if (!v.contains("dtype") || !v["dtype"].is_string())
      fail(origin, where + ": missing or non-string 'dtype'");
    const std::string dt = v["dtype"].get<std::string>();
    if (!parse_dtype(dt, &t.dtype))
      fail(origin, where + ": unknown dtype '" + dt + "'",
           "supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL");
    if (!v.contains("shape") || !v["shape"].is_array())
      fail(origin, where + ": missing or non-array 'shape'");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(origin, where + ": shape entries must be integers >= 0");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX) || mul_overflows(numel, dim, &numel))
        fail(origin, where + ": shape is too large");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2 || !v["data_offsets"][0].is_number_unsigned() ||
        !v["data_offsets"][1].is_number_unsigned())
      fail(origin, where + ": 'data_offsets' must be two integers [begin, end]");
    t.begin = v["data_offsets"][0].get<uint64_t>();
    t.end = v["data_offsets"][1].get<uint64_t>();
    if (t.end < t.begin)
      fail(origin, where + ": data_offsets end " + std::to_string(t.end) + " < begin " +
                       std::to_string(t.begin));
    if (t.end > h.data_size)
      fail(origin, where + ": data_offsets [" + std::to_string(t.begin) + ", " +
                       std::to_string(t.end) + "] point past the end of the data area (" +
                       std::to_string(h.data_size) + " bytes)");
    uint64_t expect = 0;
    if (mul_overflows(numel, dtype_size(t.dtype), &expect) || expect != t.nbytes())
      fail(origin, where + ": shape and dtype " + dt + " need " + std::to_string(numel) + " x " +
                       std::to_string(dtype_size(t.dtype)) + " bytes but data_offsets span " +
                       std::to_string(t.nbytes()));
    h.tensors.push_back(std::move(t));
  }

  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const auto& t : h.tensors) {
    if (t.begin < cursor)
      fail(origin, "tensor '" + t.name + "': byte range [" + std::to_string(t.begin) + ", " +
                       std::to_string(t.end) + ") overlaps the previous tensor");
    if (t.begin > cursor)
      fail(origin, "tensor '" + t.name + "': gap of " + std::to_string(t.begin - cursor) +
                       " unreferenced bytes before it in the data area");
    cursor = t.end;
  }
  if (cursor != h.data_size)
    fail(origin, std::to_string(h.data_size - cursor) +
                     " trailing bytes after the last tensor are not referenced by the header");
  return h;
}

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw IoError(std::string("cannot open: ") + std::strerror(errno), path.string(),
                  "check the path and permissions");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError("not a regular file", path.string());
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw IoError(std::string("cannot map file: ") + std::strerror(err), path.string());
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : map_(std::make_shared<MappedFile>(path)) {
  header_ = parse_safetensors_header(map_->data(), map_->size(), map_->size(), path.string());
  for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const uint8_t* SafetensorsFile::bytes(const TensorInfo& t) const {
  return map_->data() + 8 + header_.header_size + t.begin;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorBlob*> order;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || t.name.empty())
      throw UsageError("invalid tensor name '" + t.name + "'", path.string());
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw UsageError("negative dimension in tensor '" + t.name + "'", path.string());
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.nbytes)
      throw UsageError("tensor '" + t.name + "': byte count does not match shape and dtype",
                       path.string());
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const TensorBlob* a, const TensorBlob* b) { return a->name < b->name; });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (order[i]->name == order[i - 1]->name)
      throw UsageError("duplicate tensor name '" + order[i]->name + "'", path.string());

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorBlob* t : order) {
    header[t->name] = {{"dtype", dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');

  AtomicFile out(path);
  uint8_t prefix[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>((n >> (8 * i)) & 0xff);
  out.write(prefix, 8);
  out.write(text.data(), text.size());
  for (const TensorBlob* t : order) out.write(t->data, t->nbytes);
  out.commit();
}

}  // namespace studio
