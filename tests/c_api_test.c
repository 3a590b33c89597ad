/* The C API (client/swrdma.h), from C, against libswrdma.so and a real swrdma-agent. Run by
 * tests/e2e/c_api_test.sh, which generates the volumes, starts the agents and fetches the
 * expected bytes over the agent's HTTP fallback (an independent read path).
 *
 *   c_api_test read URL MANIFEST EXPECTED_DIR VERSION TRANSPORTS
 *     every fid of the mkvolume manifest, single, batched and streamed (swrdma_read_each), into
 * exact-size, too-small and zero-size buffers, gzip needles decompressed and raw; error codes of
 * deleted, malformed, absent, unknown-volume and wrong-cookie fids; options, stats, info, version,
 * NULL arguments. c_api_test fallback URL MANIFEST EXPECTED_DIR a client that cannot use UCX
 * (transport "bogus"): SWRDMA_E_NO_DEVICE, and with the HTTP fallback the same bytes, no
 * transports. c_api_test auth URL TOKENS EXPECTED_DIR an agent with read tokens: TOKENS has
 * "fid<TAB>token" lines (tokens minted by the script). Right tokens read, missing or another fid's
 * token give SWRDMA_E_AUTH.
 *
 * Exit status 0 when every check passed, 1 otherwise (each failure is printed). */
#include "tests/c_api_test.h"

static int ReadMode(const char* url, const char* version, const char* transports) {
  OptionsAndStatics(version);
  swrdma_client_t* c = Open(url, transports, SWRDMA_FALLBACK_NONE);
  char names[128];
  size_t len = 0;
  CHECK_STATUS(swrdma_client_transports(c, names, sizeof names, &len), SWRDMA_OK, c);
  CHECK(len == strlen(names) && strstr(names, transports) != NULL, "transports '%s', want %s",
        names, transports);
  CHECK_STATUS(swrdma_client_transports(c, names, len, &len), SWRDMA_E_TOO_SMALL, c);
  ReadEachAlone(c);
  ReadAllBatched(c, 0);
  ReadAllBatched(c, 1);
  ReadStreamed(c);
  Info(c);
  ErrorCodes(c);
  size_t live = 0;
  for (size_t i = 0; i < g_count; ++i)
    live += (size_t)g_needles[i].live;
  Stats(c, live);
  swrdma_client_close(c);
  return g_failures == 0 ? 0 : 1;
}

/* A client with no usable UCX transport and the HTTP fallback: the same bytes, over HTTP. */
static int FallbackMode(const char* url) {
  swrdma_client_options_t o;
  swrdma_client_options_init(&o);
  o.agent_url = url;
  o.transports = "bogus"; /* no such UCX transport, on any host */
  swrdma_client_t* c = NULL;
  CHECK_STATUS(swrdma_client_open(&o, &c), SWRDMA_E_NO_DEVICE, NULL);
  CHECK(c == NULL, "open without fallback succeeded without a transport");
  CHECK(strstr(swrdma_last_error(NULL), "--fallback http") != NULL, "message: %s",
        swrdma_last_error(NULL));
  swrdma_client_t* fc = Open(url, "bogus", SWRDMA_FALLBACK_HTTP);
  char names[64] = "x";
  size_t len = 1;
  CHECK_STATUS(swrdma_client_transports(fc, names, sizeof names, &len), SWRDMA_OK, fc);
  CHECK(len == 0 && names[0] == '\0', "transports over the fallback: '%s'", names);
  size_t checked = 0;
  for (size_t i = 0; i < g_count; ++i) {
    const Needle* n = &g_needles[i];
    unsigned char* buf = malloc(n->size + 1);
    int rc = swrdma_read(fc, n->fid, NULL, 0, buf, n->size, &len);
    if (n->live) {
      CHECK_STATUS(rc, SWRDMA_OK, fc);
      CHECK(rc != SWRDMA_OK || (len == n->size && memcmp(buf, n->expected, n->size) == 0),
            "fallback %s: bytes differ", n->fid);
      ++checked;
    } else {
      CHECK_STATUS(rc, SWRDMA_E_DELETED, fc); /* the lookup says so before any HTTP read */
    }
    free(buf);
  }
  const Needle* gz = Find(1, 1);
  if (gz != NULL) {
    unsigned char* raw = malloc(gz->size + 4096);
    int rc = swrdma_read(fc, gz->fid, NULL, SWRDMA_READ_RAW, raw, gz->size + 4096, &len);
    CHECK_STATUS(rc, SWRDMA_OK, fc);
    CHECK(rc != SWRDMA_OK || (len >= 18 && raw[0] == 0x1f && raw[1] == 0x8b),
          "fallback raw %s is not gzip", gz->fid);
    free(raw);
  }
  ReadStreamed(fc);
  swrdma_stats_t s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  CHECK_STATUS(swrdma_client_stats(fc, &s), SWRDMA_OK, fc);
  CHECK(s.http_fallbacks >= checked && s.reads == 0, "fallback stats: %llu fallbacks, %llu reads",
        (unsigned long long)s.http_fallbacks, (unsigned long long)s.reads);
  fprintf(stderr, "c_api_test: %zu live needles read over the HTTP fallback\n", checked);
  swrdma_client_close(fc);
  return g_failures == 0 ? 0 : 1;
}

/* An agent requiring read tokens. TOKENS: "fid<TAB>token" lines. */
static int AuthMode(const char* url, const char* tokens_file, const char* expected_dir) {
  FILE* f = fopen(tokens_file, "r");
  REQUIRE(f != NULL, "cannot open %s", tokens_file);
  static char fid_text[64][kMaxFid];
  static char token_text[64][1024];
  size_t n = 0;
  while (n < 64 && fscanf(f, "%63s %1023s", fid_text[n], token_text[n]) == 2)
    ++n;
  fclose(f);
  REQUIRE(n >= 2, "fewer than 2 tokens in %s", tokens_file);
  const char* fids[64];
  const char* jwts[64];
  void* bufs[64];
  size_t caps[64], lens[64], sizes[64];
  int statuses[64];
  unsigned char* expected[64];
  for (size_t i = 0; i < n; ++i) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", expected_dir, fid_text[i]);
    expected[i] = ReadFile(path, &sizes[i]);
    REQUIRE(expected[i] != NULL, "no expected bytes at %s", path);
    fids[i] = fid_text[i];
    jwts[i] = token_text[i];
    caps[i] = sizes[i];
    bufs[i] = malloc(sizes[i] + 1);
  }
  swrdma_client_t* c = Open(url, NULL, SWRDMA_FALLBACK_NONE);
  size_t len = 0;
  /* Alone: the right token reads, none or another fid's is refused. */
  int rc = swrdma_read(c, fids[0], jwts[0], 0, bufs[0], caps[0], &len);
  CHECK_STATUS(rc, SWRDMA_OK, c);
  CHECK(rc != SWRDMA_OK || (len == sizes[0] && memcmp(bufs[0], expected[0], len) == 0),
        "auth %s: bytes differ", fids[0]);
  CHECK_STATUS(swrdma_read(c, fids[0], NULL, 0, bufs[0], caps[0], &len), SWRDMA_E_AUTH, c);
  CHECK(strstr(swrdma_last_error(c), "wrong jwt") != NULL, "message: %s", swrdma_last_error(c));
  CHECK_STATUS(swrdma_read(c, fids[0], jwts[1], 0, bufs[0], caps[0], &len), SWRDMA_E_AUTH, c);
  /* Batched with one token per fid: all read; without tokens: all refused. */
  rc = swrdma_read_many(c, n, fids, jwts, 0, bufs, caps, lens, statuses);
  CHECK_STATUS(rc, SWRDMA_OK, c);
  for (size_t i = 0; i < n; ++i) {
    CHECK(statuses[i] == SWRDMA_OK && lens[i] == sizes[i] &&
              memcmp(bufs[i], expected[i], sizes[i]) == 0,
          "auth batch %s: status %d len %zu", fids[i], statuses[i], lens[i]);
  }
  rc = swrdma_read_many(c, n, fids, NULL, 0, bufs, caps, lens, statuses);
  CHECK_STATUS(rc, SWRDMA_E_AUTH, c);
  for (size_t i = 0; i < n; ++i)
    CHECK(statuses[i] == SWRDMA_E_AUTH, "auth batch without tokens %s: %d", fids[i], statuses[i]);
  fprintf(stderr, "c_api_test: %zu fids read with read tokens, refused without\n", n);
  swrdma_client_close(c);
  for (size_t i = 0; i < n; ++i) {
    free(bufs[i]);
    free(expected[i]);
  }
  return g_failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  int rc = 2;
  if (argc == 7 && strcmp(argv[1], "read") == 0) {
    LoadManifest(argv[3], argv[4]);
    rc = ReadMode(argv[2], argv[5], argv[6]);
  } else if (argc == 5 && strcmp(argv[1], "fallback") == 0) {
    LoadManifest(argv[3], argv[4]);
    rc = FallbackMode(argv[2]);
  } else if (argc == 5 && strcmp(argv[1], "auth") == 0) {
    rc = AuthMode(argv[2], argv[3], argv[4]);
  } else {
    fprintf(stderr,
            "usage: %s read URL MANIFEST EXPECTED_DIR VERSION TRANSPORTS\n"
            "       %s fallback URL MANIFEST EXPECTED_DIR\n"
            "       %s auth URL TOKENS EXPECTED_DIR\n",
            argv[0], argv[0], argv[0]);
    return 2;
  }
  for (size_t i = 0; i < g_count; ++i)
    free(g_needles[i].expected);
  fprintf(stderr, "c_api_test %s: %s (%d failed checks)\n", argv[1], rc == 0 ? "PASS" : "FAIL",
          g_failures);
  return rc;
}
