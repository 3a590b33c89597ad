"""Type stubs of the extension module swrdma._swrdma (python/src/_swrdma.cc): the engine under
swrdma.Client. Use the swrdma module; these signatures are positional and not a stable API."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

def version() -> str:
    """The C library's version (swrdma_version())."""

def strerror(code: int) -> str:
    """The stable name of a C status code ("not_found", ...; "unknown" otherwise)."""

def _set_error_factory(factory: Callable[[int, str, Optional[str], int], BaseException]) -> None:
    """Installs (code, message, fid, needed) -> exception, used for every error."""

class Client:
    """One C client (swrdma_client_t). Not thread-safe: concurrent use raises."""

    def __init__(
        self,
        agent: Optional[str],
        master: Optional[str],
        transports: Optional[str],
        timeout_ms: int,
        fallback_http: bool,
        max_inflight: int,
        lookup_cache_ttl_ms: int,
        agent_port: int,
        agent_map: Optional[str],
        read_tokens: bool,
        hugepages: bool,
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def read(self, fid: str, jwt: Optional[str], raw: bool) -> bytes: ...
    def read_many(
        self, fids: Sequence[str], jwts: Optional[Sequence[Optional[str]]], raw: bool
    ) -> List[Union[bytes, BaseException]]: ...
    def read_completed(
        self, fids: Sequence[str], jwts: Optional[Sequence[Optional[str]]], raw: bool
    ) -> List[Tuple[int, Union[bytes, BaseException]]]: ...
    def read_into(self, fid: str, buffer: Any, jwt: Optional[str], raw: bool) -> int: ...
    def read_many_into(
        self,
        fids: Sequence[str],
        buffers: Sequence[Any],
        jwts: Optional[Sequence[Optional[str]]],
        raw: bool,
    ) -> List[Union[int, BaseException]]: ...
    def info(self) -> str:
        """swrdma_client_info's JSON text."""
    def transports(self) -> str:
        """Comma-separated transports ("" over the HTTP fallback or a master)."""
    def stats(self) -> Dict[str, int]: ...
    def c_time_ns(self) -> int:
        """Nanoseconds spent inside the C API's read calls so far (GIL released)."""
