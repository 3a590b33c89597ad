"""swrdma (Python) against a real swrdma-agent over generated volumes: every needle byte for byte
against the generator's own data, errors per fid, read tokens, read_into numpy arrays, threads,
iter_reads, the master path and `python -m swrdma`."""

from __future__ import annotations

import gzip
import os
import pickle
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

import swrdma
from conftest import READ_KEY, mint_token

TRANSPORTS = ["tcp", None]  # tcp, and whatever UCX picks on loopback (shared memory)


def absent_fid(volumes) -> str:
    """A well-formed fid of volume 2 that no needle has."""
    return "2,7fffffff00000001"


@pytest.mark.parametrize("transports", TRANSPORTS)
def test_every_needle_byte_exact(agent, volumes, transports):
    with swrdma.Client(agent.url, transports=transports) as c:
        if transports:
            assert c.transports == ["tcp"]
        for n in volumes.needles:
            if n.live:
                assert c.read(n.fid) == n.expected, n.fid
            else:
                with pytest.raises(swrdma.Deleted) as e:
                    c.read(n.fid)
                assert e.value.fid == n.fid and n.fid in str(e.value)
        for n in volumes.live:
            if n.gzip:  # raw: the stored gzip stream, which gunzips to the same bytes
                raw = c.read(n.fid, raw=True)
                assert raw[:2] == b"\x1f\x8b" and gzip.decompress(raw) == n.expected
        s = c.stats()
        assert s["reads"] >= len(volumes.live) and s["crc_failures"] == 0


def test_read_many_in_order_with_errors_per_fid(agent, volumes):
    fids = [n.fid for n in volumes.needles] + ["not-a-fid", "999,0100000001", absent_fid(volumes)]
    with swrdma.Client(agent.url, transports="tcp") as c:
        got = c.read_many(fids)
    assert len(got) == len(fids)
    for n, r in zip(volumes.needles, got):
        if n.live:
            assert r == n.expected, n.fid
        else:
            assert isinstance(r, swrdma.Deleted) and r.fid == n.fid and r.name == "deleted"
    bad, unknown, absent = got[-3:]
    assert isinstance(bad, swrdma.InvalidArgument) and isinstance(bad, ValueError)
    assert isinstance(unknown, swrdma.NotFound) and unknown.name == "unknown_volume"
    assert type(absent) is swrdma.NotFound and absent.name == "not_found"
    assert absent.fid == fids[-1] and fids[-1] in absent.message


def test_read_many_empty_and_bad_arguments(agent):
    with swrdma.Client(agent.url, transports="tcp") as c:
        assert c.read_many([]) == []
        with pytest.raises(TypeError):
            c.read_many("2,01")  # a str is not a batch
        with pytest.raises(TypeError):
            c.read_many([1, 2])
        with pytest.raises(ValueError):
            c.read_many(["2,01"], jwts=[])


def test_iter_reads_every_index_once(agent, volumes):
    fids = [n.fid for n in volumes.needles]
    with swrdma.Client(agent.url, transports="tcp") as c:
        seen = {}
        for i, r in c.iter_reads((f for f in fids), batch=7):  # a generator, several batches
            assert i not in seen
            seen[i] = r
    assert sorted(seen) == list(range(len(fids)))
    for i, n in enumerate(volumes.needles):
        if n.live:
            assert seen[i] == n.expected
        else:
            assert isinstance(seen[i], swrdma.Deleted)


def test_read_into_numpy_bytearray_memoryview(agent, volumes):
    with swrdma.Client(agent.url, transports="tcp") as c:
        for n in volumes.live:
            a = np.full(n.size + 8, 0xAB, dtype=np.uint8)
            assert c.read_into(n.fid, a) == n.size
            assert a[: n.size].tobytes() == n.expected, n.fid
            assert (a[n.size:] == 0xAB).all()  # nothing written past the data
        big = max(volumes.live, key=lambda n: n.size)
        f = np.zeros((big.size + 3) // 4, dtype=np.float32)  # any dtype: its bytes are written
        assert c.read_into(big.fid, f) == big.size
        assert f.tobytes()[: big.size] == big.expected
        b = bytearray(big.size)
        assert c.read_into(big.fid, b) == big.size and bytes(b) == big.expected
        m = memoryview(bytearray(big.size + 100))[50:]
        assert c.read_into(big.fid, m) == big.size and m[: big.size].tobytes() == big.expected
        small = np.zeros(max(big.size // 2, 1) if big.size > 1 else 0, dtype=np.uint8)
        with pytest.raises(swrdma.BufferTooSmall) as e:
            c.read_into(big.fid, small)
        assert e.value.needed == big.size and not small.any()
        with pytest.raises((TypeError, BufferError)):
            c.read_into(big.fid, b"read-only")
        with pytest.raises((TypeError, BufferError, ValueError)):
            c.read_into(big.fid, np.zeros(2 * big.size, dtype=np.uint8)[::2])  # not contiguous
        with pytest.raises(swrdma.Deleted):
            c.read_into(volumes.deleted[0].fid, bytearray(16))


def test_read_many_into(agent, volumes):
    needles = volumes.needles[:30]
    bufs = [np.zeros(n.size, dtype=np.uint8) for n in needles]
    with swrdma.Client(agent.url, transports="tcp") as c:
        got = c.read_many_into([n.fid for n in needles], bufs)
    for n, b, r in zip(needles, bufs, got):
        if n.live:
            assert r == n.size and b.tobytes() == n.expected
        else:
            assert isinstance(r, swrdma.Deleted) and r.fid == n.fid


def test_errors_hierarchy_and_pickle(agent, volumes):
    with swrdma.Client(agent.url, transports="tcp") as c:
        with pytest.raises(swrdma.NotFound) as e:
            c.read(absent_fid(volumes))
        err = e.value
        assert isinstance(err, swrdma.Error) and isinstance(err, KeyError)
        assert err.code == -2 and err.name == "not_found" and err.fid == absent_fid(volumes)
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is swrdma.NotFound and back.fid == err.fid and str(back) == str(err)
        with pytest.raises(swrdma.InvalidArgument):
            c.read("3-not-a-fid")
        with pytest.raises(swrdma.NotFound):
            c.read("999,0100000001")  # volume not exported
        assert issubclass(swrdma.Deleted, swrdma.NotFound)
        assert issubclass(swrdma.CrcError, swrdma.Error)
        assert issubclass(swrdma.Timeout, swrdma.TransportError)


def test_connect_failure_is_transport_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(swrdma.TransportError) as e:
        swrdma.Client(f"http://127.0.0.1:{port}", timeout=2)
    assert e.value.name == "unavailable" and str(port) in str(e.value)
    with pytest.raises(swrdma.InvalidArgument):
        swrdma.Client("http://127.0.0.1:1", timeout=0)


def test_read_tokens(auth_agent, volumes):
    live = volumes.live[:6]
    with swrdma.Client(auth_agent.url, transports="tcp") as c:
        for n in live:
            assert c.read(n.fid, jwt=mint_token(READ_KEY, n.fid)) == n.expected
        with pytest.raises(swrdma.AuthError) as e:
            c.read(live[0].fid)
        assert e.value.name == "permission_denied" and isinstance(e.value, PermissionError)
        with pytest.raises(swrdma.AuthError):
            c.read(live[0].fid, jwt=mint_token(READ_KEY, live[1].fid))  # another fid's token
        with pytest.raises(swrdma.AuthError):
            c.read(live[0].fid, jwt=mint_token("wrong-key", live[0].fid))
        jwts = [mint_token(READ_KEY, n.fid) for n in live]
        jwts[1] = None  # no token for this one
        jwts[2] = mint_token("wrong-key", live[2].fid)
        got = c.read_many([n.fid for n in live], jwts=jwts)
        for i, (n, r) in enumerate(zip(live, got)):
            if i in (1, 2):
                assert isinstance(r, swrdma.AuthError) and r.fid == n.fid
            else:
                assert r == n.expected
        a = np.zeros(live[0].size, dtype=np.uint8)
        assert c.read_into(live[0].fid, a, jwt=jwts[0]) == live[0].size
        assert a.tobytes() == live[0].expected
        seen = dict(c.iter_reads([n.fid for n in live], jwts=jwts, batch=4))
        assert isinstance(seen[1], swrdma.AuthError) and seen[3] == live[3].expected


def test_one_client_per_thread(agent, volumes):
    errors = []

    def reader(k: int) -> None:
        try:
            with swrdma.Client(agent.url, transports="tcp") as c:
                for _ in range(3):
                    got = c.read_many([n.fid for n in volumes.live])
                    assert all(r == n.expected for r, n in zip(got, volumes.live))
                    for n in volumes.live[k::4]:
                        assert c.read(n.fid) == n.expected
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {k}: {e!r}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a reader thread hung"
    assert not errors, errors


def test_inherited_through_fork_refuses(agent, volumes):
    c = swrdma.Client(agent.url, transports="tcp")
    pid = os.fork()
    if pid == 0:  # the child: the parent's Client must refuse, not touch UCX
        try:
            c.read(volumes.live[0].fid)
            os._exit(1)
        except swrdma.InvalidArgument as e:
            os._exit(0 if "fork" in str(e) else 2)
        except BaseException:  # noqa: BLE001
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c.read(volumes.live[0].fid) == volumes.live[0].expected  # the parent's still works
    c.close()


def test_context_manager_info_stats(agent, volumes):
    with swrdma.Client(agent.url, transports="tcp") as c:
        info = c.info()
        assert {v["id"] for v in info["volumes"]} == {2, 5}
        assert info["transports"] == ["tcp"] and info["agent_version"]
        assert info["library_version"] == swrdma.library_version()
        live2 = sum(1 for n in volumes.live if n.fid.startswith("2,"))
        assert next(v for v in info["volumes"] if v["id"] == 2)["live_needles"] == live2
        c.read_many([n.fid for n in volumes.live])
        s = c.stats()
        assert s["reads"] == len(volumes.live) and s["bytes"] >= sum(n.size for n in volumes.live if not n.gzip)
        assert "agent=" in repr(c)
    assert c.closed and "closed" in repr(c)
    with pytest.raises(swrdma.InvalidArgument, match="closed"):
        c.read(volumes.live[0].fid)
    c.close()  # idempotent


def test_http_fallback(agent, volumes):
    with pytest.raises(swrdma.TransportError):
        swrdma.Client(agent.url, transports="bogus")
    with swrdma.Client(agent.url, transports="bogus", fallback_http=True) as c:
        assert c.transports == []
        got = c.read_many([n.fid for n in volumes.live])
        assert got == [n.expected for n in volumes.live]
        assert c.stats()["http_fallbacks"] >= len(volumes.live)


def test_through_master(master, volumes):
    url, agent_map = master
    with swrdma.Client(master=url, agent_map=agent_map, transports="tcp") as c:
        for n in volumes.needles[:20]:
            if n.live:
                assert c.read(n.fid) == n.expected
            else:
                with pytest.raises(swrdma.Deleted):
                    c.read(n.fid)
        got = c.read_many([n.fid for n in volumes.live])
        assert got == [n.expected for n in volumes.live]
        assert c.info()["master_url"] == url
        assert isinstance(c.read_many(["77,0100000001"])[0], swrdma.Error)


def _main(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swrdma", *args], capture_output=True,
                          timeout=60, **kw)


def test_python_m_swrdma(agent, volumes, tmp_path):
    n = max(volumes.live, key=lambda n: n.size)
    r = _main("get", "--agent", agent.url, "--transports", "tcp", n.fid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == n.expected
    out = tmp_path / "one"
    r = _main("get", "--agent", agent.url, "-o", str(out), n.fid)
    assert r.returncode == 0 and out.read_bytes() == n.expected
    several = [m.fid for m in volumes.live[:5]]
    r = _main("get", "--agent", agent.url, "-o", str(tmp_path / "dir"), "-v", *several)
    assert r.returncode == 0, r.stderr
    for m in volumes.live[:5]:
        assert (tmp_path / "dir" / m.fid).read_bytes() == m.expected
    d = volumes.deleted[0]
    r = _main("get", "--agent", agent.url, d.fid)
    assert r.returncode != 0 and b"deleted" in r.stderr and d.fid.encode() in r.stderr
    r = _main("info", "--agent", agent.url, "--json")
    assert r.returncode == 0 and b'"volumes"' in r.stdout


def test_example_map_style_dataset(agent, volumes):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    try:
        from dataset import FidDataset
    finally:
        sys.path.pop(0)
    live = volumes.live[:12]
    ds = FidDataset(agent.url, [n.fid for n in live], transports="tcp")
    assert len(ds) == len(live)
    assert [ds[i] for i in range(len(ds))] == [n.expected for n in live]
    assert ds.__getitems__([5, 0, 11]) == [live[5].expected, live[0].expected, live[11].expected]
    bad = FidDataset(agent.url, [volumes.deleted[0].fid], transports="tcp")
    with pytest.raises(swrdma.Deleted):
        bad.__getitems__([0])
