// The checked read wire format (protocol/read_messages.h): round trips, and every malformed
// request refused with a reason instead of read past its end.
#include <algorithm>

#include <gtest/gtest.h>

#include "protocol/read_messages.h"

namespace swrdma {
namespace {

TEST(ReadMessagesTest, RequestRoundTrips) {
  ReadRequest r{.request_id = 0x0102030405060708,
                .entries = {{"3,01637037d6", ""}, {"4,0a0b0c0d0e_2", std::string(900, 't')}}};
  auto bytes = EncodeReadRequest(r);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  EXPECT_EQ(bytes->size(), kReadRequestFixedBytes + 3 + 12 + 3 + 14 + 900);
  auto back = DecodeReadRequest(*bytes);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->request_id, r.request_id);
  ASSERT_EQ(back->entries.size(), 2u);
  EXPECT_EQ(back->entries[0].fid, "3,01637037d6");
  EXPECT_EQ(back->entries[0].token, "");
  EXPECT_EQ(back->entries[1].fid, "4,0a0b0c0d0e_2");
  EXPECT_EQ(back->entries[1].token, std::string(900, 't'));
}

TEST(ReadMessagesTest, EncoderRefusesWhatTheDecoderWouldRefuse) {
  EXPECT_FALSE(EncodeReadRequest({}).has_value());
  EXPECT_FALSE(EncodeReadRequest({.entries = {{"", ""}}}).has_value());
  EXPECT_FALSE(EncodeReadRequest({.entries = {{std::string(65, '1'), ""}}}).has_value());
  EXPECT_FALSE(EncodeReadRequest({.entries = {{"1,01", std::string(kMaxReadTokenBytes + 1, 't')}}})
                   .has_value());
  ReadRequest many;
  many.entries.assign(kMaxReadBatch + 1, {"1,01", ""});
  auto e = EncodeReadRequest(many);
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message().find("4096"), std::string::npos) << e.error().message();
}

TEST(ReadMessagesTest, EveryTruncationAndCorruptionIsRefused) {
  auto bytes = *EncodeReadRequest({.request_id = 7, .entries = {{"3,01637037d6", "tok"}}});
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeReadRequest({bytes.data(), n}).has_value()) << "cut at " << n;
  }
  auto extra = bytes;
  extra.push_back(0);
  EXPECT_FALSE(DecodeReadRequest(extra).has_value());
  auto flags = bytes;
  flags[6] = 4;  // no such flag
  auto f = DecodeReadRequest(flags);
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message().find("unknown flags 0x4"), std::string::npos);
  // The push flag without a whole landing block after the fixed header.
  auto push = bytes;
  push[6] = 1;
  EXPECT_FALSE(DecodeReadRequest(push).has_value());
  auto version = bytes;
  version[4] = 9;
  auto v = DecodeReadRequest(version);
  ASSERT_FALSE(v.has_value());
  EXPECT_NE(v.error().message().find("version 9"), std::string::npos);
  // A count far beyond what the bytes can hold is refused before anything is allocated for it.
  auto count = bytes;
  count[16] = 0xff;
  count[17] = 0x0f;
  auto c = DecodeReadRequest(count);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message().find("4095"), std::string::npos) << c.error().message();
}

TEST(ReadMessagesTest, PushLandingRoundTripsAndBadOnesAreRefused) {
  ReadRequest r{.request_id = 5, .entries = {{"3,01637037d6", "tok"}}};
  PushLanding landing;
  for (size_t i = 0; i < landing.nonce.size(); ++i)
    landing.nonce[i] = static_cast<uint8_t>(0xa0 + i);
  landing.address = 0x7f0012345000;
  landing.rkey = 0xdeadbeef;
  landing.length = uint64_t{4} << 20;
  r.push = landing;
  auto bytes = EncodeReadRequest(r);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  EXPECT_EQ(bytes->size(), kReadRequestFixedBytes + kReadPushBlockBytes + 3 + 12 + 3);
  auto back = DecodeReadRequest(*bytes);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  ASSERT_TRUE(back->push.has_value());
  EXPECT_EQ(back->push->nonce, landing.nonce);
  EXPECT_EQ(back->push->address, landing.address);
  EXPECT_EQ(back->push->rkey, landing.rkey);
  EXPECT_EQ(back->push->length, landing.length);
  EXPECT_EQ(back->entries.at(0).fid, "3,01637037d6");
  for (size_t n = 0; n < bytes->size(); ++n) {
    EXPECT_FALSE(DecodeReadRequest({bytes->data(), n}).has_value()) << "cut at " << n;
  }
  // A landing of no bytes, one that wraps around the address space, a non-zero reserved word.
  const size_t block = kReadRequestFixedBytes;
  auto empty = *bytes;
  std::fill(empty.begin() + block + 32, empty.begin() + block + 40, 0);
  EXPECT_FALSE(DecodeReadRequest(empty).has_value());
  auto wraps = *bytes;
  std::fill(wraps.begin() + block + 16, wraps.begin() + block + 24, 0xff);
  EXPECT_FALSE(DecodeReadRequest(wraps).has_value());
  auto reserved = *bytes;
  reserved[block + 28] = 1;
  EXPECT_FALSE(DecodeReadRequest(reserved).has_value());
  // Without a landing the request has none.
  r.push.reset();
  auto plain = DecodeReadRequest(*EncodeReadRequest(r));
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(plain->push.has_value());
}

TEST(ReadMessagesTest, LandedFlagOnlyWithOkAndNoOtherFlags) {
  std::array<uint8_t, kReadReplyHeaderBytes> buf{};
  ReadReplyHeader h{
      .status = ReadStatus::kOk, .request_id = 1, .length = 4136, .needle_size = 4096};
  h.landed = true;
  EncodeReadReplyHeader(h, buf);
  auto back = DecodeReadReplyHeader(buf);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_TRUE(back->landed);
  EXPECT_EQ(back->length, 4136u);
  auto refusal = buf;
  refusal[6] = static_cast<uint8_t>(ReadStatus::kDenied);  // "landed" refusals make no sense
  EXPECT_FALSE(DecodeReadReplyHeader(refusal).has_value());
  auto unknown = buf;
  unknown[44] = 4;
  EXPECT_FALSE(DecodeReadReplyHeader(unknown).has_value());
  auto both = buf;
  both[44] = kReplyLanded | kReplyPieces;  // landed pieces: no such thing
  EXPECT_FALSE(DecodeReadReplyHeader(both).has_value());
  h.landed = false;
  EncodeReadReplyHeader(h, buf);
  EXPECT_FALSE(DecodeReadReplyHeader(buf)->landed);
  EXPECT_EQ(NextLandingOffset(0), 0u);
  EXPECT_EQ(NextLandingOffset(4133), 4136u);
  EXPECT_EQ(NextLandingOffset(4136), 4136u);
}

TEST(ReadMessagesTest, EcPiecesFlagsAndBlocksRoundTrip) {
  ReadRequest r;
  r.request_id = 9;
  r.entries.push_back({"3,01637037d6", "tok"});
  r.ec_pieces = true;
  auto bytes = EncodeReadRequest(r);
  ASSERT_TRUE(bytes);
  auto back = DecodeReadRequest(*bytes);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_TRUE(back->ec_pieces);
  EXPECT_FALSE(back->push);

  std::array<uint8_t, kReadReplyHeaderBytes> buf{};
  ReadReplyHeader h{.status = ReadStatus::kOk, .request_id = 9, .length = 60, .needle_size = 40};
  h.pieces = true;
  EncodeReadReplyHeader(h, buf);
  auto hb = DecodeReadReplyHeader(buf);
  ASSERT_TRUE(hb);
  EXPECT_TRUE(hb->pieces);
  EXPECT_FALSE(hb->landed);
  auto refusal = buf;
  refusal[6] = static_cast<uint8_t>(ReadStatus::kNotFound);  // pieces of a refusal: malformed
  EXPECT_FALSE(DecodeReadReplyHeader(refusal).has_value());

  const std::vector<EcPiece> pieces = {{0, 16}, {20, 4}, {30, 10}};
  auto head = EncodeEcPiecesHead(40, pieces);
  ASSERT_TRUE(head) << head.error().ToString();
  std::vector<uint8_t> block = *head;
  for (int i = 0; i < 30; ++i)
    block.push_back(static_cast<uint8_t>(i));
  auto view = DecodeEcPieces(block);
  ASSERT_TRUE(view) << view.error().ToString();
  EXPECT_EQ(view->record_length, 40u);
  EXPECT_EQ(view->pieces, pieces);
  ASSERT_EQ(view->bytes.size(), 30u);
  EXPECT_EQ(view->bytes[29], 29);
  // Every cut of the block is refused, and so is a byte too many.
  for (size_t n = 0; n < block.size(); ++n)
    EXPECT_FALSE(DecodeEcPieces(std::span(block).first(n)).has_value()) << n;
  block.push_back(0);
  EXPECT_FALSE(DecodeEcPieces(block).has_value());
}

TEST(ReadMessagesTest, EcPiecesThatBreakTheRulesAreRefused) {
  using P = std::vector<EcPiece>;
  const std::vector<std::pair<const char*, P>> bad = {
      {"none", {}},
      {"empty piece", {{0, 0}}},
      {"overlap", {{0, 10}, {5, 10}}},
      {"out of order", {{20, 5}, {0, 5}}},
      {"past the record", {{35, 10}}},
      {"offset past the record", {{41, 1}}},
      {"wraps around", {{8, ~uint64_t{0}}}},
  };
  for (const auto& [what, pieces] : bad) {
    EXPECT_FALSE(EncodeEcPiecesHead(40, pieces).has_value()) << what;
    // The same table written by hand (the encoder would not): the decoder refuses it too.
    std::vector<uint8_t> block;
    auto put = [&](uint64_t v, int n) {
      for (int i = 0; i < n; ++i)
        block.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    put(40, 8);
    put(pieces.size(), 4);
    uint64_t total = 0;
    for (const EcPiece& p : pieces) {
      put(p.record_offset, 8);
      put(p.size, 8);
      total += std::min<uint64_t>(p.size, 64);
    }
    for (uint64_t i = 0; i < total; ++i)
      block.push_back(0);
    EXPECT_FALSE(DecodeEcPieces(block).has_value()) << what;
  }
  // A count the block cannot hold is refused before anything is sized by it.
  std::vector<uint8_t> huge(kEcPiecesFixedBytes);
  huge[0] = 40;
  huge[8] = 0xff;
  huge[9] = 0xff;
  EXPECT_FALSE(DecodeEcPieces(huge).has_value());
}

TEST(ReadMessagesTest, ReplyHeaderRoundTripsAndRejectsUnknownStatus) {
  std::array<uint8_t, kReadReplyHeaderBytes> buf{};
  ReadReplyHeader h{.status = ReadStatus::kDenied,
                    .needle_version = 3,
                    .request_id = 99,
                    .index = 4095,
                    .volume_id = 0xfffffffe,
                    .generation = 1234567,
                    .length = uint64_t{5} << 30,
                    .needle_size = 777};
  EncodeReadReplyHeader(h, buf);
  auto back = DecodeReadReplyHeader(buf);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->status, ReadStatus::kDenied);
  EXPECT_EQ(back->needle_version, 3);
  EXPECT_EQ(back->request_id, 99u);
  EXPECT_EQ(back->index, 4095u);
  EXPECT_EQ(back->volume_id, 0xfffffffeu);
  EXPECT_EQ(back->generation, 1234567u);
  EXPECT_EQ(back->length, uint64_t{5} << 30);
  EXPECT_EQ(back->needle_size, 777u);
  buf[6] = 200;
  EXPECT_FALSE(DecodeReadReplyHeader(buf).has_value());
  EXPECT_FALSE(DecodeReadReplyHeader({buf.data(), kReadReplyHeaderBytes - 1}).has_value());
  EXPECT_EQ(ReadStatusName(ReadStatus::kUnknownVolume), "unknown_volume");
}

}  // namespace
}  // namespace swrdma
