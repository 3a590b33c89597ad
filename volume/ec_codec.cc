#include "volume/ec_codec.h"

#include <algorithm>

#include <fmt/format.h>
#include <isa-l/erasure_code.h>

namespace swrdma::ec {

namespace {

// klauspost/reedsolomon's buildMatrix: the (total x data) Vandermonde matrix V[r][c] = r^c in
// GF(2^8) (polynomial 0x11d, the field ISA-L's gf_mul uses too), times the inverse of its top
// data x data square, so the top becomes the identity (data shards stay as they are) while
// every data x data subset of rows stays invertible.
Result<std::vector<uint8_t>> BuildMatrix(uint32_t data, uint32_t total) {
  std::vector<uint8_t> vandermonde(size_t{total} * data);
  for (uint32_t r = 0; r < total; ++r) {
    uint8_t power = 1;  // r^0 = 1, also for r = 0 (as galExp(0, 0) is)
    for (uint32_t c = 0; c < data; ++c) {
      vandermonde[size_t{r} * data + c] = power;
      power = gf_mul(power, static_cast<uint8_t>(r));
    }
  }
  std::vector<uint8_t> top(vandermonde.begin(), vandermonde.begin() + size_t{data} * data);
  std::vector<uint8_t> top_inverse(top.size());
  if (gf_invert_matrix(top.data(), top_inverse.data(), static_cast<int>(data)) != 0) {
    return Error(Code::kInternal,
                 fmt::format("Reed-Solomon {}+{}: the Vandermonde top square is singular (cannot "
                             "happen for distinct rows; ISA-L is broken?)",
                             data, total - data));
  }
  std::vector<uint8_t> matrix(vandermonde.size());
  for (uint32_t r = 0; r < total; ++r) {
    for (uint32_t c = 0; c < data; ++c) {
      uint8_t sum = 0;
      for (uint32_t k = 0; k < data; ++k) {
        sum ^= gf_mul(vandermonde[size_t{r} * data + k], top_inverse[size_t{k} * data + c]);
      }
      matrix[size_t{r} * data + c] = sum;
    }
  }
  return matrix;
}

std::vector<uint8_t> InitTables(uint32_t k, uint32_t rows, std::vector<uint8_t> coefficients) {
  std::vector<uint8_t> tables(size_t{32} * k * rows);
  ec_init_tables(static_cast<int>(k), static_cast<int>(rows), coefficients.data(), tables.data());
  return tables;
}

}  // namespace

Result<ReedSolomonCodec> ReedSolomonCodec::Create(uint32_t data_shards, uint32_t parity_shards) {
  if (data_shards == 0 || parity_shards == 0 || data_shards + parity_shards > 256) {
    return Error(Code::kInvalidArgument,
                 fmt::format("Reed-Solomon {}+{}: need at least one data and one parity shard and "
                             "at most 256 in all",
                             data_shards, parity_shards));
  }
  ReedSolomonCodec codec;
  codec.data_ = data_shards;
  codec.parity_ = parity_shards;
  SWRDMA_ASSIGN_OR_RETURN(codec.matrix_, BuildMatrix(data_shards, data_shards + parity_shards));
  codec.parity_tables_ =
      InitTables(data_shards, parity_shards,
                 std::vector<uint8_t>(codec.matrix_.begin() + size_t{data_shards} * data_shards,
                                      codec.matrix_.end()));
  return codec;
}

void ReedSolomonCodec::EncodeParity(size_t len, std::span<const uint8_t* const> data,
                                    std::span<uint8_t* const> parity) const {
  if (len == 0) return;
  // ISA-L takes non-const pointer arrays but only reads the sources.
  ec_encode_data(static_cast<int>(len), static_cast<int>(data_), static_cast<int>(parity_),
                 const_cast<uint8_t*>(parity_tables_.data()), const_cast<uint8_t**>(data.data()),
                 const_cast<uint8_t**>(parity.data()));
}

Status ReedSolomonCodec::Reconstruct(size_t len, std::span<uint8_t* const> shards,
                                     std::span<const bool> present) const {
  SWRDMA_RETURN_IF_ERROR(ReconstructData(len, shards, present));
  // The data is whole now: missing parity is a plain encode of its rows.
  const uint32_t total = data_ + parity_;
  std::vector<uint8_t> rows;
  std::vector<uint8_t*> outputs;
  for (uint32_t p = data_; p < total; ++p) {
    if (present[p]) continue;
    rows.insert(rows.end(), matrix_.begin() + size_t{p} * data_,
                matrix_.begin() + size_t{p + 1} * data_);
    outputs.push_back(shards[p]);
  }
  if (!outputs.empty() && len > 0) {
    std::vector<uint8_t> tables =
        InitTables(data_, static_cast<uint32_t>(outputs.size()), std::move(rows));
    ec_encode_data(static_cast<int>(len), static_cast<int>(data_), static_cast<int>(outputs.size()),
                   tables.data(), const_cast<uint8_t**>(shards.data()), outputs.data());
  }
  return Status::Ok();
}

Status ReedSolomonCodec::ReconstructData(size_t len, std::span<uint8_t* const> shards,
                                         std::span<const bool> present) const {
  const uint32_t total = data_ + parity_;
  if (shards.size() != total || present.size() != total) {
    return Status(Code::kInvalidArgument,
                  fmt::format("Reed-Solomon {}+{}: got {} shards and {} flags, expected {}", data_,
                              parity_, shards.size(), present.size(), total));
  }
  // Any `data_` present shards determine the data: their matrix rows form an invertible square
  // whose inverse maps them back to the data shards.
  std::vector<uint32_t> sources;
  for (uint32_t i = 0; i < total && sources.size() < data_; ++i) {
    if (present[i]) sources.push_back(i);
  }
  if (sources.size() < data_) {
    return Status(Code::kInvalidArgument,
                  fmt::format("Reed-Solomon {}+{}: only {} shards present, need {} to rebuild the "
                              "rest",
                              data_, parity_, sources.size(), data_));
  }
  std::vector<uint32_t> missing_data;
  for (uint32_t i = 0; i < data_; ++i) {
    if (!present[i]) missing_data.push_back(i);
  }
  if (!missing_data.empty() && len > 0) {
    std::vector<uint8_t> square(size_t{data_} * data_);
    for (uint32_t r = 0; r < data_; ++r) {
      std::copy_n(matrix_.begin() + size_t{sources[r]} * data_, data_,
                  square.begin() + size_t{r} * data_);
    }
    std::vector<uint8_t> inverse(square.size());
    if (gf_invert_matrix(square.data(), inverse.data(), static_cast<int>(data_)) != 0) {
      return Status(Code::kInternal, "Reed-Solomon: a square of surviving rows is singular");
    }
    std::vector<uint8_t> rows;
    std::vector<uint8_t*> outputs;
    for (uint32_t i : missing_data) {
      rows.insert(rows.end(), inverse.begin() + size_t{i} * data_,
                  inverse.begin() + size_t{i + 1} * data_);
      outputs.push_back(shards[i]);
    }
    std::vector<uint8_t*> inputs;
    for (uint32_t i : sources)
      inputs.push_back(shards[i]);
    std::vector<uint8_t> tables =
        InitTables(data_, static_cast<uint32_t>(missing_data.size()), std::move(rows));
    ec_encode_data(static_cast<int>(len), static_cast<int>(data_),
                   static_cast<int>(missing_data.size()), tables.data(), inputs.data(),
                   outputs.data());
  }
  return Status::Ok();
}

}  // namespace swrdma::ec
