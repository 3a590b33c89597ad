#include "protocol/wire.h"

#include <fmt/format.h>
#include <msgpack.hpp>

namespace swrdma {
namespace {

using nlohmann::json;

// msgpack object -> json, depth already bounded by the unpack limits.
json ToJsonTree(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    case msgpack::type::STR:
      return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN: {
      const auto* p = reinterpret_cast<const uint8_t*>(o.via.bin.ptr);
      return json::binary(std::vector<uint8_t>(p, p + o.via.bin.size));
    }
    case msgpack::type::ARRAY: {
      json a = json::array();
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        a.push_back(ToJsonTree(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      json m = json::object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) continue;  // non-string keys are never ours
        m[std::string(kv.key.via.str.ptr, kv.key.via.str.size)] = ToJsonTree(kv.val);
      }
      return m;
    }
    case msgpack::type::EXT:
      return nullptr;
  }
  return nullptr;
}

// Nesting depth of a JSON text, ignoring brackets inside strings. Bounded before parsing so a
// pathological body costs one linear scan.
size_t JsonDepth(std::string_view s) {
  size_t depth = 0, max_depth = 0;
  bool in_str = false, esc = false;
  for (char c : s) {
    if (in_str) {
      if (esc)
        esc = false;
      else if (c == '\\')
        esc = true;
      else if (c == '"')
        in_str = false;
      continue;
    }
    if (c == '"')
      in_str = true;
    else if (c == '[' || c == '{')
      max_depth = std::max(max_depth, ++depth);
    else if ((c == ']' || c == '}') && depth > 0)
      --depth;
  }
  return max_depth;
}

Status CheckJsonLimits(const json& j, const DecodeLimits& l) {
  if (j.is_string() && j.get_ref<const std::string&>().size() > l.max_str) {
    return Status(Code::kInvalidArgument, fmt::format("string longer than {} bytes", l.max_str));
  }
  if (j.is_array() && j.size() > l.max_array) {
    return Status(Code::kInvalidArgument,
                  fmt::format("array longer than {} elements", l.max_array));
  }
  if (j.is_object() && j.size() > l.max_map) {
    return Status(Code::kInvalidArgument, fmt::format("map larger than {} entries", l.max_map));
  }
  if (j.is_structured()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      // Keys are strings too (msgpack-cxx's max_str covers them on the msgpack path).
      if (j.is_object() && it.key().size() > l.max_str) {
        return Status(Code::kInvalidArgument,
                      fmt::format("map key longer than {} bytes", l.max_str));
      }
      SWRDMA_RETURN_IF_ERROR(CheckJsonLimits(*it, l));
    }
  }
  return Status::Ok();
}

json HexifyBinaries(const json& j) {
  if (j.is_binary()) return ToHex(j.get_binary());
  if (j.is_array()) {
    json a = json::array();
    for (const auto& v : j)
      a.push_back(HexifyBinaries(v));
    return a;
  }
  if (j.is_object()) {
    json m = json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
      m[it.key()] = HexifyBinaries(it.value());
    return m;
  }
  return j;
}

const json* Find(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::unexpected<Status> Missing(std::string_view key) {
  return Error(Code::kInvalidArgument, fmt::format("field '{}' is missing", key));
}
std::unexpected<Status> WrongType(std::string_view key, std::string_view want, const json& got) {
  return Error(Code::kInvalidArgument,
               fmt::format("field '{}' must be {}, got {}", key, want, got.type_name()));
}

}  // namespace

Result<json> DecodeBody(std::string_view body, WireFormat format, const DecodeLimits& limits) {
  if (body.empty()) return Error(Code::kInvalidArgument, "empty request body");
  if (format == WireFormat::kJson) {
    if (JsonDepth(body) > limits.max_depth) {
      return Error(Code::kInvalidArgument,
                   fmt::format("JSON nested deeper than {} levels", limits.max_depth));
    }
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Error(Code::kInvalidArgument, "body is not valid JSON");
    SWRDMA_RETURN_IF_ERROR(CheckJsonLimits(j, limits).WithContext("JSON body"));
    return j;
  }
  const msgpack::unpack_limit lim(limits.max_array, limits.max_map, limits.max_str, limits.max_bin,
                                  /*ext=*/0, limits.max_depth);
  try {
    std::size_t off = 0;
    msgpack::object_handle oh =
        msgpack::unpack(body.data(), body.size(), off, nullptr, nullptr, lim);
    if (off != body.size()) {
      return Error(
          Code::kInvalidArgument,
          fmt::format("msgpack body has {} trailing bytes after the message", body.size() - off));
    }
    return ToJsonTree(oh.get());
  } catch (const msgpack::depth_size_overflow&) {
    return Error(Code::kInvalidArgument,
                 fmt::format("msgpack nested deeper than {} levels", limits.max_depth));
  } catch (const msgpack::size_overflow& e) {
    return Error(Code::kInvalidArgument, fmt::format("msgpack body exceeds a limit: {}", e.what()));
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument, fmt::format("body is not valid msgpack: {}", e.what()));
  }
}

std::string EncodeBody(const json& value, WireFormat format) {
  // Replace, not throw: strings from clients (fids, paths) may be invalid UTF-8.
  if (format == WireFormat::kJson) {
    return HexifyBinaries(value).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  std::string out;
  json::to_msgpack(value, out);
  return out;
}

std::string_view MimeOf(WireFormat format) {
  return format == WireFormat::kJson ? kJsonMime : kMsgpackMime;
}

Result<uint64_t> GetUint(const json& obj, std::string_view key) {
  const json* v = Find(obj, key);
  if (!v) return Missing(key);
  if (!v->is_number_unsigned()) {
    if (v->is_number_integer() && v->get<int64_t>() >= 0) return v->get<uint64_t>();
    return WrongType(key, "a non-negative integer", *v);
  }
  return v->get<uint64_t>();
}

Result<std::string> GetString(const json& obj, std::string_view key) {
  const json* v = Find(obj, key);
  if (!v) return Missing(key);
  if (!v->is_string()) return WrongType(key, "a string", *v);
  return v->get<std::string>();
}

Result<std::vector<uint8_t>> GetBytes(const json& obj, std::string_view key) {
  const json* v = Find(obj, key);
  if (!v) return Missing(key);
  if (v->is_binary()) return std::vector<uint8_t>(v->get_binary().begin(), v->get_binary().end());
  if (v->is_string()) {
    auto bytes = FromHex(v->get_ref<const std::string&>());
    if (!bytes) return Error(bytes.error().WithContext(fmt::format("field '{}'", key)));
    return bytes;
  }
  return WrongType(key, "binary or a hex string", *v);
}

Result<const json*> GetArray(const json& obj, std::string_view key) {
  const json* v = Find(obj, key);
  if (!v) return Missing(key);
  if (!v->is_array()) return WrongType(key, "an array", *v);
  return v;
}

Result<std::vector<std::string>> GetStringArray(const json& obj, std::string_view key) {
  SWRDMA_ASSIGN_OR_RETURN(const json* arr, GetArray(obj, key));
  std::vector<std::string> out;
  out.reserve(arr->size());
  for (const auto& v : *arr) {
    if (!v.is_string()) return WrongType(key, "an array of strings", v);
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

Result<std::vector<uint8_t>> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return Error(Code::kInvalidArgument, "hex string has odd length");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Error(Code::kInvalidArgument, "not a hex string");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace swrdma
