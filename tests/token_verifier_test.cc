// The read-token verifier (agent/token_verifier.h): the process that holds the read key answers
// the data plane's questions over a socketpair. Here the verifier's loop runs in a thread of the
// test; the real process split is tested end to end (tests/e2e/read_key_isolation_test.sh).
#include "agent/token_verifier.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "agent/read_auth.h"
#include "tests/test_util.h"

namespace swrdma::agent {
namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class TokenVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteKey("first-key"); }
  void TearDown() override {
    remote_.reset();  // closes the data plane's end: the loop sees EOF and returns
    if (server_.joinable()) server_.join();
  }
  void WriteKey(const std::string& key) {
    std::ofstream(tmp_ / "security.toml") << "[jwt.signing.read]\nkey = \"" << key << "\"\n";
  }
  // Starts the verifier loop over a socketpair and connects a RemoteVerifier to it.
  void Start() {
    ReadKeySource source;
    source.security_toml = tmp_ / "security.toml";
    auto auth = ReadAuthorizer::Open(source);
    ASSERT_TRUE(auth.has_value()) << auth.error().ToString();
    auth_ = std::move(*auth);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    server_fd_ = sv[0];
    server_ = std::thread([this] {
      ServeVerdicts(server_fd_, *auth_);
      ::close(server_fd_);
    });
    auto remote = ReadAuthorizer::OpenRemote(sv[1]);
    ASSERT_TRUE(remote.has_value()) << remote.error().ToString();
    remote_ = std::move(*remote);
  }

  testing::TempDir tmp_;
  std::unique_ptr<ReadAuthorizer> auth_;    // the verifier's, with the key
  std::unique_ptr<ReadAuthorizer> remote_;  // the data plane's, without it
  int server_fd_ = -1;
  std::thread server_;
};

TEST_F(TokenVerifierTest, TheDataPlaneChecksTokensWithoutTheKey) {
  Start();
  EXPECT_TRUE(remote_->remote());
  EXPECT_TRUE(remote_->enabled());
  EXPECT_NE(remote_->source().find("security.toml"), std::string::npos) << remote_->source();
  const int64_t exp = Now() + 60;
  EXPECT_TRUE(remote_->Check(SignReadJwt("3,01637037d6", "first-key", exp), "3,01637037d6").ok());
  // The same refusals as with the key in process: wrong key, other fid, expired, garbage.
  EXPECT_EQ(remote_->Check(SignReadJwt("3,01637037d6", "wrong", exp), "3,01637037d6").code(),
            Code::kPermissionDenied);
  EXPECT_EQ(remote_->Check(SignReadJwt("3,02", "first-key", exp), "3,01637037d6").code(),
            Code::kPermissionDenied);
  EXPECT_EQ(
      remote_->Check(SignReadJwt("3,01637037d6", "first-key", Now() - 5), "3,01637037d6").code(),
      Code::kPermissionDenied);
  EXPECT_EQ(remote_->Check("not.a.token", "3,01637037d6").code(), Code::kPermissionDenied);
  EXPECT_EQ(remote_->Check(std::string(100000, 'x'), "3,01637037d6").code(),
            Code::kPermissionDenied)
      << "a token longer than a message is refused, not sent";
  EXPECT_GE(remote_->denied(), 5u);
  // Still answering after all that.
  EXPECT_TRUE(remote_->Check(SignReadJwt("3,03", "first-key", exp), "3,03").ok());
}

TEST_F(TokenVerifierTest, ACachedTokenIsStillRefusedOnceItExpires) {
  Start();
  const std::string token = SignReadJwt("3,01", "first-key", Now() + 2);
  ASSERT_TRUE(remote_->Check(token, "3,01").ok());
  ASSERT_TRUE(remote_->Check(token, "3,01").ok()) << "from the cache";
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_EQ(remote_->Check(token, "3,01").code(), Code::kPermissionDenied);
}

TEST_F(TokenVerifierTest, AReloadReachesTheVerifierAndDropsTheCache) {
  Start();
  const int64_t exp = Now() + 60;
  const std::string old_token = SignReadJwt("3,01", "first-key", exp);
  ASSERT_TRUE(remote_->Check(old_token, "3,01").ok());
  WriteKey("second-key");
  ASSERT_TRUE(remote_->Reload().ok());
  EXPECT_EQ(remote_->Check(old_token, "3,01").code(), Code::kPermissionDenied)
      << "a token cached under the old key must not outlive the reload";
  EXPECT_TRUE(remote_->Check(SignReadJwt("3,01", "second-key", exp), "3,01").ok());
  std::ofstream(tmp_ / "security.toml") << "[jwt.signing.read\nkey = ";
  EXPECT_FALSE(remote_->Reload().ok()) << "a broken file is reported";
  EXPECT_TRUE(remote_->Check(SignReadJwt("3,01", "second-key", exp), "3,01").ok())
      << "and the key in force stays";
  std::ofstream(tmp_ / "security.toml") << "[jwt.signing.read]\nkey = \"\"\n";
  ASSERT_TRUE(remote_->Reload().ok());
  EXPECT_FALSE(remote_->enabled()) << "an empty key turns authorization off, as in weed";
}

TEST_F(TokenVerifierTest, AGoneVerifierFailsClosed) {
  Start();
  const std::string token = SignReadJwt("3,01", "first-key", Now() + 60);
  ::shutdown(server_fd_, SHUT_RDWR);  // the verifier process died
  server_.join();
  EXPECT_EQ(remote_->Check(token, "3,01").code(), Code::kUnavailable)
      << "no verifier, no read: never an open door";
  EXPECT_EQ(remote_->Check(token, "3,01").code(), Code::kUnavailable);
}

TEST_F(TokenVerifierTest, RepliesForAnotherRequestAreIgnored) {
  ReadKeySource source;
  source.security_toml = tmp_ / "security.toml";
  auth_ = std::move(*ReadAuthorizer::Open(source));
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  server_fd_ = sv[0];
  // A stale answer, as a crashed predecessor of the data plane could have left on the socket:
  // "ok" for id 7. It must not be taken for anyone's answer.
  VerifierReply stale;
  stale.op = VerifierOp::kVerify;
  stale.id = 7;
  stale.enabled = true;
  stale.claims.fid = "3,01";
  const auto bytes = EncodeVerifierReply(stale);
  server_ = std::thread([this, bytes] {
    std::vector<uint8_t> buf(kMaxVerifierMessage + 1);
    const ssize_t n = ::recv(server_fd_, buf.data(), buf.size(), 0);  // the hello
    ASSERT_GT(n, 0);
    ::send(server_fd_, bytes.data(), bytes.size(), 0);
    ::send(server_fd_, buf.data(), 3, 0);  // garbage too
    const auto hello = AnswerVerifierRequest({buf.data(), static_cast<size_t>(n)}, *auth_);
    ::send(server_fd_, hello.data(), hello.size(), 0);
    ServeVerdicts(server_fd_, *auth_);
    ::close(server_fd_);
  });
  auto remote = ReadAuthorizer::OpenRemote(sv[1]);
  ASSERT_TRUE(remote.has_value()) << remote.error().ToString();
  remote_ = std::move(*remote);
  EXPECT_EQ(remote_->Check(SignReadJwt("3,01", "wrong", Now() + 60), "3,01").code(),
            Code::kPermissionDenied);
}

TEST(VerifierMessages, RoundTripAndRefuseMalformed) {
  VerifierRequest req{VerifierOp::kVerify, 0x1122334455667788ull, "a.b.c"};
  auto back = DecodeVerifierRequest(EncodeVerifierRequest(req));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, req.id);
  EXPECT_EQ(back->token, "a.b.c");
  VerifierReply reply;
  reply.op = VerifierOp::kVerify;
  reply.id = 9;
  reply.status = VerdictStatus::kRefused;
  reply.enabled = true;
  reply.claims.fid = "3,01";
  reply.claims.exp = -5;
  reply.text = "expired";
  auto r = DecodeVerifierReply(EncodeVerifierReply(reply));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, VerdictStatus::kRefused);
  EXPECT_EQ(r->claims.exp, -5);
  EXPECT_FALSE(r->claims.nbf.has_value());
  EXPECT_EQ(r->text, "expired");

  auto encoded = EncodeVerifierRequest(req);
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    EXPECT_FALSE(DecodeVerifierRequest({encoded.data(), cut}).has_value()) << cut;
  }
  encoded.push_back(0);
  EXPECT_FALSE(DecodeVerifierRequest(encoded).has_value()) << "trailing bytes";
  encoded.pop_back();
  encoded[0] = 9;
  EXPECT_FALSE(DecodeVerifierRequest(encoded).has_value()) << "unknown op";
  std::vector<uint8_t> huge(kMaxVerifierMessage + 1, 1);
  EXPECT_FALSE(DecodeVerifierRequest(huge).has_value());

  // The verifier answers garbage with a bad-request reply and goes on.
  testing::TempDir tmp;
  std::ofstream(tmp / "s.toml") << "[jwt.signing.read]\nkey = \"k\"\n";
  ReadKeySource source;
  source.security_toml = tmp / "s.toml";
  auto auth = ReadAuthorizer::Open(source);
  ASSERT_TRUE(auth.has_value());
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(rng() % 64);
    for (auto& b : junk)
      b = static_cast<uint8_t>(rng());
    auto answer = DecodeVerifierReply(AnswerVerifierRequest(junk, **auth));
    ASSERT_TRUE(answer.has_value());
    if (answer->status == VerdictStatus::kOk) {
      EXPECT_NE(answer->op, VerifierOp::kVerify) << "random bytes never verify as a token";
    }
  }
}

}  // namespace
}  // namespace swrdma::agent
