// Structural GLB checks: see gltf_check.h.
#include "mesh/gltf_check.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace studio::mesh {
namespace {

using nlohmann::json;

uint32_t u32_at(const std::string& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

int component_size(int64_t type) {
  switch (type) {
    case 5120:
    case 5121:
      return 1;
    case 5122:
    case 5123:
      return 2;
    case 5125:
    case 5126:
      return 4;
    default:
      return 0;
  }
}

int type_components(const std::string& t) {
  if (t == "SCALAR") return 1;
  if (t == "VEC2") return 2;
  if (t == "VEC3") return 3;
  if (t == "VEC4") return 4;
  if (t == "MAT2") return 4;
  if (t == "MAT3") return 9;
  if (t == "MAT4") return 16;
  return 0;
}

double read_component(const char* p, int64_t type) {
  switch (type) {
    case 5120:
      return *reinterpret_cast<const int8_t*>(p);
    case 5121:
      return *reinterpret_cast<const uint8_t*>(p);
    case 5122: {
      int16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 5123: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 5125: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case 5126: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    default:
      return 0;
  }
}

std::string base64_decode(const std::string& in, bool* ok) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  *ok = true;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    size_t v = chars.find(c);
    if (v == std::string::npos) {
      *ok = false;
      return {};
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

struct Checker {
  GltfCheckOptions options;
  std::vector<std::string> problems;
  json j;
  std::string bin;  // the GLB BIN chunk (empty if none)
  bool has_bin = false;
  bool is_glb = true;
  std::filesystem::path base_dir;  // .gltf: where relative buffer URIs are
  std::vector<std::string> data;   // each buffer's bytes, when loaded
  std::vector<bool> have;          // whether data[i] was loaded

  void add(std::string p) {
    if (problems.size() < 100) problems.push_back(std::move(p));
  }

  // o[key] as an integer: `def` when absent, kNotInteger when present but not an integer within
  // int64 (1e300, "12", ...). nlohmann's value<int>() casts a float out of range (undefined
  // behaviour: a componentType of 8.9e127, found by the fuzzer) and throws for a string.
  static constexpr int64_t kNotInteger = std::numeric_limits<int64_t>::min();
  static int64_t integer(const json& o, const char* key, int64_t def) {
    if (!o.is_object()) return kNotInteger;
    const auto it = o.find(key);
    if (it == o.end()) return def;
    if (it->is_number_unsigned()) {
      const auto u = it->get<uint64_t>();
      return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                 ? kNotInteger
                 : static_cast<int64_t>(u);
    }
    return it->is_number_integer() ? it->get<int64_t>() : kNotInteger;
  }
  // o[key] when it is a string, else "".
  static std::string text(const json& o, const char* key) {
    if (!o.is_object()) return {};
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  }
  // off + (count - 1) * stride + elem, the bytes an accessor spans; int64 max when that overflows
  // (a count of 9e18 is an integer like any other).
  static int64_t span(int64_t off, int64_t count, int64_t stride, int64_t elem) {
    int64_t r;
    if (__builtin_mul_overflow(count - 1, stride, &r) || __builtin_add_overflow(r, off, &r) ||
        __builtin_add_overflow(r, elem, &r))
      return std::numeric_limits<int64_t>::max();
    return r;
  }

  bool is_index(const json& v, const char* array) const {
    return v.is_number_integer() && v.get<int64_t>() >= 0 && j.contains(array) &&
           j[array].is_array() && v.get<int64_t>() < static_cast<int64_t>(j[array].size());
  }

  void ref(const json& obj, const char* key, const char* array, const std::string& where) {
    if (!obj.contains(key)) return;
    if (!is_index(obj[key], array)) {
      add(where + "." + key + ": " + obj[key].dump() + " is not a valid index into " + array);
    }
  }

  // Buffers and views: byte ranges.
  std::vector<int64_t> buffer_len;
  void check_buffers() {
    if (!j.contains("buffers")) return;
    if (!j["buffers"].is_array()) return add("buffers: not an array");
    for (size_t i = 0; i < j["buffers"].size(); ++i) {
      const json& b = j["buffers"][i];
      std::string w = "buffers[" + std::to_string(i) + "]";
      if (!b.contains("byteLength") || !b["byteLength"].is_number_integer() ||
          b["byteLength"].get<int64_t>() < 1) {
        add(w + ": byteLength missing or not a positive integer");
        buffer_len.push_back(-1);
        continue;
      }
      int64_t len = b["byteLength"].get<int64_t>();
      buffer_len.push_back(len);
      data.emplace_back();
      have.push_back(false);
      if (b.contains("uri")) {
        if (!b["uri"].is_string()) {
          add(w + ".uri: not a string");
          continue;
        }
        const std::string uri = b["uri"].get<std::string>();
        std::string bytes;
        if (uri.rfind("data:", 0) == 0) {
          size_t comma = uri.find(',');
          bool ok = comma != std::string::npos &&
                    uri.substr(0, comma).find(";base64") != std::string::npos;
          if (ok) bytes = base64_decode(uri.substr(comma + 1), &ok);
          if (!ok) {
            add(w + ".uri: a data URI that is not valid base64");
            continue;
          }
        } else if (is_glb) {
          continue;  // an external buffer of a GLB: not checked
        } else {
          const auto file = base_dir / uri;
          std::ifstream in(file, std::ios::binary);
          if (!in) {
            add(w + ".uri: cannot open '" + uri + "' (looked in " + base_dir.string() + ")");
            continue;
          }
          std::ostringstream ss;
          ss << in.rdbuf();
          bytes = ss.str();
        }
        if (static_cast<int64_t>(bytes.size()) < len) {
          add(w + ": byteLength " + std::to_string(len) + " exceeds its data (" +
              std::to_string(bytes.size()) + " bytes; truncated)");
        }
        data.back() = std::move(bytes);
        have.back() = true;
      } else {
        if (has_bin && i == 0) {
          data.back() = bin;
          have.back() = true;
        }
        if (i != 0)
          add(w + ": no uri, but only buffers[0] may refer to the GLB BIN chunk");
        else if (!has_bin)
          add(w + ": refers to the BIN chunk, but the file has none");
        else if (len > static_cast<int64_t>(bin.size()))
          add(w + ": byteLength " + std::to_string(len) + " exceeds the BIN chunk (" +
              std::to_string(bin.size()) + " bytes)");
        else if (options.strict && static_cast<int64_t>(bin.size()) - len > 3)
          add(w + ": BIN chunk is " + std::to_string(bin.size()) + " bytes, more than byteLength " +
              std::to_string(len) + " + 3 bytes of padding");
      }
    }
  }

  void check_views() {
    if (!j.contains("bufferViews")) return;
    if (!j["bufferViews"].is_array()) return add("bufferViews: not an array");
    for (size_t i = 0; i < j["bufferViews"].size(); ++i) {
      const json& v = j["bufferViews"][i];
      std::string w = "bufferViews[" + std::to_string(i) + "]";
      if (!v.contains("buffer") || !is_index(v["buffer"], "buffers")) {
        add(w + ": buffer missing or not a valid index into buffers");
        continue;
      }
      if (!v.contains("byteLength") || !v["byteLength"].is_number_integer() ||
          v["byteLength"].get<int64_t>() < 1) {
        add(w + ": byteLength missing or not a positive integer");
        continue;
      }
      const int64_t off = integer(v, "byteOffset", 0);
      const int64_t len = v["byteLength"].get<int64_t>();
      if (off < 0) add(w + ": byteOffset is negative or not an integer");
      const auto bi = v["buffer"].get<size_t>();
      const int64_t blen = bi < buffer_len.size() ? buffer_len[bi] : -1;
      if (blen >= 0 && off >= 0 && (off > blen || len > blen - off)) {
        add(w + ": byteOffset + byteLength (" + std::to_string(off) + " + " + std::to_string(len) +
            ") exceeds buffers[" + std::to_string(bi) + "].byteLength (" + std::to_string(blen) +
            ")");
      }
      if (v.contains("byteStride")) {
        const json& s = v["byteStride"];
        if (!s.is_number_integer() || s.get<int64_t>() < 4 || s.get<int64_t>() > 252 ||
            s.get<int64_t>() % 4 != 0) {
          add(w + ": byteStride " + s.dump() + " is not a multiple of 4 in [4, 252]");
        }
      }
      if (v.contains("target")) {
        const int64_t t = integer(v, "target", 0);
        if (t != 34962 && t != 34963) add(w + ": target " + v["target"].dump() + " is invalid");
      }
    }
  }

  // Accessor `i`'s data as doubles (count * components), or empty when unreadable.
  std::vector<double> accessor_values(size_t i) {
    const json& a = j["accessors"][i];
    if (!a.contains("bufferView") || !is_index(a["bufferView"], "bufferViews")) return {};
    const json& v = j["bufferViews"][a["bufferView"].get<size_t>()];
    const int64_t buffer = integer(v, "buffer", -1);
    if (buffer < 0 || buffer >= static_cast<int64_t>(have.size()) || !have[buffer]) return {};
    const std::string& bytes = data[buffer];
    const int64_t ct = integer(a, "componentType", 0);
    const int nc = type_components(text(a, "type"));
    const int64_t count = integer(a, "count", 0);
    const int cs = component_size(ct);
    if (!cs || !nc || count < 1) return {};
    const int64_t elem = int64_t{cs} * nc;
    const int64_t stride = integer(v, "byteStride", elem);
    const int64_t voff = integer(v, "byteOffset", 0), aoff = integer(a, "byteOffset", 0);
    if (stride < elem || voff < 0 || aoff < 0 ||
        span(voff, 1, 0, aoff) > static_cast<int64_t>(bytes.size()) ||
        span(voff + aoff, count, stride, elem) > static_cast<int64_t>(bytes.size())) {
      return {};
    }
    const int64_t base = voff + aoff;
    std::vector<double> out(size_t(count) * nc);
    for (int64_t e = 0; e < count; ++e) {
      for (int c = 0; c < nc; ++c) {
        out[size_t(e) * nc + c] = read_component(bytes.data() + base + e * stride + c * cs, ct);
      }
    }
    return out;
  }

  std::vector<int64_t> accessor_count;
  void check_accessors() {
    if (!j.contains("accessors")) return;
    if (!j["accessors"].is_array()) return add("accessors: not an array");
    for (size_t i = 0; i < j["accessors"].size(); ++i) {
      const json& a = j["accessors"][i];
      std::string w = "accessors[" + std::to_string(i) + "]";
      accessor_count.push_back(-1);
      const int64_t ct = integer(a, "componentType", 0);
      const int cs = component_size(ct);
      if (!cs) {
        add(w + ": componentType " +
            (a.contains("componentType") ? a["componentType"].dump() : "missing") +
            " is not one of 5120, 5121, 5122, 5123, 5125, 5126");
        continue;
      }
      const std::string type = text(a, "type");
      int nc = type_components(type);
      if (!nc) {
        add(w + ": type '" + type + "' is not SCALAR, VEC2-4 or MAT2-4");
        continue;
      }
      if (!a.contains("count") || !a["count"].is_number_integer() ||
          a["count"].get<int64_t>() < 1) {
        add(w + ": count missing or not a positive integer");
        continue;
      }
      int64_t count = a["count"].get<int64_t>();
      accessor_count.back() = count;
      const int64_t aoff = integer(a, "byteOffset", 0);
      if (aoff < 0) {
        add(w + ": byteOffset is negative or not an integer");
        continue;
      }
      if (aoff % cs) {
        add(w + ": byteOffset " + std::to_string(aoff) +
            " is not a multiple of the component size " + std::to_string(cs));
      }
      if (!a.contains("bufferView")) continue;  // sparse / all zeros: allowed
      if (!is_index(a["bufferView"], "bufferViews")) {
        add(w + ".bufferView: " + a["bufferView"].dump() +
            " is not a valid index into bufferViews");
        continue;
      }
      const json& v = j["bufferViews"][a["bufferView"].get<size_t>()];
      int64_t elem = int64_t{cs} * nc;
      const int64_t stride = integer(v, "byteStride", elem);
      const int64_t vlen = integer(v, "byteLength", 0), voff = integer(v, "byteOffset", 0);
      if (stride == kNotInteger || vlen == kNotInteger || voff == kNotInteger) continue;  // above
      if (stride < elem) {
        add(w + ": bufferView byteStride " + std::to_string(stride) +
            " is smaller than the element size " + std::to_string(elem));
      }
      const int64_t need = span(aoff, count, stride, elem);
      if (need > vlen) {
        const std::string bytes = need == std::numeric_limits<int64_t>::max()
                                      ? std::string("more than 2^63")
                                      : std::to_string(need);
        add(w + ": byteOffset + count * stride (" + bytes + " bytes for count " +
            std::to_string(count) + ") exceeds bufferViews[" +
            std::to_string(a["bufferView"].get<int>()) + "].byteLength (" + std::to_string(vlen) +
            ")");
        continue;
      }
      if ((voff + aoff) % cs) {
        add(w + ": data is not aligned to its component size " + std::to_string(cs));
      }
      if (a.contains("min") != a.contains("max")) add(w + ": has only one of min / max");
      if (a.contains("min") && a.contains("max") && options.strict) {
        const auto numbers = [&](const json& v) {
          return v.is_array() && v.size() == size_t(nc) &&
                 std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number(); });
        };
        if (!numbers(a["min"]) || !numbers(a["max"])) {
          add(w + ": min/max must be arrays of " + std::to_string(nc) + " numbers");
        } else {
          auto vals = accessor_values(i);
          if (!vals.empty()) {
            for (int c = 0; c < nc; ++c) {
              double lo = INFINITY, hi = -INFINITY;
              for (int64_t e = 0; e < count; ++e) {
                lo = std::min(lo, vals[size_t(e) * nc + c]);
                hi = std::max(hi, vals[size_t(e) * nc + c]);
              }
              double mn = a["min"][c].get<double>(), mx = a["max"][c].get<double>();
              auto differs = [&](double x, double y) {
                return ct == 5126 ? static_cast<float>(x) != static_cast<float>(y) : x != y;
              };
              if (differs(lo, mn) || differs(hi, mx)) {
                add(w + ": min/max [" + std::to_string(mn) + ", " + std::to_string(mx) +
                    "] of component " + std::to_string(c) + " differ from the data [" +
                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
              }
            }
          }
        }
      }
    }
  }

  void check_meshes() {
    if (!j.contains("meshes")) return;
    if (!j["meshes"].is_array()) return add("meshes: not an array");
    for (size_t mi = 0; mi < j["meshes"].size(); ++mi) {
      const json& m = j["meshes"][mi];
      if (!m.contains("primitives") || !m["primitives"].is_array() || m["primitives"].empty()) {
        add("meshes[" + std::to_string(mi) + "]: no primitives");
        continue;
      }
      for (size_t pi = 0; pi < m["primitives"].size(); ++pi) {
        const json& p = m["primitives"][pi];
        std::string w = "meshes[" + std::to_string(mi) + "].primitives[" + std::to_string(pi) + "]";
        ref(p, "material", "materials", w);
        if (!p.contains("attributes") || !p["attributes"].is_object() || p["attributes"].empty()) {
          add(w + ": no attributes");
          continue;
        }
        if (!p["attributes"].contains("POSITION")) add(w + ": no POSITION attribute");
        int64_t vcount = -1;
        std::string first;
        for (auto it = p["attributes"].begin(); it != p["attributes"].end(); ++it) {
          if (!is_index(it.value(), "accessors")) {
            add(w + ".attributes." + it.key() + ": " + it.value().dump() +
                " is not a valid index into accessors");
            continue;
          }
          size_t ai = it.value().get<size_t>();
          int64_t c = ai < accessor_count.size() ? accessor_count[ai] : -1;
          if (vcount < 0) {
            vcount = c, first = it.key();
          } else if (c != vcount) {
            add(w + ": attribute " + it.key() + " has " + std::to_string(c) + " elements but " +
                first + " has " + std::to_string(vcount));
          }
          if (it.key() == "POSITION") {
            const json& a = j["accessors"][ai];
            if (text(a, "type") != "VEC3" || integer(a, "componentType", 0) != 5126) {
              add(w + ": POSITION accessor is not a float VEC3");
            }
            if (options.strict && (!a.contains("min") || !a.contains("max"))) {
              add("accessors[" + std::to_string(ai) + "] (POSITION): min and max are required");
            }
          }
        }
        if (p.contains("indices")) {
          if (!is_index(p["indices"], "accessors")) {
            add(w + ".indices: " + p["indices"].dump() + " is not a valid index into accessors");
            continue;
          }
          size_t ai = p["indices"].get<size_t>();
          const json& a = j["accessors"][ai];
          const int64_t ct = integer(a, "componentType", 0);
          if (text(a, "type") != "SCALAR" || (ct != 5121 && ct != 5123 && ct != 5125)) {
            add(w + ": indices accessor must be an unsigned SCALAR (5121, 5123 or 5125)");
            continue;
          }
          const int64_t mode = integer(p, "mode", 4);
          int64_t ic = ai < accessor_count.size() ? accessor_count[ai] : -1;
          if (mode == 4 && ic > 0 && ic % 3) {
            add(w + ": " + std::to_string(ic) + " indices for triangles, not a multiple of 3");
          }
          auto vals = accessor_values(ai);
          if (vcount > 0) {
            for (size_t k = 0; k < vals.size(); ++k) {
              if (vals[k] >= static_cast<double>(vcount)) {
                add(w + ": index " + std::to_string(static_cast<int64_t>(vals[k])) +
                    " at position " + std::to_string(k) + " is out of range (the primitive has " +
                    std::to_string(vcount) + " vertices)");
                break;
              }
            }
          }
        }
      }
    }
  }

  void check_references() {
    auto each = [&](const char* array, auto fn) {
      if (!j.contains(array)) return;
      if (!j[array].is_array()) return add(std::string(array) + ": not an array");
      for (size_t i = 0; i < j[array].size(); ++i) {
        fn(j[array][i], std::string(array) + "[" + std::to_string(i) + "]");
      }
    };
    each("images", [&](const json& im, const std::string& w) {
      if (im.contains("bufferView")) {
        ref(im, "bufferView", "bufferViews", w);
        if (!im.contains("mimeType")) add(w + ": bufferView without mimeType");
      } else if (!im.contains("uri")) {
        add(w + ": neither uri nor bufferView");
      }
    });
    each("textures", [&](const json& t, const std::string& w) {
      ref(t, "source", "images", w);
      ref(t, "sampler", "samplers", w);
    });
    each("materials", [&](const json& m, const std::string& w) {
      if (!m.contains("pbrMetallicRoughness")) return;
      const json& pbr = m["pbrMetallicRoughness"];
      for (const char* key : {"baseColorTexture", "metallicRoughnessTexture"}) {
        if (pbr.contains(key))
          ref(pbr[key], "index", "textures", w + ".pbrMetallicRoughness." + key);
      }
      if (pbr.contains("baseColorFactor")) {
        const json& f = pbr["baseColorFactor"];
        bool ok = f.is_array() && f.size() == 4;
        for (size_t k = 0; ok && k < 4; ++k) {
          ok = f[k].is_number() && f[k].get<double>() >= 0 && f[k].get<double>() <= 1;
        }
        if (!ok) add(w + ".pbrMetallicRoughness.baseColorFactor: not 4 numbers in [0, 1]");
      }
    });
    each("nodes", [&](const json& n, const std::string& w) {
      ref(n, "mesh", "meshes", w);
      if (n.contains("children")) {
        for (const auto& c : n["children"]) {
          if (!is_index(c, "nodes"))
            add(w + ".children: " + c.dump() + " is not a valid node index");
        }
      }
    });
    each("scenes", [&](const json& s, const std::string& w) {
      if (s.contains("nodes")) {
        for (const auto& c : s["nodes"]) {
          if (!is_index(c, "nodes")) add(w + ".nodes: " + c.dump() + " is not a valid node index");
        }
      }
    });
    if (j.contains("scene")) ref(j, "scene", "scenes", "(root)");
  }
};

std::vector<std::string> check_document(Checker& c);

}  // namespace

std::vector<std::string> check_glb(const std::string& b, const GltfCheckOptions& options) {
  Checker c;
  c.options = options;
  if (b.size() < 12) {
    c.add("file is " + std::to_string(b.size()) + " bytes, shorter than the 12-byte GLB header");
    return c.problems;
  }
  if (u32_at(b, 0) != 0x46546C67) {
    c.add("header: magic is not 'glTF' (not a GLB file)");
    return c.problems;
  }
  if (u32_at(b, 4) != 2) c.add("header: version " + std::to_string(u32_at(b, 4)) + " is not 2");
  uint32_t length = u32_at(b, 8);
  if (length != b.size()) {
    c.add("header: length " + std::to_string(length) + " differs from the file size " +
          std::to_string(b.size()) + (length > b.size() ? " (truncated file)" : ""));
  }
  if (length % 4) c.add("header: length " + std::to_string(length) + " is not a multiple of 4");
  size_t end = std::min<size_t>(length, b.size());
  size_t off = 12;
  int chunk = 0;
  std::string json_text;
  bool have_json = false;
  while (off < end) {
    std::string w = "chunk " + std::to_string(chunk);
    if (off + 8 > end) {
      c.add(w + ": header runs past the end of the file (truncated)");
      break;
    }
    uint32_t len = u32_at(b, off), type = u32_at(b, off + 4);
    if (len % 4) c.add(w + ": length " + std::to_string(len) + " is not padded to 4 bytes");
    if (off + 8 + size_t{len} > end) {
      c.add(w + ": length " + std::to_string(len) + " runs past the end of the file (truncated)");
      break;
    }
    std::string data = b.substr(off + 8, len);
    if (chunk == 0) {
      if (type != 0x4E4F534A)
        c.add("chunk 0 is not the JSON chunk");
      else
        json_text = data, have_json = true;
    } else if (chunk == 1 && type == 0x004E4942) {
      c.bin = data;
      c.has_bin = true;
    } else if (type == 0x4E4F534A || type == 0x004E4942) {
      c.add(w + ": a second JSON or BIN chunk");
    }
    off += 8 + len;
    ++chunk;
  }
  if (!have_json) {
    c.add("no JSON chunk");
    return c.problems;
  }
  try {
    c.j = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
    c.add(std::string("JSON chunk does not parse: ") + e.what());
    return c.problems;
  }
  return check_document(c);
}

std::vector<std::string> check_gltf(const std::string& json_text,
                                    const std::filesystem::path& base_dir,
                                    const GltfCheckOptions& options) {
  Checker c;
  c.options = options;
  c.is_glb = false;
  c.base_dir = base_dir;
  try {
    c.j = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number too large
    c.add(std::string("JSON does not parse: ") + e.what());
    return c.problems;
  }
  return check_document(c);
}

namespace {
std::vector<std::string> check_document(Checker& c) {
  if (!c.j.is_object()) {
    c.add("the JSON is not an object");
    return c.problems;
  }
  if (!c.j.contains("asset") || !c.j["asset"].is_object() ||
      Checker::text(c.j["asset"], "version") != "2.0") {
    c.add("asset.version is missing or not \"2.0\"");
  }
  // The checks test each value's type before reading it; a JSON type they did not foresee is still
  // a problem of the file, not an error of studio.
  try {
    c.check_buffers();
    if (c.j.contains("bufferViews") && !c.j.contains("buffers"))
      c.add("bufferViews without buffers");
    c.check_views();
    c.check_accessors();
    c.check_meshes();
    c.check_references();
  } catch (const json::exception& e) {
    c.add(std::string("a value has an unexpected JSON type: ") + e.what());
  }
  return c.problems;
}
}  // namespace

std::vector<std::string> check_glb_file(const std::filesystem::path& path,
                                        const GltfCheckOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {path.string() + ": cannot open file"};
  std::ostringstream ss;
  ss << in.rdbuf();
  return check_glb(ss.str(), options);
}

std::vector<std::string> check_gltf_file(const std::filesystem::path& path,
                                         const GltfCheckOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {path.string() + ": cannot open file"};
  std::ostringstream ss;
  ss << in.rdbuf();
  return check_gltf(ss.str(), path.parent_path(), options);
}

}  // namespace studio::mesh
