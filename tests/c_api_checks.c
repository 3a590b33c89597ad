/* The checks of the C API test (tests/c_api_test.c runs them per mode): reads single, batched and
 * streamed, error codes, options, info and stats. */
#include "tests/c_api_test.h"

int g_failures = 0;
Needle g_needles[kMaxNeedles];
size_t g_count = 0;

unsigned char* ReadFile(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  unsigned char* buf = malloc(cap);
  for (;;) {
    if (n == cap) buf = realloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n, f);
    if (got == 0) break;
    n += got;
  }
  fclose(f);
  *len = n;
  return buf;
}

/* The mkvolume manifest: "fid<TAB>size<TAB>live|deleted<TAB>gzip|plain". */
void LoadManifest(const char* manifest, const char* expected_dir) {
  FILE* f = fopen(manifest, "r");
  REQUIRE(f != NULL, "cannot open %s", manifest);
  char line[256];
  while (fgets(line, sizeof line, f) != NULL && g_count < kMaxNeedles) {
    Needle* n = &g_needles[g_count];
    char state[16], form[16];
    unsigned long long size;
    if (sscanf(line, "%63s %llu %15s %15s", n->fid, &size, state, form) != 4) continue;
    n->size = (size_t)size;
    n->live = strcmp(state, "live") == 0;
    n->gzip = strcmp(form, "gzip") == 0;
    if (n->live) {
      char path[1024];
      size_t len = 0;
      snprintf(path, sizeof path, "%s/%s", expected_dir, n->fid);
      n->expected = ReadFile(path, &len);
      REQUIRE(n->expected != NULL, "no expected bytes at %s", path);
      REQUIRE(len == n->size, "%s: HTTP fallback gave %zu bytes, manifest says %zu", n->fid, len,
              n->size);
    }
    ++g_count;
  }
  fclose(f);
  REQUIRE(g_count > 0, "empty manifest %s", manifest);
}

const Needle* Find(int live, int gzip) {
  for (size_t i = 0; i < g_count; ++i) {
    if (g_needles[i].live == live && (gzip < 0 || g_needles[i].gzip == gzip)) return &g_needles[i];
  }
  return NULL;
}

swrdma_client_t* Open(const char* url, const char* transports, int fallback) {
  swrdma_client_options_t o;
  swrdma_client_options_init(&o);
  o.agent_url = url;
  o.transports = transports;
  o.fallback = fallback;
  o.timeout_ms = 10000;
  o.max_inflight = 8; /* batches larger than the window slide through it */
  swrdma_client_t* c = NULL;
  int rc = swrdma_client_open(&o, &c);
  REQUIRE(rc == SWRDMA_OK && c != NULL, "open %s: %d %s", url, rc, swrdma_last_error(NULL));
  CHECK(strcmp(swrdma_last_error(NULL), "") == 0, "open succeeded, yet: %s",
        swrdma_last_error(NULL));
  return c;
}

/* Every live needle read alone: exact buffer, too small by one, size query, raw for gzip. */
void ReadEachAlone(swrdma_client_t* c) {
  size_t checked = 0, gzip_raw = 0;
  for (size_t i = 0; i < g_count; ++i) {
    const Needle* n = &g_needles[i];
    if (!n->live) continue;
    unsigned char* buf = malloc(n->size + 1);
    size_t len = 12345;
    int rc = swrdma_read(c, n->fid, NULL, 0, buf, n->size, &len);
    CHECK_STATUS(rc, SWRDMA_OK, c);
    CHECK(len == n->size, "%s: len %zu, want %zu", n->fid, len, n->size);
    CHECK(rc != SWRDMA_OK || memcmp(buf, n->expected, n->size) == 0, "%s: bytes differ", n->fid);
    CHECK(strcmp(swrdma_last_error(c), "") == 0, "%s: read ok, yet: %s", n->fid,
          swrdma_last_error(c));

    /* One byte short: SWRDMA_E_TOO_SMALL, the length needed, and the buffer untouched. */
    if (n->size > 0) {
      memset(buf, 0xA5, n->size + 1);
      len = 0;
      rc = swrdma_read(c, n->fid, NULL, 0, buf, n->size - 1, &len);
      CHECK_STATUS(rc, SWRDMA_E_TOO_SMALL, c);
      CHECK(len == n->size, "%s: too small: len %zu, want %zu", n->fid, len, n->size);
      CHECK(buf[0] == 0xA5 && buf[n->size - 1] == 0xA5, "%s: a too-small buffer was written",
            n->fid);
      CHECK(strstr(swrdma_last_error(c), n->fid) != NULL, "too small: message %s",
            swrdma_last_error(c));
    }
    /* Size query: no buffer at all. */
    len = 0;
    rc = swrdma_read(c, n->fid, NULL, 0, NULL, 0, &len);
    CHECK_STATUS(rc, n->size == 0 ? SWRDMA_OK : SWRDMA_E_TOO_SMALL, c);
    CHECK(len == n->size, "%s: size query: len %zu, want %zu", n->fid, len, n->size);

    /* Raw: gzip needles as stored (a gzip stream, not the data), plain ones unchanged. */
    unsigned char* raw = malloc(n->size + 4096);
    rc = swrdma_read(c, n->fid, NULL, SWRDMA_READ_RAW, raw, n->size + 4096, &len);
    CHECK_STATUS(rc, SWRDMA_OK, c);
    if (rc == SWRDMA_OK && n->gzip) {
      CHECK(len >= 18 && raw[0] == 0x1f && raw[1] == 0x8b, "%s: raw gzip needle is not gzip",
            n->fid);
      ++gzip_raw;
    } else if (rc == SWRDMA_OK) {
      CHECK(len == n->size && memcmp(raw, n->expected, n->size) == 0, "%s: raw plain differs",
            n->fid);
    }
    free(raw);
    free(buf);
    ++checked;
  }
  fprintf(stderr, "c_api_test: %zu live needles read alone (%zu gzip also raw)\n", checked,
          gzip_raw);
  CHECK(checked > 0 && gzip_raw > 0, "the manifest lacks live or gzip needles");
}

/* Every needle (live and deleted) in one batch, plus malformed and unknown-volume fids. */
void ReadAllBatched(swrdma_client_t* c, int too_small) {
  const size_t extra = 2, n = g_count + extra;
  const char** fids = calloc(n, sizeof *fids);
  void** bufs = calloc(n, sizeof *bufs);
  size_t* caps = calloc(n, sizeof *caps);
  size_t* lens = calloc(n, sizeof *lens);
  int* statuses = calloc(n, sizeof *statuses);
  char unknown_volume[kMaxFid];
  const Needle* any = Find(1, -1);
  snprintf(unknown_volume, sizeof unknown_volume, "999%s", strchr(any->fid, ','));
  for (size_t i = 0; i < g_count; ++i) {
    fids[i] = g_needles[i].fid;
    caps[i] = g_needles[i].size > 0 && too_small ? g_needles[i].size / 2 : g_needles[i].size;
    bufs[i] = malloc(g_needles[i].size + 1);
  }
  fids[g_count] = "not-a-fid";
  fids[g_count + 1] = unknown_volume;
  int first_failed = SWRDMA_OK;
  size_t first_index = n;
  int rc = swrdma_read_many(c, n, fids, NULL, 0, bufs, caps, lens, statuses);
  size_t ok = 0;
  for (size_t i = 0; i < g_count; ++i) {
    const Needle* nd = &g_needles[i];
    int want = !nd->live                         ? SWRDMA_E_DELETED
               : too_small && caps[i] < nd->size ? SWRDMA_E_TOO_SMALL
                                                 : SWRDMA_OK;
    CHECK(statuses[i] == want, "batch %s: status %d (%s), want %d", nd->fid, statuses[i],
          swrdma_strerror(statuses[i]), want);
    if (nd->live) {
      CHECK(lens[i] == nd->size, "batch %s: len %zu, want %zu", nd->fid, lens[i], nd->size);
    }
    if (statuses[i] == SWRDMA_OK) {
      CHECK(memcmp(bufs[i], nd->expected, nd->size) == 0, "batch %s: bytes differ", nd->fid);
      ++ok;
    } else if (first_index == n) {
      first_index = i;
      first_failed = statuses[i];
    }
  }
  CHECK_STATUS(statuses[g_count], SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(statuses[g_count + 1], SWRDMA_E_UNKNOWN_VOLUME, c);
  if (first_index == n) {
    first_index = g_count;
    first_failed = statuses[g_count];
  }
  /* The call's status is the first failure's, and the message names that fid. */
  CHECK_STATUS(rc, first_failed, c);
  CHECK(first_index == n || strstr(swrdma_last_error(c), fids[first_index]) != NULL,
        "batch: message %s does not name %s", swrdma_last_error(c), fids[first_index]);
  fprintf(stderr, "c_api_test: batch of %zu%s: %zu read, the rest failed as expected\n", n,
          too_small ? " (half-size buffers)" : "", ok);
  CHECK(too_small || ok > 0, "no read of the batch succeeded");
  for (size_t i = 0; i < g_count; ++i)
    free(bufs[i]);
  free(fids);
  free(bufs);
  free(caps);
  free(lens);
  free(statuses);
}

/* swrdma_read_each: every fid once, in completion order; the data the callback sees is the
 * expected bytes, errors come with a message naming the fid. */
typedef struct {
  size_t calls;
  unsigned char* seen;
  int* statuses;
} EachCtx;

static void OnEach(void* ctx, size_t index, int status, const void* data, size_t len,
                   const char* message) {
  EachCtx* e = ctx;
  ++e->calls;
  if (index >= g_count + 1) {
    CHECK(0, "read_each: index %zu out of range", index);
    return;
  }
  CHECK(!e->seen[index], "read_each: index %zu handed out twice", index);
  e->seen[index] = 1;
  e->statuses[index] = status;
  if (index == g_count) return; /* the malformed fid */
  const Needle* nd = &g_needles[index];
  if (status == SWRDMA_OK) {
    CHECK(nd->live && len == nd->size && (len == 0 || memcmp(data, nd->expected, len) == 0),
          "read_each %s: %zu bytes differ from the expected %zu", nd->fid, len, nd->size);
  } else {
    CHECK(data == NULL && len == 0 && strstr(message, nd->fid) != NULL,
          "read_each %s: error %d without NULL data or a message naming it (%s)", nd->fid, status,
          message);
  }
}

void ReadStreamed(swrdma_client_t* c) {
  const size_t n = g_count + 1;
  const char** fids = calloc(n, sizeof *fids);
  EachCtx e = {0, calloc(n, 1), calloc(n, sizeof(int))};
  for (size_t i = 0; i < g_count; ++i)
    fids[i] = g_needles[i].fid;
  fids[g_count] = "not-a-fid";
  const int rc = swrdma_read_each(c, n, fids, NULL, 0, OnEach, &e);
  CHECK(e.calls == n, "read_each: %zu callbacks for %zu fids", e.calls, n);
  int first = SWRDMA_OK;
  for (size_t i = 0; i < g_count; ++i) {
    const int want = g_needles[i].live ? SWRDMA_OK : SWRDMA_E_DELETED;
    CHECK(e.statuses[i] == want, "read_each %s: status %d, want %d", g_needles[i].fid,
          e.statuses[i], want);
    if (first == SWRDMA_OK) first = e.statuses[i];
  }
  CHECK_STATUS(e.statuses[g_count], SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(rc, first != SWRDMA_OK ? first : SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(swrdma_read_each(c, 1, fids, NULL, 0, NULL, NULL), SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(swrdma_read_each(c, 0, NULL, NULL, 0, NULL, NULL), SWRDMA_OK, c);
  fprintf(stderr, "c_api_test: read_each of %zu fids: every one once, bytes as expected\n", n);
  free(fids);
  free(e.seen);
  free(e.statuses);
}

/* swrdma_client_info: JSON naming the agent's volumes; too small a buffer says how much. */
void Info(swrdma_client_t* c) {
  char buf[1 << 14];
  size_t len = 0;
  CHECK_STATUS(swrdma_client_info(c, buf, sizeof buf, &len), SWRDMA_OK, c);
  CHECK(len == strlen(buf) && buf[0] == '{' && strstr(buf, "\"volumes\":[{") != NULL &&
            strstr(buf, "\"agent_version\"") != NULL,
        "info: %s", buf);
  size_t need = 0;
  CHECK_STATUS(swrdma_client_info(c, buf, 4, &need), SWRDMA_E_TOO_SMALL, c);
  CHECK(need == len, "info: too-small says %zu, want %zu", need, len);
  CHECK_STATUS(swrdma_client_info(c, NULL, 0, NULL), SWRDMA_E_INVALID_ARGUMENT, c);
}

void ErrorCodes(swrdma_client_t* c) {
  unsigned char buf[64];
  size_t len = 7;
  const Needle* deleted = Find(0, -1);
  REQUIRE(deleted != NULL, "the manifest has no deleted needle");
  int rc = swrdma_read(c, deleted->fid, NULL, 0, buf, sizeof buf, &len);
  CHECK_STATUS(rc, SWRDMA_E_DELETED, c);
  CHECK(len == 0, "deleted: len %zu", len);
  CHECK(strstr(swrdma_last_error(c), deleted->fid) != NULL, "deleted: message %s",
        swrdma_last_error(c));

  rc = swrdma_read(c, "3,zz", NULL, 0, buf, sizeof buf, &len);
  CHECK_STATUS(rc, SWRDMA_E_INVALID_ARGUMENT, c);

  const Needle* live = Find(1, -1);
  char fid[kMaxFid];
  snprintf(fid, sizeof fid, "999%s", strchr(live->fid, ','));
  rc = swrdma_read(c, fid, NULL, 0, buf, sizeof buf, &len);
  CHECK_STATUS(rc, SWRDMA_E_UNKNOWN_VOLUME, c);

  /* A needle id the volume never had (mkvolume numbers them from 1). */
  snprintf(fid, sizeof fid, "%.*s,fedcba987612345678", (int)(strchr(live->fid, ',') - live->fid),
           live->fid);
  rc = swrdma_read(c, fid, NULL, 0, buf, sizeof buf, &len);
  CHECK_STATUS(rc, SWRDMA_E_NOT_FOUND, c);

  /* The right needle with a wrong cookie: not found, as the volume server says (404). */
  snprintf(fid, sizeof fid, "%s", live->fid);
  char* last = &fid[strlen(fid) - 1];
  *last = *last == '0' ? '1' : '0';
  rc = swrdma_read(c, fid, NULL, 0, buf, sizeof buf, &len);
  CHECK_STATUS(rc, SWRDMA_E_NOT_FOUND, c);
  CHECK(strstr(swrdma_last_error(c), "cookie") != NULL, "wrong cookie: message %s",
        swrdma_last_error(c));

  /* NULL arguments. */
  CHECK_STATUS(swrdma_read(c, NULL, NULL, 0, buf, sizeof buf, &len), SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(swrdma_read(c, live->fid, NULL, 0, NULL, 8, &len), SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(swrdma_read(c, live->fid, NULL, 0, buf, sizeof buf, NULL), SWRDMA_E_INVALID_ARGUMENT,
               c);
  CHECK_STATUS(swrdma_read(NULL, live->fid, NULL, 0, buf, sizeof buf, &len),
               SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(swrdma_read_many(c, 1, NULL, NULL, 0, NULL, NULL, NULL, NULL),
               SWRDMA_E_INVALID_ARGUMENT, c);
  CHECK_STATUS(swrdma_read_many(c, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL), SWRDMA_OK, c);
}

void OptionsAndStatics(const char* version) {
  CHECK(strcmp(swrdma_version(), version) == 0, "version %s, want %s", swrdma_version(), version);
  CHECK(strcmp(swrdma_strerror(SWRDMA_OK), "ok") == 0, "%s", swrdma_strerror(SWRDMA_OK));
  CHECK(strcmp(swrdma_strerror(SWRDMA_E_DELETED), "deleted") == 0, "%s",
        swrdma_strerror(SWRDMA_E_DELETED));
  CHECK(strcmp(swrdma_strerror(SWRDMA_E_CRC), "checksum_mismatch") == 0, "%s",
        swrdma_strerror(SWRDMA_E_CRC));
  CHECK(strcmp(swrdma_strerror(SWRDMA_E_TOO_SMALL), "too_small") == 0, "%s",
        swrdma_strerror(SWRDMA_E_TOO_SMALL));
  CHECK(strcmp(swrdma_strerror(12345), "unknown") == 0, "%s", swrdma_strerror(12345));
  /* Every code has its own name. */
  for (int a = SWRDMA_OK; a >= SWRDMA_E_TOO_SMALL; --a) {
    CHECK(strcmp(swrdma_strerror(a), "unknown") != 0, "code %d has no name", a);
    for (int b = a - 1; b >= SWRDMA_E_TOO_SMALL; --b)
      CHECK(strcmp(swrdma_strerror(a), swrdma_strerror(b)) != 0, "codes %d and %d share a name", a,
            b);
  }

  swrdma_client_options_t o;
  swrdma_client_options_init(&o);
  CHECK(o.struct_size == sizeof o && o.timeout_ms == 5000 && o.max_inflight == 64 &&
            o.fallback == SWRDMA_FALLBACK_NONE && o.agent_url == NULL,
        "defaults: struct_size %zu timeout %u inflight %u", o.struct_size, o.timeout_ms,
        o.max_inflight);
  swrdma_client_t* c = (swrdma_client_t*)&o; /* must be overwritten with NULL */
  o.struct_size = 0;
  CHECK_STATUS(swrdma_client_open(&o, &c), SWRDMA_E_INVALID_ARGUMENT, NULL);
  CHECK(c == NULL, "a failed open left *out set");
  CHECK(strstr(swrdma_last_error(NULL), "struct_size") != NULL, "message: %s",
        swrdma_last_error(NULL));
  swrdma_client_options_init(&o);
  o.timeout_ms = 0;
  CHECK_STATUS(swrdma_client_open(&o, &c), SWRDMA_E_INVALID_ARGUMENT, NULL);
  CHECK_STATUS(swrdma_client_open(NULL, NULL), SWRDMA_E_INVALID_ARGUMENT, NULL);
  /* Nobody listens on port 1: unavailable, and the message says where. */
  swrdma_client_options_init(&o);
  o.agent_url = "http://127.0.0.1:1";
  o.timeout_ms = 2000;
  CHECK_STATUS(swrdma_client_open(&o, &c), SWRDMA_E_UNAVAILABLE, NULL);
  CHECK(c == NULL, "a failed open left *out set");
  CHECK(strstr(swrdma_last_error(NULL), "127.0.0.1") != NULL, "message: %s",
        swrdma_last_error(NULL));
  swrdma_client_close(NULL); /* ignored */
}

void Stats(swrdma_client_t* c, uint64_t min_reads) {
  swrdma_stats_t s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  CHECK_STATUS(swrdma_client_stats(c, &s), SWRDMA_OK, c);
  CHECK(s.struct_size == sizeof s, "struct_size changed to %zu", s.struct_size);
  /* Checked reads (the agent sends every record it resolves): no lookup round trips. */
  CHECK(s.reads >= min_reads && s.bytes > 0 && s.lookups == 0 && s.reg_cache_hits > 0,
        "stats: reads %llu bytes %llu lookups %llu reg hits %llu", (unsigned long long)s.reads,
        (unsigned long long)s.bytes, (unsigned long long)s.lookups,
        (unsigned long long)s.reg_cache_hits);
  CHECK(s.buffers_out == 0, "%llu registered buffers still out", (unsigned long long)s.buffers_out);
  /* An older, shorter struct: fields past its struct_size are not written. */
  swrdma_stats_t old;
  memset(&old, 0xEE, sizeof old);
  old.struct_size = offsetof(swrdma_stats_t, bytes);
  CHECK_STATUS(swrdma_client_stats(c, &old), SWRDMA_OK, c);
  CHECK(old.reads == s.reads, "short struct: reads %llu, want %llu", (unsigned long long)old.reads,
        (unsigned long long)s.reads);
  CHECK(old.bytes == 0xEEEEEEEEEEEEEEEEull, "short struct: a field past struct_size was written");
  old.struct_size = 0;
  CHECK_STATUS(swrdma_client_stats(c, &old), SWRDMA_E_INVALID_ARGUMENT, c);
}
