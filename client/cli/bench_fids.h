// Where `swrdma bench` gets the fids it reads: a random sample of live needles from the agent
// (GET /v1/volumes/<vid>/sample), or the live lines of a manifest file.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/agent_http.h"
#include "protocol/status.h"

namespace swrdma::cli {

// Up to `count` distinct random live fids of the volume, drawn by the agent with `seed`.
// kNotFound when the agent does not export the volume; an agent without the endpoint is named as
// such (use a manifest then).
Result<std::vector<std::string>> SampleLiveFids(const client::HttpUrl& agent, uint32_t volume_id,
                                                size_t count, uint64_t seed,
                                                std::chrono::milliseconds timeout);

// The live fids of volume `volume_id` in a `swrdma mkvolume --fids` manifest (fid, size,
// live|deleted, gzip|plain; tab-separated) or a plain list with one fid a line; other volumes'
// fids, blank lines and lines starting with '#' are skipped. kInvalidArgument naming the line for
// an unparsable fid.
Result<std::vector<std::string>> LoadFidManifest(std::string_view path, uint32_t volume_id);

}  // namespace swrdma::cli
