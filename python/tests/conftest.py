"""Fixtures: generated volumes (`swrdma mkvolume`, with the generator's own expected bytes) and
real swrdma-agent processes serving them on loopback (kernel-chosen ports).

The binaries come from SWRDMA_AGENT and SWRDMA_CLI (python/tests/run.sh sets them from the build
tree). Without them the tests fail, saying so: they never pass vacuously.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List

import pytest

AGENT_LIFETIME_S = 600  # hard cap on every agent (timeout -k), should pytest itself be killed
START_TIMEOUT_S = 60


def _binary(env: str) -> str:
    path = os.environ.get(env)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            f"{env} is not set to an executable ({path!r}): run python/tests/run.sh BUILD_DIR "
            f"(or ctest -L python), which builds and passes swrdma-agent and swrdma",
            pytrace=False,
        )
    return path


@dataclass
class Needle:
    fid: str
    size: int
    live: bool
    gzip: bool
    expected: bytes = b""


@dataclass
class Volumes:
    dir: Path
    needles: List[Needle] = field(default_factory=list)

    @property
    def live(self) -> List[Needle]:
        return [n for n in self.needles if n.live]

    @property
    def deleted(self) -> List[Needle]:
        return [n for n in self.needles if not n.live]


def _mkvolume(cli: str, root: Path, vid: int, *args: str) -> List[Needle]:
    manifest = root / f"m{vid}.tsv"
    expect = root / "expected"
    subprocess.run(
        [cli, "mkvolume", "--dir", str(root / "volumes"), "--vid", str(vid), "--fids",
         str(manifest), "--expect-dir", str(expect), *args],
        check=True, timeout=120, stdout=subprocess.DEVNULL)
    needles = []
    for line in manifest.read_text().splitlines():
        fid, size, state, form = line.split("\t")
        n = Needle(fid, int(size), state == "live", form == "gzip")
        if n.live:
            n.expected = (expect / fid).read_bytes()
            assert len(n.expected) == n.size, f"{fid}: generator wrote {len(n.expected)} bytes"
        needles.append(n)
    return needles


@pytest.fixture(scope="session")
def volumes(tmp_path_factory) -> Volumes:
    """v3 volume 2 (1 B .. 300 KiB) and v2 legacy-CRC volume 5, plain and gzip, some deleted."""
    cli = _binary("SWRDMA_CLI")
    root = tmp_path_factory.mktemp("vol")
    v = Volumes(root / "volumes")
    v.needles += _mkvolume(cli, root, 2, "--needles", "80", "--min", "1", "--max", "300K",
                           "--gzip-fraction", "0.3", "--delete-fraction", "0.2", "--seed", "21")
    v.needles += _mkvolume(cli, root, 5, "--version", "2", "--legacy-crc", "--needles", "40",
                           "--min", "1", "--max", "64K", "--gzip-fraction", "0.3",
                           "--delete-fraction", "0.2", "--seed", "22")
    assert v.live and v.deleted and any(n.gzip for n in v.live)
    return v


class Agent:
    """A swrdma-agent process on 127.0.0.1:<kernel-chosen port>."""

    def __init__(self, workdir: Path, volume_dir: Path, *extra: str) -> None:
        self.log = workdir / "agent.log"
        cmd = ["timeout", "-k", "10", str(AGENT_LIFETIME_S), _binary("SWRDMA_AGENT"),
               "--dir", str(volume_dir), "--index-dir", str(workdir / "index"),
               "--http", "127.0.0.1:0", *extra]
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        port = None
        while port is None:
            m = re.search(r"serving http on .* \(port (\d+)\)", self.log.read_text(errors="replace"))
            if m:
                port = int(m.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"swrdma-agent did not start: {self.tail()}", pytrace=False)
            else:
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        while True:  # /readyz: the volumes are indexed and registered
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"swrdma-agent not ready within {START_TIMEOUT_S} s: {self.tail()}",
                            pytrace=False)
            time.sleep(0.1)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log_file.close()


@pytest.fixture(scope="session")
def agent(volumes, tmp_path_factory):
    a = Agent(tmp_path_factory.mktemp("agent"), volumes.dir)
    yield a
    a.stop()


READ_KEY = "python-test-key"


def mint_token(key: str, fid: str) -> str:
    """A SeaweedFS read token (HS256 JWT with the fid), as the master would hand out."""
    b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()  # noqa: E731
    head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b(json.dumps({"fid": fid, "exp": int(time.time()) + 600}).encode())
    sig = b(hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


@pytest.fixture(scope="session")
def auth_agent(volumes, tmp_path_factory):
    """An agent that requires read tokens signed with READ_KEY."""
    work = tmp_path_factory.mktemp("auth")
    (work / "security.toml").write_text(f'[jwt.signing.read]\nkey = "{READ_KEY}"\n')
    a = Agent(work, volumes.dir, "--security-toml", str(work / "security.toml"))
    yield a
    a.stop()


@pytest.fixture(scope="session")
def master(agent, tmp_path_factory):
    """A stand-in SeaweedFS master (GET /dir/lookup) placing volumes 2 and 5 on a made-up
    volume server, and an agent map sending that server's reads to the agent."""
    volume_server = "127.0.0.1:18080"
    locations: Dict[str, List[str]] = {"2": [volume_server], "5": [volume_server]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            from urllib.parse import parse_qs, urlparse
            u = urlparse(self.path)
            q = parse_qs(u.query)
            vid = (q.get("volumeId") or q.get("fileId") or ["0"])[0].split(",")[0]
            if u.path != "/dir/lookup" or vid not in locations:
                body, code = {"volumeOrFileId": vid, "error": f"volume id {vid} not found"}, 404
            else:
                body, code = {"volumeOrFileId": vid, "locations": [
                    {"url": s, "publicUrl": s} for s in locations[vid]]}, 200
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    agent_map = tmp_path_factory.mktemp("master") / "agents.map"
    agent_map.write_text(f"{volume_server} {agent.url}\n")
    yield f"http://127.0.0.1:{server.server_address[1]}", str(agent_map)
    server.shutdown()
    server.server_close()
