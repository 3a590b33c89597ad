// Wire encoding of the agent's HTTP messages: msgpack (clients) or JSON (humans, curl).
//
// Both decode into an nlohmann::json tree first (msgpack through msgpack-cxx, which enforces size
// and nesting limits while unpacking), so each message has one FromJson/ToJson pair. Byte strings
// (worker address, rkeys) are msgpack `bin` on the wire and lower-case hex strings in JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/status.h"

namespace swrdma {

enum class WireFormat : uint8_t { kMsgpack, kJson };

inline constexpr std::string_view kMsgpackMime = "application/msgpack";
inline constexpr std::string_view kJsonMime = "application/json";

// What an untrusted body may contain. Exceeding any limit is kInvalidArgument (HTTP 400); a body
// larger than the HTTP layer's limit never gets here.
struct DecodeLimits {
  size_t max_depth = 8;
  size_t max_array = 100'000;  // elements in one array (a lookup batch is capped separately)
  size_t max_map = 256;        // pairs in one map
  size_t max_str = 64 * 1024;  // bytes in one string
  size_t max_bin = 64 * 1024;  // bytes in one binary
};

// Decodes a whole body. kInvalidArgument naming what is wrong: not msgpack/JSON, trailing bytes,
// a limit exceeded.
Result<nlohmann::json> DecodeBody(std::string_view body, WireFormat format,
                                  const DecodeLimits& limits = {});

// Encodes `value`; in JSON, binary values become hex strings.
std::string EncodeBody(const nlohmann::json& value, WireFormat format);

std::string_view MimeOf(WireFormat format);

// Typed field access for FromJson functions. Missing required fields and wrong types are
// kInvalidArgument naming the field; unknown fields are ignored by simply not asking for them.
Result<uint64_t> GetUint(const nlohmann::json& obj, std::string_view key);
Result<std::string> GetString(const nlohmann::json& obj, std::string_view key);
// Accepts msgpack bin or a hex string.
Result<std::vector<uint8_t>> GetBytes(const nlohmann::json& obj, std::string_view key);
Result<std::vector<std::string>> GetStringArray(const nlohmann::json& obj, std::string_view key);
Result<const nlohmann::json*> GetArray(const nlohmann::json& obj, std::string_view key);

// Hex helpers (lower case).
std::string ToHex(std::span<const uint8_t> bytes);
Result<std::vector<uint8_t>> FromHex(std::string_view hex);

}  // namespace swrdma
