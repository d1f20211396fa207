// safetensors reader (mmap, zero-copy) and writer. The header parser is strict: every violation
// (oversized or non-JSON header, unknown dtype, shape/byte-count mismatch, ranges outside the data
// area, overlaps, gaps, trailing bytes) is a FormatError naming the file and the tensor.
// This header is torch-free; tensor views live in core/tensor_io.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace studio {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

// "F32", "BF16", ... as the safetensors format spells them; nullptr-free: throws on unknown.
const char* dtype_name(DType d);
std::size_t dtype_size(DType d);
// Returns false for an unknown name.
bool parse_dtype(const std::string& name, DType* out);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data area
  uint64_t end = 0;
  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in file (offset) order
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t header_size = 0;  // the JSON length (the u64 prefix)
  uint64_t data_size = 0;    // bytes after the header
};

// Largest header accepted (the reference implementation uses 100 MB).
constexpr uint64_t kMaxSafetensorsHeader = 100ull * 1024 * 1024;

// Parses and validates a whole safetensors file image (prefix + header + data). `origin` names the
// file in errors. Exposed for tests and the fuzzer; needs only the first 8 + header bytes to be
// present in `bytes` when `total_size` gives the real file size.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, std::size_t available,
                                           uint64_t total_size, const std::string& origin);

// A read-only memory mapping of a file, shared by every tensor view taken from it.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws IoError / FormatError.
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return map_->path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(const std::string& name) const;
  // Raw bytes of a tensor inside the mapping (valid while this object or a copy lives).
  const uint8_t* bytes(const TensorInfo& t) const;
  std::shared_ptr<const MappedFile> mapping() const { return map_; }
  uint64_t file_size() const { return map_->size(); }

 private:
  std::shared_ptr<const MappedFile> map_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t> index_;
};

// One tensor to write: raw little-endian bytes.
struct TensorBlob {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  std::size_t nbytes = 0;
};

// Writes a safetensors file atomically (temporary name, fsync, rename). Tensors are stored sorted
// by name (as the reference writer does); the header is padded with spaces to 8-byte alignment.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace studio
