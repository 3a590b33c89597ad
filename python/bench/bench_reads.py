#!/usr/bin/env python3
"""Reads/s and per-read overhead of the Python package against the C++ client, in one run.

    python bench_reads.py --agent-binary build/agent/swrdma-agent --cli build/client/swrdma
    python bench_reads.py --agent http://host:18515 --cli build/client/swrdma --fids m2.tsv --volume 2

Without --agent it generates a volume (`swrdma mkvolume`, --needles of --size bytes) in a
temporary directory and starts an agent on a loopback port for the run. Then, over the same live
fids (random order, --seed), the same transport and with lookups cached for the whole run:

  cpp.single / cpp.batched   `swrdma bench --json` (C++ Client, zero-copy views), one read at a
                             time, and --sliding windows of --batch reads (ReadEach)
  python.read                Client.read(fid) in a loop
  python.read_many           Client.read_many(batch of --batch fids)
  python.read_into           Client.read_into(fid, preallocated numpy/bytearray buffer)
  python.read_many_into      Client.read_many_into(batch, preallocated buffers)
  python.iter_reads          Client.iter_reads(fids, batch=--batch)

and prints one JSON object: ops/s for each (the best of --rounds interleaved rounds), and
overhead_us_per_read: µs per read that Python adds over the C++ client (1e6/python_ops_per_sec -
1e6/cpp_ops_per_sec) for single and batched reads. That difference is noisy on a loaded machine,
so each Python phase also reports binding_us_per_read: the time per read spent outside the C
API's read calls (measured around them in the extension): the Python call, argument handling and
making the bytes / exception objects. Each phase runs --seconds; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Callable, Dict, List, Optional

import swrdma


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start_agent(binary: str, volume_dir: str, work: str) -> "tuple[subprocess.Popen, str]":
    log_path = os.path.join(work, "agent.log")
    out = open(log_path, "wb")
    proc = subprocess.Popen(
        ["timeout", "-k", "10", "3600", binary, "--dir", volume_dir, "--index-dir",
         os.path.join(work, "index"), "--http", "127.0.0.1:0"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"serving http on .* \(port (\d+)\)", open(log_path, errors="replace").read())
        if m:
            url = f"http://127.0.0.1:{m.group(1)}"
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return proc, url
            except OSError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    sys.exit(f"bench: the agent did not start (log {log_path}): "
             + open(log_path, errors="replace").read()[-2000:])


def cpp_bench(a: argparse.Namespace, url: str, inflight: int, sliding: bool) -> Dict:
    cmd = [a.cli, "bench", "--agent", url, "--volume", str(a.volume), "--fids", a.fids, "--json",
           "--seconds", str(a.seconds), "--inflight", str(inflight), "--seed", str(a.seed),
           "--lookup-ttl-ms", "3600000"]
    if sliding:
        cmd.append("--sliding")
    if a.transports:
        cmd += ["--transports", a.transports]
    log("C++: " + " ".join(cmd[1:]))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds * 3 + 120)
    if r.returncode != 0:
        sys.exit(f"bench: swrdma bench failed ({r.returncode}): {r.stderr[-2000:]}")
    j = json.loads(r.stdout)
    keep = ("ops", "errors", "seconds", "ops_per_sec", "bytes_per_sec", "p50_us", "p99_us",
            "mean_us", "transport", "inflight", "latency_of")
    return {k: j[k] for k in keep if k in j}


def timed(name: str, seconds: float, reads_per_call: int, call: Callable[[int], None],
          client: swrdma.Client) -> Dict:
    """Calls call(i) for i = 0, 1, ... for `seconds` (after a short warm-up). binding_us_per_read:
    the time outside the C API's read calls (Python, the wrapper, making the bytes/results)."""
    for i in range(min(50, max(1, 2000 // reads_per_call))):
        call(i)
    calls = 0
    c_ns0 = client._c.c_time_ns()
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        for _ in range(max(1, 64 // reads_per_call)):
            call(calls)
            calls += 1
        now = time.perf_counter()
    elapsed = now - start
    in_c = (client._c.c_time_ns() - c_ns0) / 1e9
    ops = calls * reads_per_call
    r = {"ops": ops, "seconds": round(elapsed, 3), "ops_per_sec": round(ops / elapsed, 1),
         "us_per_read": round(elapsed / ops * 1e6, 3),
         "binding_us_per_read": round((elapsed - in_c) / ops * 1e6, 3)}
    log(f"python {name}: {r['ops_per_sec']:.0f} reads/s, {r['us_per_read']:.2f} us/read, "
        f"{r['binding_us_per_read']:.3f} us/read outside the C API")
    return r


def python_bench(a: argparse.Namespace, url: str, fids: List[str], sizes: Dict[str, int]) -> Dict:
    n = len(fids)
    b = a.batch
    batches = [[fids[(k * b + j) % n] for j in range(b)] for k in range(max(1, n // b))]
    out: Dict[str, Dict] = {}
    with swrdma.Client(url, transports=a.transports, lookup_cache_ttl=3600.0) as c:
        transport = ",".join(c.transports)
        c.read_many(fids)  # every lookup cached, every buffer registered

        def check(r) -> None:
            if isinstance(r, Exception):
                raise r

        out["read"] = timed("read", a.seconds, 1, lambda i: c.read(fids[i % n]), c)

        def many(i: int) -> None:
            for r in c.read_many(batches[i % len(batches)]):
                check(r)
        out["read_many"] = timed("read_many", a.seconds, b, many, c)

        try:
            import numpy as np
            bufs = {f: np.empty(sizes[f], dtype=np.uint8) for f in fids}
            buffer_kind = "numpy"
        except ImportError:
            bufs = {f: bytearray(sizes[f]) for f in fids}
            buffer_kind = "bytearray"
        out["read_into"] = timed("read_into", a.seconds, 1,
                                 lambda i: c.read_into(fids[i % n], bufs[fids[i % n]]), c)
        out["read_into"]["buffers"] = buffer_kind
        batch_bufs = [[bufs[f] for f in batch] for batch in batches]

        def many_into(i: int) -> None:
            k = i % len(batches)
            for r in c.read_many_into(batches[k], batch_bufs[k]):
                check(r)
        out["read_many_into"] = timed("read_many_into", a.seconds, b, many_into, c)

        def iterate(i: int) -> None:
            for _, r in c.iter_reads(batches[i % len(batches)], batch=b):
                check(r)
        out["iter_reads"] = timed("iter_reads", a.seconds, b, iterate, c)
        out["stats"] = c.stats()
    out["transport"] = transport
    return out


def overhead(py: Dict, cpp: Dict) -> Optional[float]:
    if not py.get("ops_per_sec") or not cpp.get("ops_per_sec"):
        return None
    return round(1e6 / py["ops_per_sec"] - 1e6 / cpp["ops_per_sec"], 3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", help="agent URL (default: start one over a generated volume)")
    p.add_argument("--agent-binary", help="swrdma-agent, to start one (without --agent)")
    p.add_argument("--cli", required=True, help="the swrdma CLI (its bench command, mkvolume)")
    p.add_argument("--fids", help="mkvolume manifest of the volume (with --agent)")
    p.add_argument("--volume", type=int, default=7)
    p.add_argument("--needles", type=int, default=20000)
    p.add_argument("--size", default="4K", help="needle size of the generated volume")
    p.add_argument("--transports", default="tcp", help="UCX transports ('' lets UCX choose)")
    p.add_argument("--batch", type=int, default=64, help="reads per batch (C++ --inflight)")
    p.add_argument("--seconds", type=float, default=3.0, help="per phase")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="best of this many rounds per phase")
    a = p.parse_args()
    a.transports = a.transports or None

    work = tempfile.mkdtemp(prefix="swrdma-pybench-")
    proc = None
    try:
        if a.agent:
            if not a.fids:
                sys.exit("bench: --agent needs --fids (the volume's mkvolume manifest)")
            url = a.agent
        else:
            if not a.agent_binary:
                sys.exit("bench: give --agent URL --fids FILE, or --agent-binary to start one")
            a.fids = os.path.join(work, "fids.tsv")
            log(f"generating volume {a.volume}: {a.needles} needles of {a.size}")
            subprocess.run([a.cli, "mkvolume", "--dir", os.path.join(work, "volumes"), "--vid",
                            str(a.volume), "--needles", str(a.needles), "--size", a.size,
                            "--fids", a.fids, "--seed", str(a.seed)],
                           check=True, stdout=subprocess.DEVNULL, timeout=600)
            proc, url = start_agent(a.agent_binary, os.path.join(work, "volumes"), work)
            log(f"agent on {url}")
        live = []
        sizes = {}
        for line in open(a.fids):
            fid, size, state, _ = line.rstrip("\n").split("\t")
            if state == "live" and fid.startswith(f"{a.volume},"):
                live.append(fid)
                sizes[fid] = int(size)
        if not live:
            sys.exit(f"bench: no live fid of volume {a.volume} in {a.fids}")
        random.Random(a.seed).shuffle(live)

        # Rounds interleave C++ and Python, and each figure is the best round's: on a shared
        # machine, noise only ever slows a phase down.
        cpp: Dict[str, Dict] = {}
        py: Dict[str, Dict] = {}
        for r in range(a.rounds):
            log(f"round {r + 1}/{a.rounds}")
            for key, got in (("single", cpp_bench(a, url, 1, False)),
                             ("batched", cpp_bench(a, url, a.batch, True))):
                if key not in cpp or got["ops_per_sec"] > cpp[key]["ops_per_sec"]:
                    cpp[key] = got
            for key, got in python_bench(a, url, live, sizes).items():
                if key in ("stats", "transport") or key not in py or \
                        got["ops_per_sec"] > py[key]["ops_per_sec"]:
                    py[key] = got
        result = {
            "agent": url,
            "transports": a.transports or "ucx-default",
            "python_transport": py.pop("transport"),
            "fids": len(live),
            "needle_bytes": a.size if not a.agent else "manifest",
            "batch": a.batch,
            "seconds_per_phase": a.seconds,
            "rounds": a.rounds,
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
            "cpp": cpp,
            "python": py,
            "overhead_us_per_read": {
                "single_read": overhead(py["read"], cpp["single"]),
                "single_read_into": overhead(py["read_into"], cpp["single"]),
                "batched_read_many": overhead(py["read_many"], cpp["batched"]),
                "batched_read_many_into": overhead(py["read_many_into"], cpp["batched"]),
                "batched_iter_reads": overhead(py["iter_reads"], cpp["batched"]),
            },
            "binding_us_per_read": {k: v["binding_us_per_read"] for k, v in py.items()
                                    if isinstance(v, dict) and "binding_us_per_read" in v},
            "python_version": sys.version.split()[0],
            "library_version": swrdma.library_version(),
        }
        print(json.dumps(result, indent=2))
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
