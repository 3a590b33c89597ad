// `swrdma bench`: random verified reads of one volume's live needles, over one-sided RDMA (the
// client library, as `swrdma get` reads) or over the agent's HTTP fallback, with latency
// percentiles and throughput as a summary or one JSON object.
#pragma once

namespace CLI {
class App;
}

namespace swrdma::cli {

void AddBenchCommand(CLI::App& app);

}  // namespace swrdma::cli
