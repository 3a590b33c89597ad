// Fuzzes request body decoding (protocol/wire.h DecodeBody) and the message decoders of
// protocol/messages.h, LookupRequestFromJson above all (the one body the agent accepts). Input:
// 1 selector byte (bit 0: JSON instead of msgpack; bit 1: the agent's /v1/lookup limits instead of
// the defaults), then the body. Decoding either fails with kInvalidArgument or gives a tree that
// re-encodes in both formats (never throws) and decodes back.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace {

using swrdma::fuzz::Check;

template <typename R>
void CheckDecoded(const R& r) {
  if (!r) Check(r.error().code() == swrdma::Code::kInvalidArgument);
}

bool HasNaN(const nlohmann::json& j) {
  if (j.is_number_float()) return std::isnan(j.get<double>());
  if (j.is_structured()) {
    for (const auto& v : j)
      if (HasNaN(v)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace swrdma;
  if (size < 1) return 0;
  const WireFormat format = (data[0] & 1) ? WireFormat::kJson : WireFormat::kMsgpack;
  DecodeLimits limits;
  if (data[0] & 2) {  // what AgentService::Lookup uses
    limits.max_array = 10'000;
    limits.max_str = 256;
  }
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);

  auto tree = DecodeBody(body, format, limits);
  if (!tree) {
    Check(tree.error().code() == Code::kInvalidArgument);
    return 0;
  }

  auto lookup = LookupRequestFromJson(*tree);
  CheckDecoded(lookup);
  if (lookup) {
    auto again = LookupRequestFromJson(ToJson(*lookup));
    Check(again.has_value() && again->fids == lookup->fids);
  }
  CheckDecoded(AgentInfoFromJson(*tree));
  CheckDecoded(VolumeDescriptorFromJson(*tree));
  CheckDecoded(VolumeListFromJson(*tree));
  CheckDecoded(LookupResponseFromJson(*tree));
  CheckDecoded(SampleResponseFromJson(*tree));

  // msgpack re-encoding decodes back to the same tree under the same limits.
  const std::string packed = EncodeBody(*tree, WireFormat::kMsgpack);
  auto unpacked = DecodeBody(packed, WireFormat::kMsgpack, limits);
  Check(unpacked.has_value());
  if (!HasNaN(*tree)) Check(*unpacked == *tree);

  // JSON encoding (the agent answers ?format=json with it) never throws and parses back; binaries
  // become hex strings twice as long, hence the wider limits.
  const std::string text = EncodeBody(*tree, WireFormat::kJson);
  DecodeLimits wide = limits;
  wide.max_depth = limits.max_depth + 1;
  wide.max_str = 2 * std::max(limits.max_str, limits.max_bin);
  auto reparsed = DecodeBody(text, WireFormat::kJson, wide);
  Check(reparsed.has_value());
  return 0;
}
