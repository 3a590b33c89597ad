"""`python -m swrdma`: the read commands of the `swrdma` CLI, from Python.

    python -m swrdma get [--agent URL | --master URL] [-o FILE|DIR] [--raw] [--jwt T] FID...
    python -m swrdma info [--agent URL | --master URL] [--json]

Same options and output as `swrdma get` / `swrdma info`: one fid's data goes to stdout (or FILE),
several go into DIR/<fid>; errors name the fid and go to stderr; exit status 1 when a read
failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional

import swrdma


def _common(p: argparse.ArgumentParser, tokens: bool) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--agent", default="http://127.0.0.1:18515",
                       help="Agent URL (http://HOST:PORT) [%(default)s]")
    where.add_argument("--master", help="SeaweedFS master URL(s) (http://HOST:9333[,...]): find "
                       "each volume's replicas there and read from their agents")
    p.add_argument("--agent-port", type=int, default=0,
                   help="With --master: the agents' port on each volume server host [18515]")
    p.add_argument("--agent-map", help="With --master: file of 'VOLUME_SERVER_HOST:PORT "
                   "AGENT_URL' lines overriding host + --agent-port")
    if tokens:
        p.add_argument("--read-tokens", action="store_true",
                       help="With --master: ask the master for a read token per fid")
    p.add_argument("--transports", help="UCX transports of the client (UCX_TLS), e.g. tcp")
    p.add_argument("--fallback", choices=["none", "http"], default="none",
                   help="Read over the agent's HTTP GET when UCX cannot connect [%(default)s]")
    p.add_argument("--timeout-ms", type=int, default=5000,
                   help="Timeout of each request, milliseconds [%(default)s]")


def _client(a: argparse.Namespace) -> swrdma.Client:
    return swrdma.Client(
        None if a.master else a.agent, master=a.master, transports=a.transports,
        timeout=a.timeout_ms / 1000.0, fallback_http=a.fallback == "http",
        agent_port=a.agent_port, agent_map=a.agent_map,
        read_tokens=getattr(a, "read_tokens", False))


def _get(a: argparse.Namespace) -> int:
    jwts: Optional[List[Optional[str]]] = None
    if a.jwt:
        if len(a.jwt) not in (1, len(a.fid)):
            print(f"swrdma: error: give one --jwt for all fids or one per fid ({len(a.fid)})",
                  file=sys.stderr)
            return 2
        jwts = a.jwt * len(a.fid) if len(a.jwt) == 1 else a.jwt
    elif os.environ.get("SWRDMA_JWT"):
        jwts = [os.environ["SWRDMA_JWT"]] * len(a.fid)
    start = time.perf_counter()
    with _client(a) as c:
        results = c.read_many(a.fid, jwts=jwts, raw=a.raw)
        transports = ",".join(c.transports) or ("http" if not a.master else "via master")
    elapsed = time.perf_counter() - start
    failed = 0
    total = 0
    if len(a.fid) > 1 and a.output:
        os.makedirs(a.output, exist_ok=True)
    for fid, r in zip(a.fid, results):
        if isinstance(r, swrdma.Error):
            print(f"swrdma: error: {r}", file=sys.stderr)
            failed += 1
            continue
        total += len(r)
        if a.output:
            path = os.path.join(a.output, fid) if len(a.fid) > 1 else a.output
            with open(path, "wb") as f:
                f.write(r)
        else:
            sys.stdout.buffer.write(r)
    sys.stdout.buffer.flush()
    if a.verbose:
        print(f"swrdma: {len(a.fid) - failed}/{len(a.fid)} read, {total} bytes, "
              f"{elapsed * 1e3:.2f} ms, over {transports}", file=sys.stderr)
    return 1 if failed else 0


def _info(a: argparse.Namespace) -> int:
    with _client(a) as c:
        info = c.info()
    if a.json:
        print(json.dumps(info, indent=2))
        return 0
    if "master_url" in info:
        print(f"master {info['master_url']}: library {info['library_version']}")
        return 0
    print(f"agent {info['agent_version']}, exposure {info['exposure']}, transports "
          f"{','.join(info['agent_transports'])} (client: {','.join(info['transports']) or 'http'})")
    for v in info["volumes"]:
        print(f"  volume {v['id']}{' (' + v['collection'] + ')' if v['collection'] else ''}: "
              f"v{v['version']}, {v['size']} bytes, {v['live_needles']} live, "
              f"{v['deleted_needles']} deleted, generation {v['generation']}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swrdma",
                                description="Verified one-sided reads from an swrdma-agent")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("get", help="Read needles by file id (verified: header + CRC-32C)")
    _common(g, tokens=True)
    g.add_argument("fid", nargs="+", help="File id(s), e.g. 3,01637037d6")
    g.add_argument("-o", "--output",
                   help="Write the data to FILE (one fid) or into DIRECTORY/<fid> (several)")
    g.add_argument("--raw", action="store_true", help="Do not decompress gzip-stored needles")
    g.add_argument("--jwt", action="append", help="SeaweedFS read token for the fid; repeat for "
                   "one per fid, in order. Env SWRDMA_JWT holds one for all")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="Print a summary line (bytes, time, transport)")
    i = sub.add_parser("info", help="Show the agent's info and exported volumes")
    _common(i, tokens=False)
    i.add_argument("--json", action="store_true", help="Print JSON")
    a = p.parse_args(argv)
    try:
        return _get(a) if a.command == "get" else _info(a)
    except swrdma.Error as e:
        print(f"swrdma: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
