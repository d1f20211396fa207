// libFuzzer target: the safetensors header parser on arbitrary bytes must either accept a file
// whose every tensor lies inside the data area, or throw studio::FormatError; nothing else.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto h = studio::parse_safetensors_header(data, size, size, "fuzz.safetensors");
    for (const auto& t : h.tensors) {
      if (t.end > h.data_size || t.begin > t.end ||
          t.numel() * studio::dtype_size(t.dtype) != t.nbytes())
        std::abort();
    }
  } catch (const studio::FormatError&) {
  }
  return 0;
}
