// Recognises the data of a filer chunk-manifest needle: the filer folds a file's many small
// chunks into one needle holding a protobuf filer_pb.FileChunkManifest (weed/filer/
// filechunk_manifest.go, mergeIntoManifest), stored as a plain needle (no 0x80 flag, no name, no
// mime). The entry's chunk has is_chunk_manifest set, but weed mount's RDMA path ignores that
// flag and reads the needle as if it were the file's bytes, so the sidecar refuses such needles
// (the mount then reads the range over HTTP, which resolves the manifest).
#pragma once

#include <cstdint>
#include <span>

namespace swrdma::client {

// True when `data` parses wholly as a FileChunkManifest of at least one chunk, each chunk using
// only FileChunk's fields with their wire types and naming its needle (fid or file_id). Random or
// text data practically never does; a false positive only sends the read over HTTP.
bool LooksLikeFilerChunkManifest(std::span<const uint8_t> data);

}  // namespace swrdma::client
