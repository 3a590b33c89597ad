#!/usr/bin/env bash
# End-to-end: hostile HTTP clients against the real swrdma-agent (supervised, as deployed).
#
#   abuse_test.sh AGENT_BINARY CLIENT_BINARY
#
# The agent runs with --max-connections ABUSE_MAX_CONN (default 200) over a small generated volume.
# A python3 client (below) then plays, each step bounded in time:
#   flood      ABUSE_FLOOD (default 1000) idle connections at once: the ones beyond the cap get a
#              503 or are closed at once, at most the cap stay open, a fresh connection still gets
#              an HTTP answer (503 while full; retried while the refusals drain), and the agent
#              closes the idle ones itself within its read timeout (30 s, read_timeout);
#   slowloris  request headers, and separately a body, dripped one byte a second (during the
#              flood): closed within the read timeout too;
#   big body   100 MB POSTed to /v1/lookup, with Content-Length and chunked: 413 (or a close)
#              and the agent's peak RSS (VmHWM) does not grow by anything near it;
#   big header a 16 KiB header field: 431 (or 400 / a close);
#   nesting    100,000-deep msgpack and JSON lookup bodies: 400 naming the nesting;
#   garbage    random bytes, a TLS hello, NULs, a bare LF request: 400 or a close;
#   utf-8      invalid UTF-8 in fids, volume ids and paths answered in JSON: a 4xx whose JSON body
#              parses, never a 500.
# After each step /healthz answers 200 on a fresh connection, the serving child is still the same
# process (no crash and restart), and its open fds and RssAnon come back near the baseline taken
# after a warm-up: fds within ABUSE_FD_SLACK (default 8), RssAnon within ABUSE_RSS_SLACK_KB
# (default 32768: allocator caches keep some of what 1000 sessions used). Prints one JSON line.
set -euo pipefail
# shellcheck source=SCRIPTDIR/e2e_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/e2e_lib.sh"
e2e_self_deadline 420 "$@"
e2e_binaries "$@"
e2e_need python3 pgrep curl
MAX_CONN=${ABUSE_MAX_CONN:-200}
FLOOD=${ABUSE_FLOOD:-1000}
(($(ulimit -n) > FLOOD + 100)) || ulimit -n $((FLOOD + 200)) ||
  e2e_skip "cannot open $FLOOD sockets: ulimit -n is $(ulimit -n)"

e2e_workdir
e2e_mkvolume "$W/volumes" 1 --needles 50 --min 1 --max 8K
read -r FID < <(e2e_fids live m1.tsv)
e2e_serve "$W/volumes" --max-connections "$MAX_CONN"
# The serving child of the supervisor (an unsupervised agent serves itself).
DP=$(e2e_serving_pid)
[[ -n "$DP" ]] || e2e_fail "no agent process under timeout pid $E2E_AGENT_PID"

# How long a fresh connection may take, retries included, to get its answer while the flood is
# drained: 10 s, 20 s in a sanitizer build (an ASan Debug agent on a loaded 2-core machine once
# took longer than 5 s to work through the backlog; the check is that it answers, never hangs).
FRESH_TIMEOUT=${ABUSE_FRESH_TIMEOUT:-10}
if grep -qa __asan_init "$AGENT"; then FRESH_TIMEOUT=${ABUSE_FRESH_TIMEOUT:-20}; fi
e2e_log "abusing the agent (child pid $DP) on port $E2E_AGENT_PORT"
timeout -k 5 300 python3 - "$E2E_AGENT_PORT" "$DP" "$MAX_CONN" "$FLOOD" "$FID" \
  "${ABUSE_FD_SLACK:-8}" "${ABUSE_RSS_SLACK_KB:-32768}" "$FRESH_TIMEOUT" >result.json <<'PY' ||
import json, os, random, select, socket, sys, threading, time

PORT, DP, MAX_CONN, FLOOD = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
FID, FD_SLACK, RSS_SLACK_KB = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
FRESH_TIMEOUT = float(sys.argv[8])
READ_TIMEOUT = 30  # HttpServerOptions::read_timeout, not a flag
ADDR = ("127.0.0.1", PORT)
report = {"test": "abuse", "max_connections": MAX_CONN, "flood": FLOOD, "steps": {}}


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    print(json.dumps(report))
    sys.exit(1)


def log(msg):
    print(f"[abuse {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)


def status_kb(key):
    with open(f"/proc/{DP}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    fail(f"no {key} in /proc/{DP}/status")


def sample():
    try:
        return {"fds": len(os.listdir(f"/proc/{DP}/fd")), "rss_kb": status_kb("VmRSS"),
                "rss_anon_kb": status_kb("RssAnon"), "hwm_kb": status_kb("VmHWM")}
    except FileNotFoundError:
        fail(f"the serving child {DP} is gone (crashed? the supervisor may have restarted it)")


def connect(timeout=5.0):
    s = socket.create_connection(ADDR, timeout=timeout)
    s.settimeout(timeout)
    return s


def read_response(s, limit=1 << 20):
    """Bytes until EOF, the end of one response (Content-Length), a timeout or a reset."""
    data = b""
    try:
        while len(data) < limit:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length" and len(body) >= int(v):
                        return data
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    return data


def status_of(resp):
    parts = resp.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit():
        return int(parts[1])
    return None


def request(raw, timeout=5.0):
    with connect(timeout) as s:
        s.sendall(raw)
        resp = read_response(s)
    return status_of(resp), resp


def healthz():
    code, resp = request(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    return code


def wait_recovered(step, base, settle=15.0):
    """Healthy, same child, fds and RssAnon back near the baseline (polled for `settle` s)."""
    deadline = time.time() + settle
    while True:
        code = healthz()
        now = sample()
        fd_growth = now["fds"] - base["fds"]
        rss_growth = now["rss_anon_kb"] - base["rss_anon_kb"]
        ok = code == 200 and fd_growth <= FD_SLACK and rss_growth <= RSS_SLACK_KB
        if ok or time.time() > deadline:
            break
        time.sleep(0.5)
    report["steps"].setdefault(step, {}).update(
        {"after": now, "fd_growth": fd_growth, "rss_anon_growth_kb": rss_growth,
         "hwm_growth_kb": now["hwm_kb"] - base["hwm_kb"]})
    if code != 200:
        fail(f"{step}: /healthz answered {code} afterwards")
    if fd_growth > FD_SLACK:
        fail(f"{step}: the agent kept {fd_growth} more fds than before (slack {FD_SLACK})")
    if rss_growth > RSS_SLACK_KB:
        fail(f"{step}: the agent's RssAnon grew by {rss_growth} KiB (slack {RSS_SLACK_KB})")
    log(f"{step}: recovered (fds {fd_growth:+d}, RssAnon {rss_growth:+d} KiB)")


# Warm-up: every kind of request once, so lazily built state is in the baseline.
for raw in [b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /v1/volumes HTTP/1.1\r\nHost: a\r\n\r\n",
            f"GET /{FID} HTTP/1.1\r\nHost: a\r\n\r\n".encode(),
            b"POST /v1/lookup HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2"
            b"\r\n\r\n{}",
            b"GARBAGE\r\n\r\n"]:
    request(raw)
time.sleep(1)
BASE = sample()
report["baseline"] = BASE
log(f"baseline {BASE}")

# --- flood + slowloris -----------------------------------------------------------------------
slow, slow_body = {}, {}


def slowloris(head, drip, slow):
    """Sends `head` at once, then `drip` one byte a second until the agent closes."""
    start = time.time()
    sent = 0
    try:
        with connect(5.0) as s:
            if head:
                s.sendall(head)
            for b in drip:
                s.sendall(bytes([b]))
                sent += 1
                r, _, _ = select.select([s], [], [], 1.0)
                if r and not s.recv(4096):
                    break  # closed by the agent
                if time.time() - start > READ_TIMEOUT + 20:
                    break
    except OSError as e:
        slow["error"] = str(e)
    slow.update({"bytes_dripped": sent, "closed_after_s": round(time.time() - start, 1)})


t0 = time.time()
slow_head = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"x" * 100
slow_post = (b"POST /v1/lookup HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
             b"Content-Length: 100\r\n\r\n")
slow_threads = [threading.Thread(target=slowloris, args=(b"", slow_head, slow)),
                threading.Thread(target=slowloris, args=(slow_post, b"{" * 100, slow_body))]
for t in slow_threads:
    t.start()
time.sleep(0.5)  # the dripping connections are admitted first
socks, connect_errors = [], 0
for i in range(FLOOD):
    try:
        socks.append(connect(5.0))
    except OSError:
        connect_errors += 1  # a full backlog: refused by the kernel, also fine
time.sleep(2)
during = sample()
# A fresh connection gets an HTTP answer: 503 while every slot is taken. Beyond the cap the agent
# answers 503 on at most --max-connections more sockets (each held up to linger_timeout, 2 s) and
# drops the rest unanswered, so a client may have to retry once those refusals drain; it must
# get its answer within FRESH_TIMEOUT, never hang.
fresh_deadline = time.time() + FRESH_TIMEOUT
fresh_attempts = 0
while True:
    fresh_attempts += 1
    try:
        code_during, _ = request(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
                                 timeout=max(0.5, fresh_deadline - time.time()))
    except OSError:
        code_during = None  # refused by a full backlog: retry like a client would
    if code_during in (200, 503) or time.time() >= fresh_deadline:
        break
    time.sleep(0.25)
refused_503 = closed = 0
open_socks = []
for s in socks:
    s.setblocking(False)
    try:
        data = s.recv(4096)
        if status_of(data) == 503:
            refused_503 += 1
        else:
            closed += 1  # EOF without an answer: dropped under the flood
    except BlockingIOError:
        open_socks.append(s)
    except OSError:
        closed += 1
log(f"flood: {len(socks)} connected, {refused_503} got 503, {closed} closed, "
    f"{len(open_socks)} left open; fresh /healthz during: {code_during} "
    f"(attempt {fresh_attempts})")
report["steps"]["flood"] = {"connected": len(socks), "connect_errors": connect_errors,
                            "refused_503": refused_503, "closed": closed,
                            "open": len(open_socks), "healthz_during": code_during,
                            "healthz_attempts": fresh_attempts,
                            "during": during}
if len(open_socks) > MAX_CONN:
    fail(f"flood: {len(open_socks)} idle connections held open, more than --max-connections")
if code_during not in (200, 503):
    fail(f"flood: a fresh connection got {code_during} instead of 200/503 in {FRESH_TIMEOUT} s "
         f"({fresh_attempts} attempts)")
# The agent must close the admitted idle connections itself within its read timeout.
deadline = t0 + READ_TIMEOUT + 15
while open_socks and time.time() < deadline:
    r, _, _ = select.select(open_socks, [], [], 1.0)
    for s in r:
        try:
            if s.recv(4096):
                continue
        except OSError:
            pass
        open_socks.remove(s)
        s.close()
report["steps"]["flood"]["still_open_after_timeout"] = len(open_socks)
report["steps"]["flood"]["idle_closed_after_s"] = round(time.time() - t0, 1)
if open_socks:
    fail(f"flood: {len(open_socks)} idle connections still open {READ_TIMEOUT + 15} s later")
for t in slow_threads:
    t.join(READ_TIMEOUT + 30)
for step, got in (("slowloris", slow), ("slow_body", slow_body)):
    report["steps"][step] = dict(got)
    if got.get("closed_after_s", 1e9) > READ_TIMEOUT + 10:
        fail(f"{step}: the dripping connection was not closed in time: {got}")
    if got.get("bytes_dripped", 0) >= 100:
        fail(f"{step}: the agent waited for the whole dripped request: {got}")
    log(f"{step}: closed after {got.get('closed_after_s')} s, {got.get('bytes_dripped')} bytes")
for s in socks:
    s.close()
wait_recovered("flood", BASE)


# --- 100 MB bodies ---------------------------------------------------------------------------
def big_body(chunked):
    total, sent = 100 * 1024 * 1024, 0
    head = b"POST /v1/lookup HTTP/1.1\r\nHost: a\r\nContent-Type: application/msgpack\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else \
        f"Content-Length: {total}\r\n\r\n".encode()
    piece = b"\x00" * 65536
    if chunked:
        piece = b"10000\r\n" + piece + b"\r\n"
    start = time.time()
    with connect(10.0) as s:
        s.sendall(head)
        try:
            while sent < total and time.time() - start < 30:
                s.sendall(piece)
                sent += 65536
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    break  # the agent answered early
        except OSError:
            pass
        resp = read_response(s)
    return status_of(resp), sent, round(time.time() - start, 2)


for chunked in (False, True):
    step = "big_body_chunked" if chunked else "big_body_content_length"
    code, sent, secs = big_body(chunked)
    now = sample()
    report["steps"][step] = {"status": code, "bytes_sent": sent, "seconds": secs,
                             "hwm_growth_kb": now["hwm_kb"] - BASE["hwm_kb"]}
    log(f"{step}: status {code} after {sent >> 20} MiB sent in {secs} s")
    if code not in (413, None):
        fail(f"{step}: answered {code}, expected 413 or a close")
    if now["hwm_kb"] - BASE["hwm_kb"] > 64 * 1024:
        fail(f"{step}: the agent's peak RSS grew by {now['hwm_kb'] - BASE['hwm_kb']} KiB")
    wait_recovered(step, BASE)

# --- a 16 KiB header field ------------------------------------------------------------------
code, _ = request(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 16384 + b"\r\n\r\n")
report["steps"]["big_header"] = {"status": code}
log(f"big_header: status {code}")
if code not in (431, 400, None):
    fail(f"big_header: answered {code}, expected 431 (or 400 / a close)")
wait_recovered("big_header", BASE)

# --- deep nesting ---------------------------------------------------------------------------
for name, ctype, body in [("msgpack", b"application/msgpack", b"\x91" * 100000 + b"\xc0"),
                          ("json", b"application/json", b"[" * 100000 + b"]" * 100000)]:
    step = f"deep_{name}"
    raw = (b"POST /v1/lookup?format=json HTTP/1.1\r\nHost: a\r\nContent-Type: " + ctype +
           f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    code, resp = request(raw, timeout=10.0)
    err = resp.partition(b"\r\n\r\n")[2][:200].decode(errors="replace")
    report["steps"][step] = {"status": code, "error": err}
    log(f"{step}: status {code}: {err}")
    if code != 400 or "nested" not in err:
        fail(f"{step}: expected 400 naming the nesting, got {code}: {err}")
    wait_recovered(step, BASE)


# --- garbage --------------------------------------------------------------------------------
rng = random.Random(42)
garbage = {
    "random_64k": bytes(rng.getrandbits(8) for _ in range(65536)),
    "tls_hello": bytes.fromhex("160301020001") + bytes(rng.getrandbits(8) for _ in range(512)),
    "nuls": b"\x00" * 4096,
    "bare_lf": b"GET /healthz HTTP/1.1\nHost: a\n\n",
    "bad_version": b"GET /healthz HTTP/9.9\r\n\r\n",
    "huge_content_length": b"POST /v1/lookup HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    "bad_chunk": b"POST /v1/lookup HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}
codes = {}
for name, raw in garbage.items():
    code, _ = request(raw)
    codes[name] = code
    if code not in (400, 413, 431, 200, None):
        fail(f"garbage {name}: answered {code}, expected 400 or a close")
report["steps"]["garbage"] = {"status": codes}
log(f"garbage: {codes}")
wait_recovered("garbage", BASE)

# --- invalid UTF-8 echoed into JSON answers (a 500 here is the agent failing, not the client) --
mp_body = b"\x82\xa8protocol\x01\xa4fids\x91\xa4" + b"1,\xff\xfe"
utf8 = {
    "lookup_fid": b"POST /v1/lookup?format=json HTTP/1.1\r\nContent-Type: application/msgpack"
                  b"\r\nContent-Length: %d\r\n\r\n" % len(mp_body) + mp_body,
    "volume_id": b"GET /v1/volumes/\xff?format=json HTTP/1.1\r\n\r\n",
    "endpoint": b"GET /v1/\xff\xfe?format=json HTTP/1.1\r\n\r\n",
    "fallback": b"GET /1,\xff\xfe HTTP/1.1\r\n\r\n",
}
codes = {}
for name, raw in utf8.items():
    code, resp = request(raw)
    codes[name] = code
    body = resp.partition(b"\r\n\r\n")[2]
    if code is None or code >= 500:
        fail(f"invalid UTF-8 in {name}: answered {code}: {body[:200]!r}")
    if b"application/json" in resp.partition(b"\r\n\r\n")[0]:
        try:
            json.loads(body)
        except ValueError:
            fail(f"invalid UTF-8 in {name}: the JSON answer does not parse: {body[:200]!r}")
report["steps"]["invalid_utf8"] = {"status": codes}
log(f"invalid_utf8: {codes}")
wait_recovered("invalid_utf8", BASE)

report["final"] = sample()
print(json.dumps(report))
PY
  {
    cat result.json >&2 2>/dev/null || true
    e2e_fail "the abuse client failed (see above)"
  }
cat result.json
[[ "$(e2e_serving_pid)" == "$DP" ]] ||
  e2e_fail "the serving child was restarted during the test: it crashed"
e2e_sigterm_agent
e2e_log "PASS"
