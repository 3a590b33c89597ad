// The Go standard library behaviour the agent's HTTP fallback reproduces (agent/go_http.h), so its
// headers are the volume server's (issue 15, 9). Expected values are what Go 1.26 returns.
#include "agent/go_http.h"

#include "agent/http_range.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace swrdma::agent {
namespace {

std::string Sniff(std::string_view s) {
  return GoDetectContentType({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

TEST(GoHttp, ContentDispositionIsFormatMediaType) {
  EXPECT_EQ(GoContentDisposition("inline", "notes.txt"), "inline; filename=notes.txt");
  EXPECT_EQ(GoContentDisposition("attachment", "a.b"), "attachment; filename=a.b");
  EXPECT_EQ(GoContentDisposition("inline", "with space.bin"),
            R"(inline; filename="with space.bin")");
  // A quote or backslash is escaped inside the quoted string; it never ends the header value.
  EXPECT_EQ(GoContentDisposition("inline", R"(q"uote.txt)"), R"(inline; filename="q\"uote.txt")");
  EXPECT_EQ(GoContentDisposition("inline", R"(a\b)"), R"(inline; filename="a\\b")");
  // CR/LF, other control bytes and non-ASCII: RFC 2231, percent-encoded.
  EXPECT_EQ(GoContentDisposition("inline", "a\r\nb.txt"), "inline; filename*=utf-8''a%0D%0Ab.txt");
  EXPECT_EQ(GoContentDisposition("inline", "\xe2\x82\xac 1.txt"),
            "inline; filename*=utf-8''%E2%82%AC%201.txt");
  EXPECT_EQ(GoContentDisposition("inline", "\xff"), "inline; filename*=utf-8''%FF");
}

TEST(GoHttp, TypeByExtensionUsesGosTable) {
  EXPECT_EQ(GoTypeByExtension(".txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(GoTypeByExtension(".TXT"), "text/plain; charset=utf-8");
  EXPECT_EQ(GoTypeByExtension(".jpg"), "image/jpeg");
  EXPECT_EQ(GoTypeByExtension(".json"), "application/json");
  EXPECT_EQ(GoTypeByExtension(".html"), "text/html; charset=utf-8");
  EXPECT_EQ(GoTypeByExtension(".no-such-extension-here"), "");
  EXPECT_EQ(GoFileExt("a/b.c/d"), "");
  EXPECT_EQ(GoFileExt("photo.tar.gz"), ".gz");
  EXPECT_EQ(GoFileExt(".bashrc"), ".bashrc");
  EXPECT_EQ(GoFileExt("noext"), "");
}

TEST(GoHttp, SniffsLikeDetectContentType) {
  EXPECT_EQ(Sniff("hello world"), "text/plain; charset=utf-8");
  EXPECT_EQ(Sniff("  \n<html><body>x</body></html>"), "text/html; charset=utf-8");
  EXPECT_EQ(Sniff("<HtMl>"), "text/html; charset=utf-8");
  EXPECT_EQ(Sniff("<htmlx"), "text/plain; charset=utf-8");  // tag must end with ' ' or '>'
  EXPECT_EQ(Sniff("<?xml version=\"1.0\"?>"), "text/xml; charset=utf-8");
  EXPECT_EQ(Sniff("%PDF-1.4"), "application/pdf");
  EXPECT_EQ(Sniff("\x89PNG\r\n\x1a\n...."), "image/png");
  EXPECT_EQ(Sniff("\xff\xd8\xff\xe0"), "image/jpeg");
  EXPECT_EQ(Sniff("GIF89a"), "image/gif");
  EXPECT_EQ(Sniff(std::string_view("\x1f\x8b\x08\x00", 4)), "application/x-gzip");
  EXPECT_EQ(Sniff(std::string_view("PK\x03\x04", 4)), "application/zip");
  EXPECT_EQ(Sniff(std::string_view("RIFF\x10\x00\x00\x00WEBPVP8 ", 16)), "image/webp");
  EXPECT_EQ(Sniff(std::string_view("RIFF\x10\x00\x00\x00"
                                   "AVI LIST",
                                   16)),
            "video/avi");
  EXPECT_EQ(Sniff(std::string_view("\x00\x00\x00\x18"
                                   "ftypmp42\x00\x00\x00\x00mp42isom",
                                   24)),
            "video/mp4");
  EXPECT_EQ(Sniff(std::string_view("ab\x01", 3)), "application/octet-stream");
  EXPECT_EQ(Sniff(std::string_view("\xef\xbb\xbfhi", 5)), "text/plain; charset=utf-8");
  // Only the first 512 bytes count.
  std::string late(600, 'a');
  late[550] = '\x01';
  EXPECT_EQ(Sniff(late), "text/plain; charset=utf-8");
}

// net/http's parseRange as weed copies it (weed/server/volume_server_handlers_helper.go).
TEST(GoHttp, ParseRangeLikeWeed) {
  auto ranges = [](std::string_view h, uint64_t size) {
    std::string out;
    auto r = GoParseRange(h, size);
    if (!r) return std::string(r.error() == RangeError::kNoOverlap ? "nooverlap" : "invalid");
    for (const auto& x : *r)
      out += std::to_string(x.start) + "+" + std::to_string(x.length) + " ";
    return out;
  };
  EXPECT_EQ(ranges("bytes=0-9", 100), "0+10 ");
  EXPECT_EQ(ranges("bytes=90-", 100), "90+10 ");
  EXPECT_EQ(ranges("bytes=-5", 100), "95+5 ");
  EXPECT_EQ(ranges("bytes=-500", 100), "0+100 ");
  EXPECT_EQ(ranges("bytes=95-200", 100), "95+5 ");
  EXPECT_EQ(ranges("bytes= 0-1 , 5-6,", 100), "0+2 5+2 ");
  EXPECT_EQ(ranges("bytes=100-", 100), "nooverlap");
  EXPECT_EQ(ranges("bytes=100-,0-0", 100), "0+1 ");
  EXPECT_EQ(ranges("bytes=-0", 100), "nooverlap");
  EXPECT_EQ(ranges("bytes=5-1", 100), "invalid");
  EXPECT_EQ(ranges("bytes=x-1", 100), "invalid");
  EXPECT_EQ(ranges("bytes=--1", 100), "invalid");
  EXPECT_EQ(ranges("pages=1-2", 100), "invalid");
  EXPECT_EQ(ranges("bytes=,", 100), "");
  EXPECT_TRUE(IfRangeMatches("", {}));
  EXPECT_TRUE(IfRangeMatches("\"ab\"", {{"ETag", "\"ab\""}}));
  EXPECT_FALSE(IfRangeMatches("\"ab\"", {{"ETag", "\"cd\""}}));
  EXPECT_TRUE(IfRangeMatches("Sat, 05 Dec 2026 05:50:29 GMT",
                             {{"Last-Modified", "Sat, 05 Dec 2026 05:50:29 GMT"}}));
  EXPECT_FALSE(IfRangeMatches("Sat, 05 Dec 2026 05:50:30 GMT",
                              {{"Last-Modified", "Sat, 05 Dec 2026 05:50:29 GMT"}}));
}

}  // namespace
}  // namespace swrdma::agent
