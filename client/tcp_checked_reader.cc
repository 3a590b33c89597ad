#include "client/tcp_checked_reader.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "rdma/verbs/memory_region.h"

namespace swrdma::client {
namespace {

constexpr size_t kArrived = std::numeric_limits<size_t>::max();
constexpr size_t kStagingBytes = size_t{64} << 10;
constexpr size_t kMaxReasonBytes = size_t{64} << 10;
// A record is the needle (its size as the index has it) plus header, checksum, timestamp and
// padding: a few dozen bytes. More is a reply that lies about its length.
constexpr uint64_t kRecordSlack = 4096;
// Before sleeping in poll(2), look again for this long: a reply on a fast network often comes
// within it, and waking from poll costs more than the look.
constexpr auto kSpin = std::chrono::microseconds(50);

class PlainRegistration final : public rdma::Registration {
 public:
  PlainRegistration() : Registration(nullptr) {}
  Result<std::vector<uint8_t>> PackKey() const override {
    return Error(Code::kInvalidArgument, "plain memory has no remote key");
  }
};

Status Errno(std::string_view what, int err) {
  return Status(Code::kUnavailable, fmt::format("{}: {}", what, std::strerror(err)));
}

Result<int> ConnectWithin(const std::string& host, uint16_t port,
                          std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list); rc != 0) {
    return Error(Code::kUnavailable, fmt::format("resolving {} for checked reads over tcp: {}",
                                                 host, gai_strerror(rc)));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Status last(Code::kUnavailable, "no address");
  for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = Errno("socket", errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
      int err = 0;
      socklen_t len = sizeof(err);
      if (rc == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        rc = 0;
      } else {
        errno = rc == 0 ? ETIMEDOUT : (err != 0 ? err : errno);
        rc = -1;
      }
    }
    if (rc == 0) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      ::freeaddrinfo(list);
      return fd;
    }
    last = Errno(fmt::format("connecting to {}:{} for checked reads over tcp", host, port), errno);
    ::close(fd);
  }
  ::freeaddrinfo(list);
  return Error(std::move(last));
}

}  // namespace

Result<std::unique_ptr<rdma::Registration>> PlainRegistrar::Register(
    void* /*address*/, size_t /*length*/, rdma::RegionAccess /*access*/) const {
  return std::unique_ptr<rdma::Registration>(new PlainRegistration());
}

Result<std::unique_ptr<TcpCheckedReader>> TcpCheckedReader::Connect(
    std::string host, uint16_t port, rdma::BufferPool& pool, std::chrono::milliseconds timeout) {
  SWRDMA_ASSIGN_OR_RETURN(int fd, ConnectWithin(host, port, timeout));
  std::unique_ptr<TcpCheckedReader> r(new TcpCheckedReader(fd, pool));
  r->host_ = std::move(host);
  r->port_ = port;
  r->timeout_ = timeout;
  return r;
}

std::unique_ptr<TcpCheckedReader> TcpCheckedReader::Adopt(int fd, rdma::BufferPool& pool) {
  return std::unique_ptr<TcpCheckedReader>(new TcpCheckedReader(fd, pool));
}

TcpCheckedReader::~TcpCheckedReader() {
  Close();
}

void TcpCheckedReader::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  asked_.clear();
  outstanding_ = 0;
  out_.clear();
  out_pos_ = 0;
  state_ = State::kHeader;
  have_ = 0;
  current_ = CheckedArrival{};
  staged_begin_ = staged_end_ = 0;
}

Status TcpCheckedReader::Fail(Status why) {
  // Every fid still asked for gets its own arrival with the error: a round that goes on
  // sending (another batch) must not wait for, or forget, replies this connection took along.
  if (state_ != State::kHeader) {
    current_.record = {};
    current_.error = why;
    ready_.push_back(std::move(current_));
  }
  for (auto& [id, asked] : asked_) {
    for (size_t tag : asked.tags) {
      if (tag == kArrived) continue;
      CheckedArrival a;
      a.tag = tag;
      a.error = why;
      ready_.push_back(std::move(a));
    }
  }
  Close();
  return why;
}

void TcpCheckedReader::Forget() {
  // Replies to what we forget may still be on their way: a new connection cannot mix them up.
  Close();
  ready_.clear();
}

Status TcpCheckedReader::Send(std::span<const ReadRequestEntry> entries,
                              std::span<const size_t> tags, bool ec_pieces) {
  if (entries.size() != tags.size()) {
    return Status(Code::kInvalidArgument, "checked read: one tag per entry");
  }
  if (fd_ < 0) {
    if (host_.empty()) return Status(Code::kUnavailable, "the checked-read connection is closed");
    SWRDMA_ASSIGN_OR_RETURN(fd_, ConnectWithin(host_, port_, timeout_));
  }
  ReadRequest request;
  request.request_id = next_request_id_++;
  request.entries.assign(entries.begin(), entries.end());
  request.ec_pieces = ec_pieces;
  Asked asked;
  asked.tags.assign(tags.begin(), tags.end());
  if (landing_pool_ != nullptr) {
    SWRDMA_ASSIGN_OR_RETURN(asked.landing, AcquireLanding(entries.size()));
    SWRDMA_ASSIGN_OR_RETURN(rdma::RemoteRegion region, asked.landing.Describe());
    PushLanding p;
    p.nonce = nonce_;
    p.address = asked.landing.address();
    SWRDMA_ASSIGN_OR_RETURN(p.rkey, rdma::verbs::UnpackRkey(region));
    p.length = asked.landing.size();
    asked.landing_length = p.length;
    request.push = p;
  }
  SWRDMA_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeReadRequest(request));
  const auto n = static_cast<uint32_t>(bytes.size());
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  for (int i = 0; i < 4; ++i)
    out_.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  asked_.emplace(request.request_id, std::move(asked));
  outstanding_ += tags.size();
  return Flush();
}

Status TcpCheckedReader::Flush() {
  while (out_pos_ < out_.size()) {
    const ssize_t n =
        ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Ok();  // Poll goes on
      return Fail(Errno("sending a checked read request", errno));
    }
    out_pos_ += static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::span<uint8_t> TcpCheckedReader::Target() {
  switch (state_) {
    case State::kHeader:
      return std::span<uint8_t>(header_).subspan(have_);
    case State::kRecord:
      return {reinterpret_cast<uint8_t*>(current_.record.data()) + have_,
              static_cast<size_t>(want_ - have_)};
    case State::kReason:
      return {reinterpret_cast<uint8_t*>(current_.reason.data()) + have_,
              static_cast<size_t>(want_ - have_)};
    case State::kDiscard:
      break;
  }
  // A body we have no buffer for goes through the staging area and is dropped.
  staging_.resize(kStagingBytes);
  return {staging_.data(), static_cast<size_t>(std::min<uint64_t>(want_ - have_, kStagingBytes))};
}

Status TcpCheckedReader::StartReply() {
  auto h = DecodeReadReplyHeader(header_);
  if (!h) return Status(Code::kCorruption, h.error().message() + " (over tcp)");
  auto it = asked_.find(h->request_id);
  if (it == asked_.end() || h->index >= it->second.tags.size() ||
      it->second.tags[h->index] == kArrived) {
    return Status(Code::kCorruption,
                  fmt::format("checked read over tcp: a reply to request {} entry {} that was not "
                              "asked for or was answered already",
                              h->request_id, h->index));
  }
  const bool ok = h->status == ReadStatus::kOk;
  // EC pieces: parts of the record (at most all of it) behind a table of at most kMaxEcPieces.
  const uint64_t table = h->pieces ? kEcPiecesFixedBytes + kMaxEcPieces * kEcPieceEntryBytes : 0;
  if ((ok && h->length > uint64_t{h->needle_size} + kRecordSlack + table) ||
      (!ok && h->length > kMaxReasonBytes)) {
    return Status(Code::kCorruption,
                  fmt::format("checked read over tcp: a reply of {} bytes for a needle of {}",
                              h->length, h->needle_size));
  }
  if (ok && h->length > max_record_bytes_) {
    return Status(Code::kResourceExhausted,
                  fmt::format("checked read over tcp: the agent announced a record of {} bytes, "
                              "more than this client takes ({})",
                              h->length, max_record_bytes_));
  }
  if (ok) largest_record_ = std::max(largest_record_, h->length);
  current_ = CheckedArrival{};
  current_.tag = std::exchange(it->second.tags[h->index], kArrived);
  current_.header = *h;
  if (h->landed) {
    // No bytes follow on the stream: the record is in the landing already.
    if (Status s = TakeLanded(it->second, *h); !s.ok()) {
      // This fid's answer is the error (Fail answers the others and closes).
      current_.error = s;
      --outstanding_;
      ready_.push_back(std::move(current_));
      current_ = CheckedArrival{};
      return s;
    }
  }
  if (std::all_of(it->second.tags.begin(), it->second.tags.end(),
                  [](size_t t) { return t == kArrived; })) {
    asked_.erase(it);  // gives the landing back
  }
  if (h->landed) {
    --outstanding_;
    ready_.push_back(std::move(current_));
    current_ = CheckedArrival{};
    have_ = 0;
    return Status::Ok();  // state_ stays kHeader
  }
  have_ = 0;
  want_ = h->length;
  if (ok) {
    auto buffer = pool_.Acquire(std::max<size_t>(static_cast<size_t>(want_), 1));
    if (buffer) {
      current_.record = std::move(*buffer);
      state_ = State::kRecord;
    } else {
      current_.error = buffer.error().WithContext("a buffer for a checked read reply");
      state_ = State::kDiscard;
    }
  } else {
    current_.reason.resize(static_cast<size_t>(want_));
    state_ = State::kReason;
  }
  if (want_ == 0) return Advance(0);
  return Status::Ok();
}

void TcpCheckedReader::OfferLanding(rdma::BufferPool& landing,
                                    const std::array<uint8_t, kPushNonceBytes>& nonce) {
  landing_pool_ = &landing;
  nonce_ = nonce;
}

Result<rdma::PooledBuffer> TcpCheckedReader::AcquireLanding(size_t n) {
  // Room for n records as large as the largest seen so far (64 KiB at first), within limits
  // (256 KiB to 16 MiB: a window of 64 one-fid requests holds at most 16 MiB of landing until
  // a record of over 256 KiB was seen): a record that does not fit comes inline and sizes the
  // next landings.
  constexpr uint64_t kMinPerRecord = uint64_t{64} << 10, kMinLanding = uint64_t{256} << 10;
  constexpr uint64_t kMaxLanding = uint64_t{16} << 20;
  const uint64_t per = NextLandingOffset(std::max(kMinPerRecord, largest_record_));
  const uint64_t want = std::clamp<uint64_t>(per * n, kMinLanding, std::max(kMaxLanding, per));
  auto b = landing_pool_->Acquire(static_cast<size_t>(std::min(want, max_record_bytes_ + 64)));
  if (!b) return Error(b.error().WithContext("a landing buffer for push"));
  return std::move(*b);
}

Status TcpCheckedReader::TakeLanded(Asked& asked, const ReadReplyHeader& h) {
  // The agent says where nothing else: the offset follows from the landed records before it.
  const uint64_t offset = NextLandingOffset(asked.landed_end);
  if (!asked.landing || h.length == 0 || offset + h.length > asked.landing_length) {
    return Status(Code::kCorruption,
                  fmt::format("checked read over tcp: a record of {} bytes landed at offset {} "
                              "of a landing of {} bytes{}",
                              h.length, offset, asked.landing_length,
                              asked.landing ? "" : " (the request offered none)"));
  }
  asked.landed_end = offset + h.length;
  auto buffer = pool_.Acquire(static_cast<size_t>(h.length));
  if (!buffer) {
    current_.error = buffer.error().WithContext("a buffer for a pushed record");
    return Status::Ok();
  }
  // Copied out before any check: the agent can write the landing as long as it is registered.
  std::memcpy(buffer->data(), asked.landing.data() + offset, static_cast<size_t>(h.length));
  current_.record = std::move(*buffer);
  ++landed_;
  return Status::Ok();
}

Status TcpCheckedReader::Advance(size_t n) {
  have_ += n;
  if (state_ == State::kHeader) {
    if (have_ < header_.size()) return Status::Ok();
    have_ = 0;
    return StartReply();
  }
  if (have_ < want_) return Status::Ok();
  --outstanding_;  // only now: a reply still being received is outstanding
  ready_.push_back(std::move(current_));
  current_ = CheckedArrival{};
  state_ = State::kHeader;
  have_ = 0;
  want_ = 0;
  return Status::Ok();
}

Status TcpCheckedReader::ReadSome(bool& progressed) {
  progressed = false;
  // What an earlier read left in the staging area comes first.
  while (staged_begin_ < staged_end_) {
    std::span<uint8_t> t = Target();
    const size_t n = std::min(t.size(), staged_end_ - staged_begin_);
    if (state_ != State::kDiscard) std::memcpy(t.data(), staging_.data() + staged_begin_, n);
    staged_begin_ += n;
    progressed = true;
    if (Status s = Advance(n); !s.ok()) return Fail(s);
  }
  staged_begin_ = staged_end_ = 0;
  if (progressed) return Status::Ok();
  std::span<uint8_t> t = Target();
  if (state_ == State::kDiscard) t = {};  // the staging area is the target: read into it only
  staging_.resize(kStagingBytes);
  iovec iov[2] = {{t.data(), t.size()}, {staging_.data(), staging_.size()}};
  const int count = t.empty() ? 1 : 2;
  iovec* first = t.empty() ? &iov[1] : &iov[0];
  ssize_t got;
  do {
    got = ::readv(fd_, first, count);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Ok();
    return Fail(Errno("receiving checked read replies over tcp", errno));
  }
  if (got == 0) {
    return Fail(Status(Code::kUnavailable,
                       fmt::format("the agent closed the checked-read connection with {} replies "
                                   "outstanding",
                                   outstanding_)));
  }
  progressed = true;
  const size_t into_target = std::min(static_cast<size_t>(got), t.size());
  staged_end_ = static_cast<size_t>(got) - into_target;
  if (into_target > 0) {
    if (Status s = Advance(into_target); !s.ok()) return Fail(s);
  }
  return Status::Ok();
}

Status TcpCheckedReader::Poll(std::vector<CheckedArrival>& out, rdma::Deadline deadline) {
  auto spin_until = rdma::Clock::now() + kSpin;
  while (ready_.empty()) {
    if (fd_ < 0) {
      return Status(Code::kUnavailable, "the checked-read connection over tcp is closed");
    }
    SWRDMA_RETURN_IF_ERROR(Flush());
    bool progressed = false;
    SWRDMA_RETURN_IF_ERROR(ReadSome(progressed));
    if (progressed) continue;
    const auto now = rdma::Clock::now();
    if (now >= deadline) {
      return Status(Code::kTimeout,
                    fmt::format("{} checked read replies did not arrive in time", outstanding_));
    }
    if (now < spin_until) continue;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    pollfd p{fd_, static_cast<short>(POLLIN | (out_pos_ < out_.size() ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000))) < 0 &&
        errno != EINTR) {
      return Fail(Errno("waiting for checked read replies over tcp", errno));
    }
    spin_until = rdma::Clock::now() + kSpin;
  }
  for (auto& a : ready_)
    out.push_back(std::move(a));
  ready_.clear();
  return Status::Ok();
}

}  // namespace swrdma::client
