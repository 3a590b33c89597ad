// The pieces of Go's standard library that decide the volume server's response headers, so the
// agent's HTTP fallback answers with the same ones (issue 15, 9):
//   - mime.TypeByExtension: Go's built-in table, then the system's MIME database as Go loads it
//     on Unix (/usr/local/share/mime/globs2 or /usr/share/mime/globs2; without either,
//     /etc/mime.types and the apache/httpd copies), text types with "; charset=utf-8";
//   - net/http.DetectContentType: the WHATWG sniffing of the first 512 bytes that Go's server
//     applies when a handler sets no Content-Type;
//   - mime.FormatMediaType for Content-Disposition: the filename as a token, quoted with
//     backslash escapes, or RFC 2231 encoded (control bytes, CR/LF and non-ASCII), never raw.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace swrdma::agent {

// ".txt" -> "text/plain; charset=utf-8"; "" when unknown. Exact case first, then lower case.
std::string GoTypeByExtension(std::string_view ext);

// The extension of a file name as Go's filepath.Ext: from the last '.' after the last '/'.
std::string_view GoFileExt(std::string_view name);

// "text/html; charset=utf-8", "image/png", ... "application/octet-stream" when nothing matches.
std::string GoDetectContentType(std::span<const uint8_t> data);

// `inline; filename=a.txt`, `inline; filename="with space.bin"`,
// `attachment; filename*=utf-8''%E2%82%AC.txt`: mime.FormatMediaType(type, {filename}).
std::string GoContentDisposition(std::string_view type, std::string_view filename);

}  // namespace swrdma::agent
