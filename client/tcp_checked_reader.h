// The client half of checked reads over the agent's TCP read port (agent/tcp_read_server.h): the
// data path to an agent on another host. Same shape as the UCX reader (client/checked_reads.h):
// batches of fids go out as [u32 length][read request]; the agent answers each fid in order
// with [reply header][record or reason], and every record lands in a pool buffer where the read
// path verifies it in place (id, cookie, size, CRC) exactly as after any other read.
//
// Non-blocking: Send queues the request and writes what the socket takes; Poll writes the rest,
// reads whatever has arrived and waits (poll(2)) only when there is nothing to do. A record is
// received straight into its pool buffer (readv: the record's missing bytes, then a small staging
// area for what follows, so a batch of small records costs few system calls); only bytes that
// arrived in the staging area behind another reply are copied once.
//
// The agent is trusted to send the bytes it is asked for, not to be well-formed: every header
// is checked (magic, version, a request we sent, an entry not yet answered, a length that fits
// the needle) and anything else ends the connection with an error; nothing it sends is used as
// a size before that check. After Forget() (a timeout) the connection is closed: late replies
// cannot be mistaken for new ones; the next Send connects again.
//
// Thread: one thread, like the UCX reader. The pool must outlive the reader.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "client/checked_reads.h"
#include "rdma/registration.h"

namespace swrdma::client {

// Pool buffers that no transport reads or writes: the TCP path receives with recv(2). Register
// only records the range; PackKey fails (there is no key to hand anyone).
class PlainRegistrar final : public rdma::Registrar {
 public:
  Result<std::unique_ptr<rdma::Registration>> Register(void* address, size_t length,
                                                       rdma::RegionAccess access) const override;
};

class TcpCheckedReader final : public CheckedReads {
 public:
  // Connects to host:port within `timeout` (name resolution included).
  static Result<std::unique_ptr<TcpCheckedReader>> Connect(std::string host, uint16_t port,
                                                           rdma::BufferPool& pool,
                                                           std::chrono::milliseconds timeout);
  // Over an already connected stream socket (tests, fuzzing); owns `fd` from now on.
  static std::unique_ptr<TcpCheckedReader> Adopt(int fd, rdma::BufferPool& pool);

  // The largest record accepted: a reply header names the record's length before its bytes
  // come, and the buffer is taken (and its pages touched) then, so an agent, or whatever
  // answers on its port, could otherwise make the client map up to 4 GiB per fid at once.
  // A larger record fails the connection with kResourceExhausted naming both sizes.
  static constexpr uint64_t kDefaultMaxRecordBytes = uint64_t{1} << 30;
  void set_max_record_bytes(uint64_t bytes) { max_record_bytes_ = bytes; }
  ~TcpCheckedReader() override;
  TcpCheckedReader(const TcpCheckedReader&) = delete;
  TcpCheckedReader& operator=(const TcpCheckedReader&) = delete;

  Status Send(std::span<const ReadRequestEntry> entries, std::span<const size_t> tags,
              bool ec_pieces) override;
  Status Poll(std::vector<CheckedArrival>& out, rdma::Deadline deadline) override;
  size_t outstanding() const override { return outstanding_; }
  void Forget() override;

  bool connected() const { return fd_ >= 0; }

  // Push over verbs (protocol/read_messages.h PushLanding): every request from now on offers
  // the agent a landing buffer from `landing` (registered REMOTE_WRITE on the verbs connection
  // `nonce` names; both must outlive the reader). A record the agent wrote there is copied into
  // a buffer of the read pool before anything checks it: the landing stays writable by the
  // agent, so bytes that reach the caller must not (and the landing goes back at once).
  void OfferLanding(rdma::BufferPool& landing, const std::array<uint8_t, kPushNonceBytes>& nonce);
  uint64_t landed() const { return landed_; }  // records that arrived through the landing

 private:
  TcpCheckedReader(int fd, rdma::BufferPool& pool) : fd_(fd), pool_(pool) {}
  void Close();
  Status Fail(Status why);  // closes and returns `why`
  Status Flush();           // writes queued request bytes the socket takes now
  // One readv; `progressed` says whether any byte came. Fails on EOF, errors, bad replies.
  Status ReadSome(bool& progressed);
  // Where the next bytes of the stream belong (never empty).
  std::span<uint8_t> Target();
  // `n` bytes were written to Target(): advance the reply state machine.
  Status Advance(size_t n);
  Status StartReply();  // a whole header is in header_

  enum class State { kHeader, kRecord, kReason, kDiscard };

  int fd_ = -1;
  rdma::BufferPool& pool_;
  std::string host_;
  uint16_t port_ = 0;
  std::chrono::milliseconds timeout_{5000};
  uint64_t next_request_id_ = 1;
  struct Asked {
    std::vector<size_t> tags;    // kArrived once answered
    rdma::PooledBuffer landing;  // push: what the request offered
    uint64_t landing_length = 0;
    uint64_t landed_end = 0;  // where the last landed record ended
  };
  std::unordered_map<uint64_t, Asked> asked_;  // by request id
  rdma::BufferPool* landing_pool_ = nullptr;
  std::array<uint8_t, kPushNonceBytes> nonce_{};
  uint64_t largest_record_ = 0;  // sizes the next landing
  uint64_t landed_ = 0;
  // The landing a request of `n` fids offers; none when push is off.
  Result<rdma::PooledBuffer> AcquireLanding(size_t n);
  Status TakeLanded(Asked& asked, const ReadReplyHeader& h);
  size_t outstanding_ = 0;
  std::vector<CheckedArrival> ready_;
  std::vector<uint8_t> out_;  // framed requests not yet written
  size_t out_pos_ = 0;
  // The reply being received.
  State state_ = State::kHeader;
  std::array<uint8_t, kReadReplyHeaderBytes> header_{};
  size_t have_ = 0;  // bytes of the current header / body received
  uint64_t want_ = 0;
  CheckedArrival current_;
  // Bytes read behind the current target, not yet consumed.
  std::vector<uint8_t> staging_;
  uint64_t max_record_bytes_ = kDefaultMaxRecordBytes;
  size_t staged_begin_ = 0, staged_end_ = 0;
};

}  // namespace swrdma::client
