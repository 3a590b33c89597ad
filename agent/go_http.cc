#include "agent/go_http.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace swrdma::agent {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// RFC 2045 tspecials and token characters, as Go's mime/grammar.go defines them.
bool IsTSpecial(unsigned char c) {
  return std::string_view("()<>@,;:\\\"/[]?=").find(static_cast<char>(c)) != std::string_view::npos;
}
bool IsTokenChar(unsigned char c) {
  return c > 0x20 && c < 0x7f && !IsTSpecial(c);
}
bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return IsTokenChar(static_cast<unsigned char>(c));
  });
}

// Go's mime.needsEncoding walks runes: any byte outside ' '..'~' but tab needs RFC 2231 (bytes
// of UTF-8 sequences and invalid bytes alike are >= 0x80).
bool NeedsEncoding(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < ' ' || c > '~') && c != '\t';
  });
}

struct MimeDb {
  std::unordered_map<std::string, std::string> exact, lower;

  // Go's setExtensionType: text/* gets "; charset=utf-8" when it names no charset.
  void Set(const std::string& ext, std::string type, bool keep_first) {
    if (keep_first && exact.contains(ext)) return;
    if (type.starts_with("text/") && type.find(';') == std::string::npos) {
      type = Lower(type) + "; charset=utf-8";
    }
    exact[ext] = type;
    lower[Lower(ext)] = type;
  }

  // Each line "weight:type:glob[:...]"; only "*.ext" globs without wildcards in ext; the file is
  // in weight order, so the first type of an extension is kept (and built-ins are never replaced).
  bool LoadGlobs2(const char* path) {
    std::ifstream in(path);
    if (!in) return false;
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string part; std::getline(ss, part, ':');)
        f.push_back(part);
      if (f.size() < 3 || f[0].empty() || f[2].size() < 3) continue;
      if (f[0][0] == '#' || f[2][0] != '*' || f[2][1] != '.') continue;
      const std::string ext = f[2].substr(1);
      if (ext.find_first_of("?*[") != std::string::npos) continue;
      Set(ext, f[1], /*keep_first=*/true);
    }
    return true;
  }

  // Each line "type ext ext ... [# comment]"; later files and lines override earlier ones.
  void LoadMimeTypes(const char* path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::stringstream ss(line);
      std::vector<std::string> f;
      for (std::string w; ss >> w;)
        f.push_back(w);
      if (f.size() <= 1 || f[0][0] == '#') continue;
      for (size_t i = 1; i < f.size() && f[i][0] != '#'; ++i)
        Set("." + f[i], f[0], /*keep_first=*/false);
    }
  }
};

const MimeDb& Db() {
  static const MimeDb db = [] {
    MimeDb d;
    static constexpr std::pair<const char*, const char*> kBuiltin[] = {
        {".ai", "application/postscript"},
        {".apk", "application/vnd.android.package-archive"},
        {".apng", "image/apng"},
        {".avif", "image/avif"},
        {".bin", "application/octet-stream"},
        {".bmp", "image/bmp"},
        {".com", "application/octet-stream"},
        {".css", "text/css; charset=utf-8"},
        {".csv", "text/csv; charset=utf-8"},
        {".doc", "application/msword"},
        {".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
        {".ehtml", "text/html; charset=utf-8"},
        {".eml", "message/rfc822"},
        {".eps", "application/postscript"},
        {".exe", "application/octet-stream"},
        {".flac", "audio/flac"},
        {".gif", "image/gif"},
        {".gz", "application/gzip"},
        {".htm", "text/html; charset=utf-8"},
        {".html", "text/html; charset=utf-8"},
        {".ico", "image/vnd.microsoft.icon"},
        {".ics", "text/calendar; charset=utf-8"},
        {".jfif", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".jpg", "image/jpeg"},
        {".js", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".m4a", "audio/mp4"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".mp3", "audio/mpeg"},
        {".mp4", "video/mp4"},
        {".oga", "audio/ogg"},
        {".ogg", "audio/ogg"},
        {".ogv", "video/ogg"},
        {".opus", "audio/ogg"},
        {".pdf", "application/pdf"},
        {".pjp", "image/jpeg"},
        {".pjpeg", "image/jpeg"},
        {".png", "image/png"},
        {".ppt", "application/vnd.ms-powerpoint"},
        {".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
        {".ps", "application/postscript"},
        {".rdf", "application/rdf+xml"},
        {".rtf", "application/rtf"},
        {".shtml", "text/html; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".text", "text/plain; charset=utf-8"},
        {".tif", "image/tiff"},
        {".tiff", "image/tiff"},
        {".txt", "text/plain; charset=utf-8"},
        {".vtt", "text/vtt; charset=utf-8"},
        {".wasm", "application/wasm"},
        {".wav", "audio/wav"},
        {".webm", "audio/webm"},
        {".webp", "image/webp"},
        {".xbl", "text/xml; charset=utf-8"},
        {".xbm", "image/x-xbitmap"},
        {".xht", "application/xhtml+xml"},
        {".xhtml", "application/xhtml+xml"},
        {".xls", "application/vnd.ms-excel"},
        {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
        {".xml", "text/xml; charset=utf-8"},
        {".xsl", "text/xml; charset=utf-8"},
        {".zip", "application/zip"},
    };
    for (const auto& [ext, type] : kBuiltin)
      d.Set(ext, type, false);
    // As Go's initMimeUnix: the shared-mime-info database if there is one, else mime.types.
    if (!d.LoadGlobs2("/usr/local/share/mime/globs2") && !d.LoadGlobs2("/usr/share/mime/globs2")) {
      for (const char* f : {"/etc/mime.types", "/etc/apache2/mime.types", "/etc/apache/mime.types",
                            "/etc/httpd/conf/mime.types"})
        d.LoadMimeTypes(f);
    }
    return d;
  }();
  return db;
}

bool IsWs(uint8_t b) {
  return b == '\t' || b == '\n' || b == '\x0c' || b == '\r' || b == ' ';
}

struct Sig {
  std::string_view pat, mask;  // mask empty: exact prefix
  bool skip_ws;
  const char* type;
};

bool Matches(std::span<const uint8_t> d, const Sig& s) {
  if (d.size() < s.pat.size()) return false;
  for (size_t i = 0; i < s.pat.size(); ++i) {
    const auto m = s.mask.empty() ? uint8_t{0xff} : static_cast<uint8_t>(s.mask[i]);
    if ((d[i] & m) != static_cast<uint8_t>(s.pat[i])) return false;
  }
  return true;
}

}  // namespace

std::string GoTypeByExtension(std::string_view ext) {
  const MimeDb& db = Db();
  if (auto it = db.exact.find(std::string(ext)); it != db.exact.end()) return it->second;
  if (auto it = db.lower.find(Lower(ext)); it != db.lower.end()) return it->second;
  return "";
}

std::string_view GoFileExt(std::string_view name) {
  for (size_t i = name.size(); i > 0 && name[i - 1] != '/'; --i) {
    if (name[i - 1] == '.') return name.substr(i - 1);
  }
  return {};
}

std::string GoDetectContentType(std::span<const uint8_t> data) {
  using namespace std::string_view_literals;
  if (data.size() > 512) data = data.first(512);
  size_t ws = 0;
  while (ws < data.size() && IsWs(data[ws]))
    ++ws;
  const auto rest = data.subspan(ws);
  // HTML tags, case-insensitively, after leading whitespace, followed by ' ' or '>'.
  static constexpr std::string_view kHtml[] = {"<!DOCTYPE HTML",
                                               "<HTML",
                                               "<HEAD",
                                               "<SCRIPT",
                                               "<IFRAME",
                                               "<H1",
                                               "<DIV",
                                               "<FONT",
                                               "<TABLE",
                                               "<A",
                                               "<STYLE",
                                               "<TITLE",
                                               "<B",
                                               "<BODY",
                                               "<BR",
                                               "<P",
                                               "<!--"};
  for (std::string_view tag : kHtml) {
    if (rest.size() < tag.size() + 1) continue;
    bool ok = true;
    for (size_t i = 0; i < tag.size() && ok; ++i) {
      uint8_t b = rest[i];
      if (tag[i] >= 'A' && tag[i] <= 'Z') b &= 0xDF;
      ok = b == static_cast<uint8_t>(tag[i]);
    }
    if (ok && (rest[tag.size()] == ' ' || rest[tag.size()] == '>')) {
      return "text/html; charset=utf-8";
    }
  }
  static const Sig kSigs[] = {
      {"<?xml"sv, {}, true, "text/xml; charset=utf-8"},
      {"%PDF-"sv, {}, false, "application/pdf"},
      {"%!PS-Adobe-"sv, {}, false, "application/postscript"},
      {"\xFE\xFF\x00\x00"sv, "\xFF\xFF\x00\x00"sv, false, "text/plain; charset=utf-16be"},
      {"\xFF\xFE\x00\x00"sv, "\xFF\xFF\x00\x00"sv, false, "text/plain; charset=utf-16le"},
      {"\xEF\xBB\xBF\x00"sv, "\xFF\xFF\xFF\x00"sv, false, "text/plain; charset=utf-8"},
      {"\x00\x00\x01\x00"sv, {}, false, "image/x-icon"},
      {"\x00\x00\x02\x00"sv, {}, false, "image/x-icon"},
      {"BM"sv, {}, false, "image/bmp"},
      {"GIF87a"sv, {}, false, "image/gif"},
      {"GIF89a"sv, {}, false, "image/gif"},
      {"RIFF\x00\x00\x00\x00WEBPVP"sv, "\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF"sv,
       false, "image/webp"},
      {"\x89PNG\x0D\x0A\x1A\x0A"sv, {}, false, "image/png"},
      {"\xFF\xD8\xFF"sv, {}, false, "image/jpeg"},
      {"FORM\x00\x00\x00\x00"
       "AIFF"sv,
       "\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF"sv, false, "audio/aiff"},
      {"ID3"sv, {}, false, "audio/mpeg"},
      {"OggS\x00"sv, {}, false, "application/ogg"},
      {"MThd\x00\x00\x00\x06"sv, {}, false, "audio/midi"},
      {"RIFF\x00\x00\x00\x00"
       "AVI "sv,
       "\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF"sv, false, "video/avi"},
      {"RIFF\x00\x00\x00\x00WAVE"sv, "\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF"sv, false,
       "audio/wave"},
  };
  for (const Sig& s : kSigs) {
    if (Matches(s.skip_ws ? rest : data, s)) return s.type;
  }
  // MP4: an ftyp box whose brands include "mp4" (the major brand, or a compatible one).
  if (data.size() >= 12) {
    const uint32_t box =
        (uint32_t{data[0]} << 24) | (uint32_t{data[1]} << 16) | (uint32_t{data[2]} << 8) | data[3];
    if (data.size() >= box && box % 4 == 0 &&
        std::equal(data.begin() + 4, data.begin() + 8, "ftyp")) {
      for (size_t st = 8; st < box; st += 4) {
        if (st != 12 && std::equal(data.begin() + st, data.begin() + st + 3, "mp4")) {
          return "video/mp4";
        }
      }
    }
  }
  static const Sig kLater[] = {
      {"\x1A\x45\xDF\xA3"sv, {}, false, "video/webm"},
      {std::string_view("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0LP",
                        36),
       std::string_view("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                        "\xFF\xFF",
                        36),
       false, "application/vnd.ms-fontobject"},
      {"\x00\x01\x00\x00"sv, {}, false, "font/ttf"},
      {"OTTO"sv, {}, false, "font/otf"},
      {"ttcf"sv, {}, false, "font/collection"},
      {"wOFF"sv, {}, false, "font/woff"},
      {"wOF2"sv, {}, false, "font/woff2"},
      {"\x1F\x8B\x08"sv, {}, false, "application/x-gzip"},
      {"PK\x03\x04"sv, {}, false, "application/zip"},
      {"Rar!\x1A\x07\x00"sv, {}, false, "application/x-rar-compressed"},
      {"Rar!\x1A\x07\x01\x00"sv, {}, false, "application/x-rar-compressed"},
      {"\x00\x61\x73\x6D"sv, {}, false, "application/wasm"},
  };
  for (const Sig& s : kLater) {
    if (Matches(data, s)) return s.type;
  }
  // Text unless a binary control byte follows the leading whitespace.
  for (uint8_t b : rest) {
    if (b <= 0x08 || b == 0x0B || (b >= 0x0E && b <= 0x1A) || (b >= 0x1C && b <= 0x1F)) {
      return "application/octet-stream";
    }
  }
  return "text/plain; charset=utf-8";
}

std::string GoContentDisposition(std::string_view type, std::string_view filename) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = Lower(type);
  out += "; filename";
  if (NeedsEncoding(filename)) {
    out += "*=utf-8''";
    for (char ch : filename) {
      const auto c = static_cast<unsigned char>(ch);
      if (c <= ' ' || c >= 0x7F || c == '*' || c == '\'' || c == '%' || IsTSpecial(c)) {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 0x0F];
      } else {
        out += ch;
      }
    }
    return out;
  }
  out += '=';
  if (IsToken(filename)) return out + std::string(filename);
  out += '"';
  for (char ch : filename) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
  return out;
}

}  // namespace swrdma::agent
