#include "tcp_attacks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace hostile {
namespace {

using Clock = std::chrono::steady_clock;

int ConnectTo(const std::string& host, int port, int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Little-endian `v` in `bytes` bytes; fields wider than 8 bytes get zeros above it.
void PutLe(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(i < 8 ? static_cast<uint8_t>(v >> (8 * i)) : 0);
}

}  // namespace

std::vector<int> ListeningTcpPorts(int pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(proc + "/fd", ec)) {
    const std::string link = std::filesystem::read_symlink(e.path(), ec).string();
    if (link.starts_with("socket:[")) inodes.insert(link.substr(8, link.size() - 9));
  }
  std::set<int> ports;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // column names
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A" || !inodes.contains(inode)) continue;  // 0A: LISTEN
      ports.insert(std::stoi(local.substr(local.find(':') + 1), nullptr, 16));
    }
  }
  return {ports.begin(), ports.end()};
}

TcpOutcome SendAndDrain(const std::string& host, int port, const std::vector<uint8_t>& bytes,
                        int timeout_ms) {
  TcpOutcome o;
  const int fd = ConnectTo(host, port, timeout_ms);
  if (fd < 0) return o;
  o.connected = true;
  // MSG_NOSIGNAL: the agent may close while we still send (that is the point).
  for (size_t off = 0; off < bytes.size();) {
    const ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (poll(&p, 1, std::max(left, 1)) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      o.received += static_cast<size_t>(n);
      continue;
    }
    if (n == 0 || errno == ECONNRESET || errno == EPIPE) o.closed_by_peer = true;
    break;
  }
  close(fd);
  return o;
}

int Flood(const std::string& host, int port, const std::vector<uint8_t>& bytes, int count,
          int parallel) {
  int connected = 0;
  for (int done = 0; done < count;) {
    std::vector<int> fds;
    for (int i = 0; i < parallel && done < count; ++i, ++done) {
      const int fd = ConnectTo(host, port, 2000);
      if (fd < 0) continue;
      ++connected;
      (void)send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      fds.push_back(fd);
    }
    for (int fd : fds)
      close(fd);
  }
  return connected;
}

std::vector<uint8_t> UctPutReqShaped(uint64_t address, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  PutLe(out, 0xCAFEBABE12345678ull, 8);  // UCT tcp's connection magic number
  // A connection-request-like frame, then the PUT_REQ-style one: [id][length][addr][len][sn].
  out.push_back(0x20);
  PutLe(out, 16, 4);
  PutLe(out, 0, 16);
  out.push_back(0x21);
  PutLe(out, 8 + 8 + 4, 4);
  PutLe(out, address, 8);
  PutLe(out, data.size(), 8);
  PutLe(out, 1, 4);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

}  // namespace hostile
