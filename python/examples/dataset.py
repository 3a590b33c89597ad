"""A map-style dataset over SeaweedFS fids, for data loaders (PyTorch's DataLoader takes any
object with __len__ and __getitem__; nothing here imports torch).

    ds = FidDataset("http://volume-host:18515", fids, decode=lambda b: b)
    sample = ds[3]                       # one verified read
    batch = ds.__getitems__([4, 9, 17])  # one batched read (DataLoader >= 2.1 calls this)

Worker processes: the Client is opened lazily in the process (and thread) that reads, so a
DataLoader with num_workers > 0 forks first and each worker opens its own (a Client must not
cross fork()). Run this file to read a few fids: python dataset.py AGENT_URL FID...
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, List, Optional, Sequence

import swrdma


class FidDataset:
    def __init__(self, agent: str, fids: Sequence[str], *,
                 decode: Callable[[bytes], Any] = lambda b: b,
                 jwts: Optional[Sequence[Optional[str]]] = None, **client_options: Any) -> None:
        self.agent = agent
        self.fids = list(fids)
        self.jwts = list(jwts) if jwts is not None else None
        self.decode = decode
        self.client_options = client_options
        self._local = threading.local()  # one Client per thread (and per process, below)

    def _client(self) -> swrdma.Client:
        c = getattr(self._local, "client", None)
        if c is None or self._local.pid != os.getpid():
            c = swrdma.Client(self.agent, **self.client_options)
            self._local.client, self._local.pid = c, os.getpid()
        return c

    def __len__(self) -> int:
        return len(self.fids)

    def __getitem__(self, i: int) -> Any:
        jwt = self.jwts[i] if self.jwts is not None else None
        return self.decode(self._client().read(self.fids[i], jwt=jwt))

    def __getitems__(self, indices: List[int]) -> List[Any]:
        """A batch in one round of reads; a failed fid raises its error (NotFound, ...)."""
        fids = [self.fids[i] for i in indices]
        jwts = [self.jwts[i] for i in indices] if self.jwts is not None else None
        out = []
        for r in self._client().read_many(fids, jwts=jwts):
            if isinstance(r, swrdma.Error):
                raise r
            out.append(self.decode(r))
        return out


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python dataset.py AGENT_URL FID...")
    ds = FidDataset(sys.argv[1], sys.argv[2:], decode=len)
    print(f"{len(ds)} samples; sizes one by one: {[ds[i] for i in range(len(ds))]}; "
          f"as a batch: {ds.__getitems__(list(range(len(ds))))}")
