// Plain-TCP attacks of hostile_peer (issue 13): what a network peer can still send the agent once
// its UCX context offers no tcp. The agent's only TCP ports are then its HTTP port and its TCP
// read port (agent/tcp_read_server.h); these helpers list what the agent listens on and throw
// garbage, lying lengths, a frame shaped like UCT tcp's PUT_REQ and a connection flood at them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hostile {

// TCP ports process `pid` listens on: its socket inodes (/proc/PID/fd) found in LISTEN state in
// /proc/PID/net/tcp and tcp6 (its network namespace).
std::vector<int> ListeningTcpPorts(int pid);

struct TcpOutcome {
  bool connected = false;
  bool closed_by_peer = false;  // the agent closed (EOF or reset) within the timeout
  size_t received = 0;          // bytes the agent sent back before that
};

// Connects to host:port, sends `bytes` (as much as the agent takes), then reads until the agent
// closes the connection or `timeout_ms` passes.
TcpOutcome SendAndDrain(const std::string& host, int port, const std::vector<uint8_t>& bytes,
                        int timeout_ms);

// `count` connections, `parallel` at a time, each sending `bytes` and closing at once; returns
// how many connected.
int Flood(const std::string& host, int port, const std::vector<uint8_t>& bytes, int count,
          int parallel);

// Bytes shaped like what a UCT tcp peer sends (UCX 1.13 src/uct/tcp: an 8-byte magic number,
// then active-message frames of [u8 id][u32 length][payload]), carrying a PUT_REQ-style frame
// (address, length, then the data) that asks to write `data` at `address`. Only its shape
// matters here: the agent has no UCX tcp endpoint that would act on it.
std::vector<uint8_t> UctPutReqShaped(uint64_t address, const std::vector<uint8_t>& data);

}  // namespace hostile
