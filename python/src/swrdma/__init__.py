"""Verified one-sided reads of SeaweedFS needles from an swrdma-agent.

    import swrdma

    with swrdma.Client("http://volume-host:18515") as c:
        data = c.read("3,01637037d6")                 # bytes, verified (id, cookie, size, CRC-32C)
        batch = c.read_many(["3,01637037d6", "3,02"])  # bytes or an exception object per fid
        n = c.read_into("3,01637037d6", buf)          # into a bytearray / numpy array / memoryview

Every byte handed out was checked first, as with the C++ client: the record is read one-sidedly
(RDMA, or UCX over tcp / shared memory) from the agent's registered memory, and its header,
cookie, size and CRC-32C are verified before anything is returned; gzip-stored needles are
gunzipped (``raw=True`` returns them as stored).

Threads and processes: a Client is used by one thread at a time (open one per thread; using one
from two threads at once raises ``swrdma.Error``). Reads release the GIL, so reader threads run
in parallel. After ``fork()`` (multiprocessing, DataLoader workers) open a new Client in the
child: an inherited one refuses to work.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _swrdma

__all__ = [
    "Client",
    "Error",
    "NotFound",
    "Deleted",
    "CrcError",
    "AuthError",
    "TransportError",
    "Timeout",
    "InvalidArgument",
    "BufferTooSmall",
    "__version__",
    "library_version",
]

__version__ = "0.1.0"


def library_version() -> str:
    """Version of the swrdma C library linked into this package (``swrdma_version()``)."""
    return _swrdma.version()


# ---- exceptions ---------------------------------------------------------------------------------


class Error(Exception):
    """A read or a client call failed.

    Attributes:
        code: the C API's status code (negative int, ``SWRDMA_E_*`` in client/swrdma.h).
        name: its stable name ("not_found", "deleted", "checksum_mismatch", ...).
        fid: the file id the error is about, or None for errors of the client itself.
        message: the library's message (it names the fid and the cause).
    """

    def __init__(self, message: str, *, code: int = -18, fid: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = _swrdma.strerror(code)
        self.fid = fid
        self.message = message

    def __reduce__(self):  # picklable (multiprocessing), keeping the attributes
        return (_make_error, (self.code, self.message, self.fid, getattr(self, "needed", 0)))


class NotFound(Error, KeyError):
    """No such needle, or the agent exports no such volume (code not_found / unknown_volume)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class Deleted(NotFound):
    """The needle existed and was deleted (code deleted). A subclass of NotFound."""


class CrcError(Error):
    """The data failed verification: CRC-32C mismatch (data loss), or a record that does not
    match its fid (codes checksum_mismatch, corruption). Nothing of it was returned."""


class AuthError(Error, PermissionError):
    """The read token (JWT) is missing or wrong: the agent requires one (code
    permission_denied). Pass ``jwt=`` / ``jwts=`` (tokens from the master or your filer)."""


class TransportError(Error, ConnectionError):
    """The agent cannot be reached or the transport failed: unavailable, no RDMA device or UCX
    transport, endpoint failure, remote key rejected, cancelled, timeout."""


class Timeout(TransportError, TimeoutError):
    """No answer within the client's timeout (code timeout)."""


class InvalidArgument(Error, ValueError):
    """A malformed fid or option, or misuse of a Client (closed, shared between threads,
    inherited through fork)."""


class BufferTooSmall(Error, ValueError):
    """``read_into``: the buffer is smaller than the data; ``needed`` is the size it must have
    (nothing was written)."""

    needed: int = 0


_BY_CODE = {
    -1: InvalidArgument,
    -2: NotFound,
    -3: Deleted,
    -4: NotFound,
    -6: CrcError,
    -7: CrcError,
    -9: Timeout,
    -10: TransportError,
    -11: AuthError,
    -14: TransportError,
    -15: TransportError,
    -16: TransportError,
    -17: TransportError,
    -19: BufferTooSmall,
}


def _make_error(code: int, message: str, fid: Optional[str], needed: int = 0) -> Error:
    """The exception for a C status (called by the extension; per-fid errors of batches)."""
    e = _BY_CODE.get(code, Error)(message, code=code, fid=fid)
    if isinstance(e, BufferTooSmall):
        e.needed = needed
    return e


_swrdma._set_error_factory(_make_error)


# ---- the client ---------------------------------------------------------------------------------

Buffer = Any  # any object with a writable, C-contiguous buffer (bytearray, numpy array, ...)
Result = Union[bytes, Error]


class Client:
    """A connection to one swrdma-agent (or, with ``master=``, to the agents of a cluster).

    Args:
        agent: the agent's URL, "http://host:18515" (or "host:port").
        master: a SeaweedFS master URL ("http://master:9333", several comma-separated): each
            volume's replicas are found there and read from their agents (port ``agent_port``
            on each volume server host, or ``agent_map``), failing over between replicas.
            ``agent`` is not used then.
        transports: the UCX transports to read over, as UCX_TLS: "tcp", "posix,sysv,cma",
            "rc,ud" (RDMA), or a list of them; None lets UCX choose.
        timeout: seconds, per request to the agent and per batch of reads.
        fallback_http: read over the agent's HTTP GET when no UCX transport connects (the data
            is still verified).
        max_inflight: reads posted at once in a batch (default 64).
        lookup_cache_ttl: seconds a fid's location is reused without asking the agent.
        agent_port, agent_map, read_tokens: with ``master`` (see swrdma.h); read_tokens asks the
            master for each fid's read token.
        hugepages: back the registered read buffers with 2 MiB pages.

    Raises ``TransportError`` when the agent cannot be reached or no transport works,
    ``InvalidArgument`` on bad options. Use it as a context manager, or ``close()`` it.
    One Client per thread (see the module docstring).
    """

    def __init__(
        self,
        agent: Optional[str] = "http://127.0.0.1:18515",
        *,
        master: Optional[str] = None,
        transports: Union[str, Sequence[str], None] = None,
        timeout: float = 5.0,
        fallback_http: bool = False,
        max_inflight: int = 0,
        lookup_cache_ttl: float = 1.0,
        agent_port: int = 0,
        agent_map: Optional[str] = None,
        read_tokens: bool = False,
        hugepages: bool = False,
    ) -> None:
        if transports is not None and not isinstance(transports, str):
            transports = ",".join(transports)
        if not timeout > 0:
            raise InvalidArgument(f"timeout must be > 0 seconds, got {timeout!r}", code=-1)
        self._agent = agent
        self._master = master
        self._c = _swrdma.Client(
            agent,
            master,
            transports,
            max(1, int(timeout * 1000)),
            bool(fallback_http),
            int(max_inflight),
            int(lookup_cache_ttl * 1000),
            int(agent_port),
            agent_map,
            bool(read_tokens),
            bool(hugepages),
        )

    # -- reads --

    def read(self, fid: str, *, jwt: Optional[str] = None, raw: bool = False) -> bytes:
        """Reads one needle's data, verified.

        Args:
            fid: the SeaweedFS file id, "3,01637037d6".
            jwt: the fid's read token when the agent requires one.
            raw: return gzip-stored data as stored instead of gunzipped.

        Raises NotFound, Deleted, CrcError, AuthError, TransportError, InvalidArgument (bad fid).
        """
        return self._c.read(fid, jwt, raw)

    def read_many(
        self, fids: Sequence[str], *, jwts: Optional[Sequence[Optional[str]]] = None,
        raw: bool = False
    ) -> List[Result]:
        """Reads a batch: one lookup, up to ``max_inflight`` reads in flight.

        Returns one entry per fid, in order: the bytes, or the exception object (an ``Error``
        subclass, not raised) for that fid. ``jwts``: one token (or None) per fid.
        Raises only for errors of the call itself (closed client, bad arguments).
        """
        return self._c.read_many(fids, jwts, raw)

    def read_into(
        self, fid: str, buffer: Buffer, *, jwt: Optional[str] = None, raw: bool = False
    ) -> int:
        """Reads one needle into ``buffer`` and returns its length in bytes.

        ``buffer``: any writable C-contiguous buffer (bytearray, memoryview, numpy array of any
        dtype: its bytes are written). The verified data is copied once, straight from the
        registered buffer it landed in, with the GIL released. A buffer smaller than the data
        raises ``BufferTooSmall`` (``.needed`` says the size) and is not written; bytes past
        the returned length are left as they were.
        """
        return self._c.read_into(fid, buffer, jwt, raw)

    def read_many_into(
        self, fids: Sequence[str], buffers: Sequence[Buffer], *,
        jwts: Optional[Sequence[Optional[str]]] = None, raw: bool = False
    ) -> List[Union[int, Error]]:
        """``read_into`` for a batch: fids[i] into buffers[i]. One entry per fid, in order: the
        length read, or the exception object for that fid."""
        return self._c.read_many_into(fids, buffers, jwts, raw)

    def iter_reads(
        self, fids: Iterable[str], *, jwts: Optional[Iterable[Optional[str]]] = None,
        raw: bool = False, batch: int = 256
    ) -> Iterator[Tuple[int, Result]]:
        """Yields ``(index, bytes | exception)`` for every fid, as the reads complete.

        ``fids`` may be any iterable (a generator of millions): it is read ``batch`` fids at a
        time, and within a batch the results come in completion order (each index exactly
        once). Per-fid errors are yielded as exception objects, not raised.
        """
        if batch < 1:
            raise InvalidArgument(f"batch must be >= 1, got {batch}", code=-1)
        fid_iter = iter(fids)
        jwt_iter = iter(jwts) if jwts is not None else None
        base = 0
        while True:
            chunk: List[str] = []
            for fid in fid_iter:
                chunk.append(fid)
                if len(chunk) == batch:
                    break
            if not chunk:
                return
            tokens = None
            if jwt_iter is not None:
                tokens = [next(jwt_iter, None) for _ in chunk]
            for index, value in self._c.read_completed(chunk, tokens, raw):
                yield base + index, value
            base += len(chunk)

    # -- the client --

    def info(self) -> Dict[str, Any]:
        """The agent (version, transports, exposure) and its volumes (id, collection, size,
        live/deleted needles, generation), and the transports this client reads over. Through
        a master: the master URL and the cluster counters."""
        return json.loads(self._c.info())

    def stats(self) -> Dict[str, int]:
        """This client's counters: reads, bytes, lookups, lookup_cache_hits, retries,
        crc_failures, http_fallbacks, reconnects, reg_cache_hits/misses, registered_bytes,
        buffers_out."""
        return self._c.stats()

    @property
    def transports(self) -> List[str]:
        """The UCX transports the client reads over ([] over the HTTP fallback or a master)."""
        t = self._c.transports()
        return t.split(",") if t else []

    @property
    def closed(self) -> bool:
        return self._c.closed

    def close(self) -> None:
        """Closes the connection and frees the registered buffers. Idempotent."""
        self._c.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"master={self._master!r}" if self._master else f"agent={self._agent!r}"
        return f"<swrdma.Client {where}{' closed' if self.closed else ''}>"
