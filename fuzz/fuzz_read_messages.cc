// Fuzzes the checked read wire format (protocol/read_messages.h): what the agent decodes from
// every active message a peer sends to its request id, and what a client decodes from reply
// headers and EC pieces blocks. Decoding must never read past the input, crash or allocate by an
// untrusted count; a request that decodes must encode back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "protocol/read_messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  if (auto request = swrdma::DecodeReadRequest(bytes)) {
    auto again = swrdma::EncodeReadRequest(*request);
    if (!again || again->size() != size || !std::equal(again->begin(), again->end(), data)) {
      std::abort();  // decode and encode disagree
    }
  }
  (void)swrdma::DecodeReadReplyHeader(bytes);
  // An EC pieces block (a reply's data): what decodes lies inside the input and re-encodes to
  // the same table.
  if (auto pieces = swrdma::DecodeEcPieces(bytes)) {
    auto head = swrdma::EncodeEcPiecesHead(pieces->record_length, pieces->pieces);
    if (!head || head->size() + pieces->bytes.size() != size ||
        !std::equal(head->begin(), head->end(), data) ||
        pieces->bytes.data() != data + head->size()) {
      std::abort();
    }
  }
  return 0;
}
