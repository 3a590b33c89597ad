/* Shared by the C API test's two files (tests/c_api_test.c: modes and main; tests/c_api_checks.c:
 * the checks): plain C, as a binding would write it. */
#ifndef SWRDMA_TESTS_C_API_TEST_H_
#define SWRDMA_TESTS_C_API_TEST_H_

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/swrdma.h"

extern int g_failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

/* Fatal: the rest of the test makes no sense without it. */
#define REQUIRE(cond, ...)              \
  do {                                  \
    int before_ = g_failures;           \
    CHECK(cond, __VA_ARGS__);           \
    if (g_failures != before_) exit(1); \
  } while (0)

/* Evaluates `got` once: it is usually the call under test. */
#define CHECK_STATUS(got, want, client)                                                     \
  do {                                                                                      \
    const int got_ = (got), want_ = (want);                                                 \
    CHECK(got_ == want_, "status %d (%s), want %d (%s); last error: %s", got_,              \
          swrdma_strerror(got_), want_, swrdma_strerror(want_), swrdma_last_error(client)); \
  } while (0)

enum { kMaxNeedles = 4096, kMaxFid = 64 };

typedef struct {
  char fid[kMaxFid];
  size_t size; /* uncompressed data size (manifest) */
  int live;
  int gzip;
  unsigned char* expected; /* live needles: the HTTP fallback's bytes */
} Needle;

extern Needle g_needles[kMaxNeedles];
extern size_t g_count;

unsigned char* ReadFile(const char* path, size_t* len);
void LoadManifest(const char* manifest, const char* expected_dir);
const Needle* Find(int live, int gzip);
swrdma_client_t* Open(const char* url, const char* transports, int fallback);
void ReadEachAlone(swrdma_client_t* c);
void ReadAllBatched(swrdma_client_t* c, int too_small);
void ReadStreamed(swrdma_client_t* c);
void Info(swrdma_client_t* c);
void ErrorCodes(swrdma_client_t* c);
void OptionsAndStatics(const char* version);
void Stats(swrdma_client_t* c, uint64_t min_reads);

#endif /* SWRDMA_TESTS_C_API_TEST_H_ */
