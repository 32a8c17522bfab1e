"""Reusing the shared start of prompts (a class's system message and brief) without changing any reply.

Every prompt is read in blocks of `block` tokens cut from its first token, whether part of it is
reused or not. After the block that ends at token b, a sequence's KV cells are exactly its cells
0..b-1, and they are the same bits for every prompt whose first b tokens are the same: the same
blocks were computed on the same cells in the same order. So a snapshot of them (llama.cpp's
per-sequence state, copied to host memory) can be put back into an emptied slot for a later
prompt with the same first b tokens, which then reads on from b in the same blocks: the numbers,
and the reply, are those of reading it all. (tests/test_llm_prefix_cache.py checks this on the
bytes of the KV state and on replies.) This is vLLM's block-level prefix caching, made
deterministic by always cutting the same way and always reading the last prompt token.

Which boundaries are kept: the block hashes of recent prompts are remembered (a few bytes each);
when a prompt shares a boundary with an earlier one, the longest such boundary is snapshotted while
it is read. So in a class the second learner's request stores the brief and the third to
thirtieth reuse it. Snapshots live in a store with a size limit in bytes, least recently used
first out, with counters for /health, /metrics and `marketlab serve --status`.

This module holds no model: the engine hands it tokens and bytes, on its one model thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_BLOCK = 128
# How many block hashes of recent prompts are remembered to spot a shared start (16 bytes each).
RECENT_HASHES = 8192
MB = 1024 * 1024


def block_hashes(tokens: Sequence[int], block: int) -> list[bytes]:
    """The chained hash of each full block: entry i names tokens[0 : (i+1)*block], not just block i."""
    hashes: list[bytes] = []
    previous = b""
    for end in range(block, len(tokens) + 1, block):
        digest = hashlib.blake2b(previous, digest_size=16)
        digest.update(b"".join(token.to_bytes(4, "little", signed=True) for token in tokens[end - block:end]))
        previous = digest.digest()
        hashes.append(previous)
    return hashes


def reusable_blocks(n_tokens: int, block: int) -> int:
    """How many full blocks of a prompt may come from a snapshot: never the last prompt token, which
    is always read so that the first reply token comes from a real step of the model."""
    return max(0, (n_tokens - 1) // block)


@dataclass
class Snapshot:
    """The KV state of cells 0..len(tokens)-1 of a sequence that read exactly these tokens."""

    tokens: tuple[int, ...]
    data: bytes


class PrefixCache:
    """Snapshots of prompt starts by block hash, bounded in bytes, least recently used evicted.

    Used by the model thread only, except `stats`, which any thread may call.
    """

    def __init__(self, limit_bytes: int, block: int = DEFAULT_BLOCK, recent: int = RECENT_HASHES) -> None:
        self.limit_bytes = max(0, int(limit_bytes))
        self.block = block
        self._snapshots: OrderedDict[bytes, Snapshot] = OrderedDict()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._recent = recent
        self._lock = threading.Lock()  # for stats() from other threads
        self.bytes = 0
        self.hits = self.misses = self.stores = self.evictions = 0
        self.tokens_reused = self.tokens_read = 0

    @property
    def enabled(self) -> bool:
        return self.limit_bytes > 0

    def lookup(self, tokens: Sequence[int], hashes: Sequence[bytes]) -> tuple[int, bytes] | None:
        """The longest stored start of this prompt that may be reused, as (tokens covered, state), or None."""
        if not self.enabled:
            return None
        for index in range(min(len(hashes), reusable_blocks(len(tokens), self.block)) - 1, -1, -1):
            snapshot = self._snapshots.get(hashes[index])
            end = (index + 1) * self.block
            # The hash finds it; the tokens decide (a collision must never hand over another prompt's state).
            if snapshot is not None and snapshot.tokens == tuple(tokens[:end]):
                with self._lock:
                    self._snapshots.move_to_end(hashes[index])
                return end, snapshot.data
        return None

    def stored(self, tokens: Sequence[int]) -> bytes | None:
        """The state stored for exactly these tokens (a prompt start ending at a block boundary), if any."""
        if not tokens or len(tokens) % self.block:
            return None
        snapshot = self._snapshots.get(block_hashes(tokens, self.block)[-1])
        return snapshot.data if snapshot is not None and snapshot.tokens == tuple(tokens) else None

    def count(self, reused: int, read: int) -> None:
        """Record one admitted prompt: how many of its tokens came from a snapshot and how many were read."""
        with self._lock:
            if reused:
                self.hits += 1
            else:
                self.misses += 1
            self.tokens_reused += reused
            self.tokens_read += read

    def plan(self, tokens: Sequence[int], hashes: Sequence[bytes], reused: int) -> int:
        """The boundary (in tokens) at which to snapshot this prompt while reading it, or 0 for none.

        The longest boundary beyond `reused` that an earlier prompt shared, and that is not stored
        yet; then this prompt's hashes join the recent ones.
        """
        boundary = 0
        if self.enabled:
            usable = min(len(hashes), reusable_blocks(len(tokens), self.block))
            for index in range(usable - 1, -1, -1):
                end = (index + 1) * self.block
                if end <= reused:
                    break
                if hashes[index] in self._seen:
                    if hashes[index] not in self._snapshots:
                        boundary = end
                    break
        for digest in hashes:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
        while len(self._seen) > self._recent:
            self._seen.popitem(last=False)
        return boundary

    def store(self, tokens: Sequence[int], digest: bytes, data: bytes) -> bool:
        """Keep a snapshot of these tokens' state, evicting the least recently used to stay in the limit."""
        size = len(data)
        if not self.enabled or size > self.limit_bytes or digest in self._snapshots:
            return False
        with self._lock:
            while self.bytes + size > self.limit_bytes and self._snapshots:
                _, old = self._snapshots.popitem(last=False)
                self.bytes -= len(old.data)
                self.evictions += 1
            self._snapshots[digest] = Snapshot(tuple(tokens), data)
            self.bytes += size
            self.stores += 1
        return True

    def clear(self) -> None:
        """Drop every snapshot and every remembered hash (the counters stay)."""
        with self._lock:
            self._snapshots.clear()
            self._seen.clear()
            self.bytes = 0

    def stats(self) -> dict[str, int | float]:
        """Counters for /health and /metrics: lookups that reused a start (hits) or not, sizes, evictions."""
        with self._lock:
            lookups = self.hits + self.misses
            return {"block_tokens": self.block, "limit_bytes": self.limit_bytes, "bytes": self.bytes,
                    "entries": len(self._snapshots), "hits": self.hits, "misses": self.misses,
                    "hit_rate": self.hits / lookups if lookups else 0.0, "stores": self.stores,
                    "evictions": self.evictions, "tokens_reused": self.tokens_reused,
                    "tokens_read": self.tokens_read}
