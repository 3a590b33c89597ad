#!/usr/bin/env python3
"""Writes a corpus into a real SeaweedFS cluster and compares every fid's reads.

  weed_corpus.py write   --master HOST:PORT --filer HOST:PORT --phase N --out corpus.jsonl
  weed_corpus.py delete  --master HOST:PORT --corpus corpus.jsonl
  weed_corpus.py compare --master HOST:PORT --agent HOST:PORT --cli SWRDMA --corpus corpus.jsonl
                         --filer HOST:PORT --report report.txt [--jwt] [--volumes 3,5]
  weed_corpus.py ec-pick --master HOST:PORT --corpus corpus.jsonl --dir VOLUME_DIR
  weed_corpus.py ec-fill --master HOST:PORT --volume HOST:PORT --vid N --out corpus.jsonl
  weed_corpus.py ec-spread --master HOST:PORT --cli SWRDMA --agent-map FILE --corpus corpus.jsonl
                 --volumes 3,5 --report report.txt [--jwt]

`write` appends one JSON line per fid to the corpus: {"fid", "what", ...}. Everything goes
through SeaweedFS's own HTTP APIs (master /dir/assign, volume server POST, filer POST).
`compare` reads every fid three ways -- the volume server's own GET (the reference), the agent's
HTTP fallback, and `swrdma get` (the agent's one-sided read) -- and prints one line per
difference to the report and a JSON summary on stdout. With --jwt, tokens are taken from the
master (/dir/lookup?fileId=FID&read=yes, the Authorization header) as clients do, and reads
without a token are compared too; --volumes limits it to the fids of those volumes (no probes
then but a wrong cookie in each). `ec-pick` chooses the volumes the EC phase of
seaweedfs_test.sh erasure-codes (see pick_ec_volumes); `ec-fill` grows one of them past a row of
shard blocks (see fill_ec_volume). Only the standard library is used.
"""
import argparse
import gzip
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

TIMEOUT = 60


def log(msg):
    print(f"[weed_corpus {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def request(hostport, method, path, body=None, headers=None):
    """(status, headers dict (lower-case names; repeated ones joined by ', '), body bytes).
    Status 0: the server closed the connection without a complete answer (weed aborts a response
    it fails to finish, net/http's ErrAbortHandler)."""
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        try:
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, http.client.IncompleteRead,
                ConnectionResetError):
            return 0, {}, b""
        hdrs = {}
        for k, v in resp.getheaders():
            k = k.lower()
            hdrs[k] = f"{hdrs[k]}, {v}" if k in hdrs else v
        return resp.status, hdrs, data
    finally:
        conn.close()


def ranges_hold(headers, body, full):
    """True when a 206 answer (one range, or multipart/byteranges with its boundary replaced by
    B) holds exactly the bytes `full` (the whole file as the volume server sent it) has there."""
    span = re.compile(rb"bytes (\d+)-(\d+)/(\d+)")
    if not headers.get("content-type", "").startswith("multipart/byteranges"):
        m = span.fullmatch(headers.get("content-range", "").encode())
        return bool(m) and int(m[3]) == len(full) and body == full[int(m[1]):int(m[2]) + 1]
    parts = [p for p in body.split(b"--B") if p not in (b"", b"--", b"--\r\n")]
    for p in parts:
        head, _, data = p.partition(b"\r\n\r\n")
        m = span.search(head)
        if not m or not data.endswith(b"\r\n") or int(m[3]) != len(full):
            return False
        if data[:-2] != full[int(m[1]):int(m[2]) + 1]:
            return False
    return bool(parts)


def get_json(hostport, path, method="GET", body=None, headers=None):
    status, hdrs, data = request(hostport, method, path, body, headers)
    try:
        return status, hdrs, json.loads(data or b"{}")
    except ValueError:
        raise SystemExit(f"{method} {hostport}{path}: HTTP {status}, not JSON: {data[:200]!r}")


def multipart(data, filename, mime, part_headers=None):
    boundary = "swrdmaBoundary%016x" % random.getrandbits(64)
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
    if mime:
        head += f"Content-Type: {mime}\r\n"
    for k, v in (part_headers or {}).items():
        head += f"{k}: {v}\r\n"
    body = head.encode() + b"\r\n" + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Writer:
    def __init__(self, master, filer, phase, out):
        self.master, self.filer, self.phase = master, filer, phase
        self.out = open(out, "a")
        self.rng = random.Random(1000 + phase)
        self.count = 0

    def record(self, fid, what, **extra):
        self.out.write(json.dumps({"fid": fid, "what": f"p{self.phase} {what}", **extra}) + "\n")
        self.out.flush()
        self.count += 1

    def assign(self, count=1, ttl=""):
        q = f"/dir/assign?count={count}" + (f"&ttl={ttl}" if ttl else "")
        status, _, a = get_json(self.master, q)
        if status != 200 or "fid" not in a:
            raise SystemExit(f"master /dir/assign answered {status}: {a}")
        return a["fid"], a["url"]

    def upload(self, url, fid, data, filename="", mime="", headers=None, part_headers=None,
               query="", raw_body=False):
        hdrs = dict(headers or {})
        if raw_body:
            body = data
            if mime:
                hdrs["Content-Type"] = mime
        else:
            body, ctype = multipart(data, filename, mime, part_headers)
            hdrs["Content-Type"] = ctype
        status, _, reply = request(url, "POST", f"/{fid}{query}", body, hdrs)
        if status not in (200, 201):
            raise SystemExit(f"upload of {fid} to {url} answered {status}: {reply[:200]!r}")
        return json.loads(reply or b"{}")

    def put(self, what, data, filename="", mime="", count=1, ttl="", **kw):
        fid, url = self.assign(count=count, ttl=ttl)
        self.upload(url, fid, data, filename, mime, query=f"?ttl={ttl}" if ttl else "", **kw)
        self.record(fid, what, size=len(data))
        return fid, url

    def text(self, n):
        words = ["seaweed", "needle", "volume", "rdma", "agent", "filer", "chunk", "cookie"]
        out, size = [], 0
        while size < n:
            w = self.rng.choice(words)
            out.append(w)
            size += len(w) + 1
        return " ".join(out).encode()[:n]

    def binary(self, n):
        return self.rng.randbytes(n)

    def write_all(self):
        p = self.phase
        # Sizes from empty to multi-MiB, binary (stored as is) and text (weed gzips it).
        for n in (0, 1, 7, 100, 4096, 65536, 300_000, 1 << 20, 3 * (1 << 20) + 17):
            self.put(f"binary {n} B", self.binary(n), f"blob{n}.bin", "application/octet-stream")
        for n in (1, 50, 2000, 100_000, 2 * (1 << 20)):
            self.put(f"text {n} B", self.text(n), f"notes{n}.txt", "text/plain")
        # Names and mime types; no name; a name that needs quoting in Content-Disposition.
        self.put("jpg by name", self.binary(5000), f"photo{p}.jpg", "image/jpeg")
        self.put("json", self.text(3000), "data.json", "application/json")
        self.put("no mime", self.binary(700), "nomime.dat", "")
        self.put("html by sniffing", b"<html><body>" + self.text(400) + b"</body></html>",
                 "page", "")
        self.put("space in name", self.binary(300), "with space.bin", "application/x-thing")
        self.put("quote in name", self.text(300), 'q\\"uote.txt', "text/plain")
        # Seaweed-* pairs become headers on read.
        fid, url = self.assign()
        self.upload(url, fid, self.binary(1234), "pairs.bin", "application/octet-stream",
                    headers={"Seaweed-Color": "blue", "Seaweed-Owner": f"phase{p}"})
        self.record(fid, "Seaweed-* pairs")
        # TTL: lives in its own TTL volume; expires long after the test.
        self.put("ttl 1d", self.text(5000), "ttl.txt", "text/plain", ttl="1d")
        # A client-compressed upload made of two concatenated gzip members.
        m1, m2 = self.text(20000), self.text(30000)
        two = gzip.compress(m1) + gzip.compress(m2)
        fid, url = self.assign()
        self.upload(url, fid, two, "twomember.txt", "text/plain",
                    part_headers={"Content-Encoding": "gzip"})
        self.record(fid, "two gzip members", size=len(m1) + len(m2))
        # Content-Encoding: gzip on data that is not gzip: stored with the compressed flag.
        fid, url = self.assign()
        self.upload(url, fid, self.binary(2000), "notgzip.bin", "application/octet-stream",
                    part_headers={"Content-Encoding": "gzip"})
        self.record(fid, "compressed flag, not gzip")
        # A non-multipart (raw body) upload.
        fid, url = self.assign()
        self.upload(url, fid, self.binary(999), mime="application/x-raw", raw_body=True)
        self.record(fid, "raw body upload")
        # Overwrite of the same fid: the second write wins on the volume server.
        fid, url = self.assign()
        self.upload(url, fid, self.binary(4000), "first.bin", "application/octet-stream")
        self.upload(url, fid, self.binary(3000), "second.bin", "application/octet-stream")
        self.record(fid, "overwritten")
        # assign count=3: fid, fid_1, fid_2 (the _N forms add N to the needle id).
        fid, url = self.assign(count=3)
        for i in range(3):
            f = fid if i == 0 else f"{fid}_{i}"
            self.upload(url, f, self.binary(600 + i), f"multi{i}.bin", "application/octet-stream")
            self.record(f, f"assign count=3 #{i}")
        self.record(f"{fid}_3", "assign count=3, _3 never written")
        # Legacy chunk manifest (flag 0x80, cm=true) as `weed upload -maxMB` writes it.
        chunks = []
        parts = [self.binary(70_000), self.binary(50_000)]
        offset = 0
        for i, part in enumerate(parts):
            cf, curl = self.assign()
            self.upload(curl, cf, part, f"part{i}", "application/octet-stream")
            self.record(cf, f"chunk {i} of a cm manifest")
            chunks.append({"fid": cf, "offset": offset, "size": len(part)})
            offset += len(part)
        manifest = json.dumps({"name": "big.bin", "mime": "application/octet-stream",
                               "size": offset, "chunks": chunks}).encode()
        fid, url = self.assign()
        self.upload(url, fid, manifest, "big.bin", "application/json", query="?cm=true")
        self.record(fid, "chunk manifest (cm=true)", size=offset)
        # Through the filer: a big file in several chunks, and one grown by 300 small appends,
        # which the filer folds into chunk manifests (filer.SmallChunkManifestBatch = 256).
        big = self.binary(5 * (1 << 20) + 3)
        self.filer_put(f"/corpus{p}/big.bin", big)
        path = f"/corpus{p}/appended.log"
        for i in range(300):
            body, ctype = multipart(self.text(100) + b"\n", "appended.log", "text/plain")
            status, _, reply = request(self.filer, "POST", f"{path}?op=append", body,
                                       {"Content-Type": ctype})
            if status not in (200, 201):
                raise SystemExit(f"filer append {path} answered {status}: {reply[:200]!r}")
        for fpath in (f"/corpus{p}/big.bin", path):
            for chunk in self.filer_chunks(fpath):
                kind = "filer manifest chunk" if chunk.get("is_chunk_manifest") else "filer chunk"
                self.record(chunk["fid"], f"{kind} of {fpath}")
            self.out.write(json.dumps({"filer_path": fpath}) + "\n")
        log(f"phase {p}: wrote {self.count} fids")

    def filer_put(self, path, data):
        body, ctype = multipart(data, os.path.basename(path), "application/octet-stream")
        status, _, reply = request(self.filer, "POST", path + "?maxMB=1", body,
                                   {"Content-Type": ctype})
        if status not in (200, 201):
            raise SystemExit(f"filer upload {path} answered {status}: {reply[:200]!r}")

    def filer_chunks(self, path):
        status, _, meta = get_json(self.filer, path + "?metadata=true",
                                   headers={"Accept": "application/json"})
        if status != 200:
            raise SystemExit(f"filer metadata of {path}: {status} {meta}")
        out = []
        for c in meta.get("chunks") or []:
            fid = c.get("file_id") or "{},{:x}{:08x}".format(
                c["fid"]["volume_id"], int(c["fid"]["file_key"]), int(c["fid"]["cookie"]))
            out.append({"fid": fid, "is_chunk_manifest": c.get("is_chunk_manifest", False)})
        if not out:
            raise SystemExit(f"filer metadata of {path} lists no chunks: {meta}")
        return out


def delete_some(master, corpus):
    """Deletes every 7th binary/text fid of the corpus on its volume server."""
    entries = [json.loads(l) for l in open(corpus)]
    n = 0
    with open(corpus, "a") as out:
        for i, e in enumerate(entries):
            if "fid" not in e or not e["what"].split()[1] in ("binary", "text") or i % 7:
                continue
            url = lookup_url(master, e["fid"])
            status, _, reply = request(url, "DELETE", "/" + e["fid"])
            if status not in (200, 202):
                raise SystemExit(f"DELETE {e['fid']} answered {status}: {reply[:200]!r}")
            out.write(json.dumps({"fid": e["fid"], "what": "deleted " + e["what"]}) + "\n")
            n += 1
    log(f"deleted {n} fids")


def pick_ec_volumes(corpus, vdir):
    """Two volumes to erasure-code: the one with the most live corpus fids among those holding a
    needle larger than 1 MiB (its records then cross the 1 MiB shard blocks), and the one with
    the most live corpus fids among the rest. Only plain volumes of the volume directory (no
    collection, no TTL: weed keeps TTL fids in their own volumes). Prints "VID LIVE_FIDS
    BIGGEST_NEEDLE" lines, the big one first."""
    last = {}
    for line in open(corpus):
        e = json.loads(line)
        if "fid" in e:
            last[e["fid"]] = e
    live, ttl = {}, set()
    for fid, e in last.items():
        vid = int(fid.split(",")[0])
        if "ttl" in e["what"]:
            ttl.add(vid)
        if not e["what"].startswith("deleted") and not e["what"].endswith("never written"):
            live[vid] = live.get(vid, 0) + 1
    cands = []
    for vid, n in live.items():
        dat, idx = os.path.join(vdir, f"{vid}.dat"), os.path.join(vdir, f"{vid}.idx")
        if vid in ttl or not os.path.exists(dat) or not os.path.exists(idx):
            continue
        # .idx: 16-byte entries, key (8), offset (4, in units of 8 bytes), size (4), big-endian;
        # the last entry of a key wins, a tombstone (size 0xffffffff or offset 0) deletes it.
        sizes = {}
        raw = open(idx, "rb").read()
        for i in range(0, len(raw) - len(raw) % 16, 16):
            key, off, size = int.from_bytes(raw[i:i + 8], "big"), \
                int.from_bytes(raw[i + 8:i + 12], "big"), int.from_bytes(raw[i + 12:i + 16], "big")
            if off == 0 or size >= 0x80000000:
                sizes.pop(key, None)
            else:
                sizes[key] = size
        cands.append((vid, n, max(sizes.values(), default=0)))
    big = sorted((c for c in cands if c[2] > (1 << 20)), key=lambda c: (-c[1], c[0]))
    if not big:
        raise SystemExit(f"ec-pick: no volume in {vdir} holds a live corpus fid and a needle "
                         f"larger than 1 MiB (candidates: {cands})")
    rest = sorted((c for c in cands if c[0] != big[0][0] and c[1] > 0), key=lambda c: (-c[1], c[0]))
    if not rest:
        raise SystemExit(f"ec-pick: only one volume in {vdir} holds live corpus fids ({cands})")
    for vid, n, biggest in (big[0], rest[0]):
        print(vid, n, biggest)


def fill_ec_volume(master, volume, vid, out):
    """Writes four needles of 3 MiB + 17 B straight to volume VID (fids with keys 0xec0001..,
    which the master's sequence never reaches soon), so its .dat grows by 12 MiB: past the 10 MiB
    of one row of 1 MiB blocks over 10 data shards, one of them crossing the row boundary. Recorded
    in the corpus like the other fids."""
    w = Writer(master, None, 9, out)
    for i in range(1, 5):
        fid = f"{vid},{0xec0000 + i:x}{0x5eed0000 + i:08x}"
        data = w.binary(3 * (1 << 20) + 17)
        w.upload(volume, fid, data, f"ecfill{i}.bin", "application/octet-stream")
        w.record(fid, f"ec filler {len(data)} B", size=len(data))
    log(f"volume {vid}: wrote {w.count} EC filler needles")


_LOOKUP = {}


def lookup_url(master, fid):
    vid = fid.split(",")[0]
    if vid not in _LOOKUP:
        status, _, j = get_json(master, f"/dir/lookup?volumeId={vid}")
        if status != 200 or not j.get("locations"):
            return None
        _LOOKUP[vid] = j["locations"][0]["url"]
    return _LOOKUP[vid]


def strip_delta(fid):
    """"3,01637037d6_2" -> "3,01637037d6", as weed's maybeCheckJwtAuthorization compares."""
    vid, _, rest = fid.partition(",")
    i = rest.rfind("_")
    return f"{vid},{rest[:i]}" if i > 0 else fid


def read_token(master, fid):
    status, hdrs, _ = request(master, "GET",
                              "/dir/lookup?" + urllib.parse.urlencode({"fileId": fid, "read": "yes"}))
    auth = hdrs.get("authorization", "")
    return auth[7:] if status == 200 and auth.lower().startswith("bearer ") else ""


# Headers the agent's fallback must answer like the volume server (plus every Seaweed-* pair).
COMPARED = ["content-type", "etag", "last-modified", "content-disposition", "content-encoding",
            "content-length", "content-range", "accept-ranges", "x-file-store"]


class Comparer:
    def __init__(self, args):
        self.a = args
        self.report = open(args.report, "w")
        self.mismatched = set()
        self.checks = 0
        # Removed when the comparer goes (also on an exception): it held the CLI's outputs.
        self._tmpdir = tempfile.TemporaryDirectory(prefix="swrdma-cmp.")
        self.tmp = self._tmpdir.name

    def diff(self, fid, what, msg):
        self.mismatched.add(fid.split("?")[0])
        self.report.write(f"{fid}\t{what}\t{msg}\n")
        self.report.flush()

    def compare_http(self, fid, what, vol, hdrs, label, full=None):
        self.checks += 1
        vs, vh, vb = request(vol, "GET", "/" + fid, headers=hdrs)
        if vs == 0:
            vs, vh, vb = request(vol, "GET", "/" + fid, headers=hdrs)  # weed aborted: once more
        as_, ah, ab = request(self.a.agent, "GET", "/" + fid, headers=hdrs)
        # multipart/byteranges boundaries are random: compare with both replaced.
        for h, b in ((vh, vb), (ah, ab)):
            ct = h.get("content-type", "")
            if ct.startswith("multipart/byteranges; boundary="):
                bnd = ct.split("=", 1)[1]
                h["content-type"] = "multipart/byteranges; boundary=B"
                h["content-length"] = str(len(b.replace(bnd.encode(), b"B")))
        if vh.get("content-type") == "multipart/byteranges; boundary=B":
            vb = vb.replace(vb.split(b"\r\n", 1)[0][2:], b"B") if vb.startswith(b"--") else vb
        if ah.get("content-type") == "multipart/byteranges; boundary=B":
            ab = ab.replace(ab.split(b"\r\n", 1)[0][2:], b"B") if ab.startswith(b"--") else ab
        # A response weed aborts (0) is a failed read: any 5xx of the agent says the same.
        # weed 4.x also aborts some range requests of a chunk manifest whose whole file it has just
        # served (seen with the manifest in an EC volume): then the agent's ranges must be exactly
        # those bytes of weed's own whole answer (`full`).
        if vs == 0 and as_ == 206 and full is not None and ranges_hold(ah, ab, full):
            log(f"  {fid}: volume server aborted its {label} answer twice ({what}); the agent's "
                f"ranges equal weed's whole-file answer")
            return vs, vb, vh
        if vs != as_ and not (vs == 0 and as_ >= 500):
            self.diff(fid, what, f"{label}: status volume {vs} agent {as_} "
                      f"(volume body {vb[:100]!r}, agent body {ab[:100]!r})")
            return vs, vb, vh
        if vs in (200, 206) and vb != ab:
            self.diff(fid, what, f"{label}: body differs ({len(vb)} vs {len(ab)} bytes)")
        names = set(COMPARED) | {k for k in list(vh) + list(ah) if k.startswith("seaweed-")}
        if vs not in (200, 206, 304):
            names = set()  # error bodies: the status is what counts
        for k in sorted(names):
            if vh.get(k) != ah.get(k):
                self.diff(fid, what, f"{label}: header {k}: volume {vh.get(k)!r} agent {ah.get(k)!r}")
        return vs, vb, vh

    def run_cli(self, fid, token, *extra):
        out = os.path.join(self.tmp, "get.out")
        if os.path.exists(out):
            os.unlink(out)
        cmd = [self.a.cli, "get", "--agent", self.a.agent, *extra, "-o", out, fid]
        if token:
            cmd[2:2] = ["--jwt", token]
        p = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
        err = p.stderr.decode(errors="replace").strip().replace("\n", " | ")
        got = open(out, "rb").read() if p.returncode == 0 else None
        return p.returncode, got, err

    def compare_cli(self, fid, what, token, want_status, want_body, chunked, vol, auth):
        self.checks += 1
        rc, got, err = self.run_cli(fid, token)
        if chunked:
            # The volume server answers with the file the manifest's chunks make up; the one-sided
            # read has only the manifest needle: swrdma get must refuse it (never return the
            # manifest as the file), and hand out the manifest itself with --raw (= ?cm=false).
            if rc == 0 or "chunk manifest" not in err:
                self.diff(fid, what, f"swrdma get of a chunk manifest: rc {rc}, {err[:200]}")
            self.checks += 1
            # --raw is the data as stored (gzip when stored gzipped), as weed sends ?cm=false
            # to a client accepting gzip.
            _, _, raw = request(vol, "GET", "/" + fid + "?cm=false",
                                headers={**auth, "Accept-Encoding": "gzip"})
            rc, got, err = self.run_cli(fid, token, "--raw")
            if rc != 0 or got != raw:
                self.diff(fid, what, f"swrdma get --raw of a chunk manifest: rc {rc} "
                          f"{err[:200]}, {len(got or b'')} vs {len(raw)} bytes of ?cm=false "
                          "(Accept-Encoding: gzip)")
            return
        if want_status == 200:
            if rc != 0:
                self.diff(fid, what, f"swrdma get failed (rc {rc}) where the volume "
                          f"server answers 200: {err[:300]}")
            elif got != want_body:
                self.diff(fid, what, f"swrdma get bytes differ: {len(got)} vs "
                          f"{len(want_body)} bytes from the volume server")
        elif rc == 0:
            self.diff(fid, what, f"swrdma get succeeded ({len(got)} bytes) where "
                      f"the volume server answers {want_status}")

    def run(self):
        entries = [json.loads(l) for l in open(self.a.corpus)]
        vids = {v.strip() for v in self.a.volumes.split(",")} if self.a.volumes else None
        # The last record of a fid describes it (deleted after written, ...).
        by_fid = {}
        for e in entries:
            if "fid" in e and (vids is None or e["fid"].split(",")[0] in vids):
                by_fid[e["fid"]] = e
        if not by_fid:
            raise SystemExit(f"compare: no fid of the corpus in volumes {self.a.volumes}")
        # Fids weed refuses: a cookie that does not match, an id past 2^64 with _N, garbage.
        some = next(iter(by_fid))
        vid, key = some.split(",")
        probes = {
            f"{vid},{key[:-8]}{(int(key[-8:], 16) ^ 1):08x}": "wrong cookie",
            f"{vid},ffffffffffffffff{key[-8:]}_5": "_N past 2^64",
            f"{vid},{key}_x": "bad _N suffix",
            f"{vid},12": "key too short",
        }
        if vids is not None:
            # One wrong cookie per volume (the volume's own lookup), no other probes.
            probes = {}
            for v in sorted(vids):
                f = next((f for f in by_fid if f.startswith(v + ",")), None)
                if f:
                    k = f.split(",")[1].split("_")[0]
                    probes[f"{v},{k[:-8]}{(int(k[-8:], 16) ^ 1):08x}"] = "wrong cookie"
        for f, w in probes.items():
            by_fid.setdefault(f, {"fid": f, "what": "probe " + w})
        statuses = {}
        for fid, e in by_fid.items():
            what = e["what"]
            vol = lookup_url(self.a.master, fid) or self.a.volume
            # As clients must: the master signs the fileId as asked and the volume server
            # compares it with the fid without "_N", so the token is asked for the base fid.
            token = read_token(self.a.master, strip_delta(fid)) if self.a.jwt else ""
            auth = {"Authorization": "Bearer " + token} if token else {}
            if self.a.jwt and strip_delta(fid) != fid:
                # A token asked for fid_N itself: weed refuses it; so must the agent.
                t_n = read_token(self.a.master, fid)
                self.compare_http(fid, what, vol, {"Authorization": "Bearer " + t_n},
                                  "GET with the token of fid_N as given")
            vs, vb, vh = self.compare_http(fid, what, vol, dict(auth), "GET")
            statuses[vs] = statuses.get(vs, 0) + 1
            if vs != 200:
                log(f"  {fid}: volume server answers {vs} ({what})")
            self.compare_http(fid, what, vol, {**auth, "Accept-Encoding": "gzip"}, "GET gzip")
            full = vb if vs == 200 else None
            self.compare_http(fid, what, vol, {**auth, "Range": "bytes=1-10"}, "GET range",
                              full)
            self.compare_http(fid, what, vol, {**auth, "Range": "bytes=0-1,5-9,-3"},
                              "GET multi-range", full)
            if vs == 200:
                if "last-modified" in vh:
                    self.compare_http(fid, what, vol,
                                      {**auth, "If-Modified-Since": vh["last-modified"]}, "GET ims")
                if "etag" in vh:
                    self.compare_http(fid, what, vol, {**auth, "If-None-Match": vh["etag"]},
                                      "GET inm")
            if self.a.jwt:
                self.compare_http(fid, what, vol, {}, "GET without token")
            self.compare_cli(fid, what, token, vs, vb, vh.get("x-file-store") == "chunked",
                             vol, auth)
            # The manifest needle itself, as weed serves it with ?cm=false.
            if e["what"].endswith("(cm=true)"):
                self.compare_http(fid + "?cm=false", what, vol, dict(auth), "GET ?cm=false")
        log(f"compared {len(by_fid)} fids ({self.checks} checks), volume server statuses "
            f"{dict(sorted(statuses.items()))}; {len(self.mismatched)} fids differ")
        return {"fids": len(by_fid), "mismatches": len(self.mismatched)}


def ec_spread(a):
    """Every live corpus fid of the EC volumes a.volumes, whose shards now lie on several volume
    servers: `swrdma get --master` (the cluster client: the holders' agents, the needle assembled
    from the pieces of several when no one holds it whole) against the volume server's own GET
    (weed reads the other server's shards over gRPC). With tokens (--jwt) every fid must read
    byte-exact; without, a needle across the servers may be refused as the agent without its
    header cannot check its cookie (counted, never a difference), and nothing else."""
    vids = {v.strip() for v in a.volumes.split(",")}
    by_fid = {}
    for line in open(a.corpus):
        e = json.loads(line)
        if "fid" in e and e["fid"].split(",")[0] in vids:
            by_fid[e["fid"]] = e
    out = os.path.join(os.path.dirname(os.path.abspath(a.report)), "ec-spread.out")
    counts = {"fids": 0, "read": 0, "refused_open": 0, "mismatches": 0, "assembled": 0,
              "not_200": 0}
    report = open(a.report, "a")

    def differ(fid, msg):
        counts["mismatches"] += 1
        log(f"  EC spread DIFFERENCE {fid}: {msg}")
        report.write(f"[ec-spread]\t{fid}\t{msg}\n")

    for fid in sorted(by_fid):
        token = read_token(a.master, strip_delta(fid)) if a.jwt else ""
        auth = {"Authorization": "Bearer " + token} if token else {}
        vol = lookup_url(a.master, fid)
        if vol is None:
            differ(fid, "the master knows no server of its volume")
            continue
        vs, vh, vb = request(vol, "GET", "/" + fid, headers=dict(auth))
        if vs != 200 or vh.get("x-file-store") == "chunked":
            counts["not_200"] += 1  # deleted, or a manifest: compare (above) covers those
            continue
        counts["fids"] += 1
        if os.path.exists(out):
            os.unlink(out)
        cmd = [a.cli, "get", "--master", "http://" + a.master, "--agent-map", a.agent_map,
               "-v", "-o", out, fid]
        if a.jwt:
            cmd.insert(2, "--read-tokens")
        p = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
        err = p.stderr.decode(errors="replace").strip().replace("\n", " | ")
        m = re.search(r"(\d+) EC needles assembled", err)
        if p.returncode == 0:
            got = open(out, "rb").read()
            if got != vb:
                differ(fid, f"swrdma get --master bytes differ: {len(got)} vs {len(vb)} from "
                       "the volume server")
                continue
            counts["read"] += 1
            counts["assembled"] += int(m.group(1)) if m else 0
        elif not a.jwt and "without read tokens" in err:
            counts["refused_open"] += 1
        else:
            differ(fid, f"swrdma get --master failed (rc {p.returncode}) where the volume "
                   f"server answers 200: {err[:400]}")
    report.close()
    log(f"EC spread: {counts}")
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["write", "delete", "compare", "ec-pick", "ec-fill",
                                    "ec-spread"])
    ap.add_argument("--master", required=True)
    ap.add_argument("--filer")
    ap.add_argument("--volume")
    ap.add_argument("--agent")
    ap.add_argument("--cli")
    ap.add_argument("--phase", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--corpus")
    ap.add_argument("--report")
    ap.add_argument("--jwt", action="store_true")
    ap.add_argument("--volumes", help="compare: only the fids of these volume ids (3,5)")
    ap.add_argument("--dir", help="ec-pick: the volume server's directory")
    ap.add_argument("--vid", type=int, help="ec-fill: the volume to grow")
    ap.add_argument("--agent-map", help="ec-spread: VOLUME_SERVER AGENT_URL lines")
    a = ap.parse_args()
    if a.cmd == "write":
        Writer(a.master, a.filer, a.phase, a.out).write_all()
    elif a.cmd == "delete":
        delete_some(a.master, a.corpus)
    elif a.cmd == "ec-pick":
        pick_ec_volumes(a.corpus, a.dir)
    elif a.cmd == "ec-fill":
        fill_ec_volume(a.master, a.volume, a.vid, a.out)
    elif a.cmd == "ec-spread":
        print(json.dumps(ec_spread(a)))
    else:
        print(json.dumps(Comparer(a).run()))


if __name__ == "__main__":
    main()
