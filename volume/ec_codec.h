// Reed-Solomon over GF(2^8) with the coding matrix klauspost/reedsolomon builds by default
// (`reedsolomon.New(data, parity)`, what weed's ECContext.CreateEncoder uses), computed with
// ISA-L. Same matrix means parity shards identical to weed's byte for byte, so shards we write
// can be rebuilt by weed and weed's shards rebuilt by us.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/status.h"

namespace swrdma::ec {

class ReedSolomonCodec {
 public:
  // kInvalidArgument unless 0 < data, 0 < parity and data + parity <= 256.
  static Result<ReedSolomonCodec> Create(uint32_t data_shards, uint32_t parity_shards);

  uint32_t data_shards() const { return data_; }
  uint32_t parity_shards() const { return parity_; }
  // (data + parity) x data, row-major: the identity on top, the parity rows below.
  const std::vector<uint8_t>& matrix() const { return matrix_; }

  // parity[p][0..len) = row data+p of the matrix applied to data[0..data)[0..len).
  void EncodeParity(size_t len, std::span<const uint8_t* const> data,
                    std::span<uint8_t* const> parity) const;

  // Fills in the shards (data and parity, `shards.size()` == data + parity, each `len` bytes)
  // whose `present` flag is false from any `data_shards()` present ones. kInvalidArgument if
  // fewer than that are present.
  Status Reconstruct(size_t len, std::span<uint8_t* const> shards,
                     std::span<const bool> present) const;
  // The same for the data shards only: missing parity shards are left as they are (a reader
  // rebuilding a lost data shard needs no parity re-encoded).
  Status ReconstructData(size_t len, std::span<uint8_t* const> shards,
                         std::span<const bool> present) const;

 private:
  ReedSolomonCodec() = default;

  uint32_t data_ = 0;
  uint32_t parity_ = 0;
  std::vector<uint8_t> matrix_;
  std::vector<uint8_t> parity_tables_;  // ec_init_tables of the parity rows, built once
};

}  // namespace swrdma::ec
