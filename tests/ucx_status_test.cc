// The one translation of UCX and verbs status codes into swrdma codes.
#include "rdma/ucx/ucx_status.h"

#include <gtest/gtest.h>

namespace swrdma::rdma {
namespace {

TEST(UcxStatusTest, OkIsOk) {
  EXPECT_TRUE(FromUcs(UCS_OK, "anything").ok());
  EXPECT_EQ(UcsCode(UCS_OK), Code::kOk);
}

TEST(UcxStatusTest, MapsTheCodesCallersActOn) {
  struct Case {
    ucs_status_t ucs;
    Code code;
  };
  const Case cases[] = {
      {UCS_ERR_UNREACHABLE, Code::kRdmaTransport},
      {UCS_ERR_CONNECTION_RESET, Code::kRdmaTransport},
      {UCS_ERR_ENDPOINT_TIMEOUT, Code::kRdmaTransport},  // peer gone, not a slow operation
      {UCS_ERR_IO_ERROR, Code::kRdmaTransport},
      {UCS_ERR_NO_DEVICE, Code::kRdmaNoDevice},
      {UCS_ERR_REJECTED, Code::kRdmaRemoteAccess},
      {UCS_ERR_TIMED_OUT, Code::kTimeout},
      {UCS_ERR_CANCELED, Code::kCancelled},
      {UCS_ERR_NO_MEMORY, Code::kResourceExhausted},
      {UCS_ERR_NO_RESOURCE, Code::kResourceExhausted},
      {UCS_ERR_EXCEEDS_LIMIT, Code::kResourceExhausted},
      {UCS_ERR_INVALID_PARAM, Code::kInvalidArgument},
      {UCS_ERR_INVALID_ADDR, Code::kInvalidArgument},
      {UCS_ERR_UNSUPPORTED, Code::kUnsupported},
      {UCS_ERR_NOT_IMPLEMENTED, Code::kUnsupported},
      {UCS_ERR_BUSY, Code::kUnavailable},
      {UCS_INPROGRESS, Code::kInternal},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(UcsCode(c.ucs), c.code) << UcsStatusName(c.ucs);
    EXPECT_EQ(FromUcs(c.ucs, "x").code(), c.code) << UcsStatusName(c.ucs);
  }
}

TEST(UcxStatusTest, LinkAndEndpointFailureRangesAreTransportErrors) {
  EXPECT_EQ(UcsCode(static_cast<ucs_status_t>(UCS_ERR_FIRST_LINK_FAILURE)), Code::kRdmaTransport);
  EXPECT_EQ(UcsCode(static_cast<ucs_status_t>(UCS_ERR_LAST_ENDPOINT_FAILURE)),
            Code::kRdmaTransport);
  EXPECT_EQ(UcsCode(static_cast<ucs_status_t>(-99)), Code::kInternal);
}

TEST(UcxStatusTest, MessageSaysWhatFailedAndUcxsWords) {
  Status s = FromUcs(UCS_ERR_UNREACHABLE, "connecting to 10.0.0.1");
  EXPECT_EQ(s.code(), Code::kRdmaTransport);
  EXPECT_NE(s.message().find("connecting to 10.0.0.1: "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(ucs_status_string(UCS_ERR_UNREACHABLE)), std::string::npos);
  EXPECT_NE(s.message().find("UCS_ERR_UNREACHABLE"), std::string::npos);
}

TEST(UcxStatusTest, UnknownStatusKeepsItsNumber) {
  Status s = FromUcs(static_cast<ucs_status_t>(-42), "doing x");
  EXPECT_NE(s.message().find("-42"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace swrdma::rdma
