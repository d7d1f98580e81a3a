"""Prefix KV cache for the embedded backend: a hash chain over fixed-size token blocks, two tiers.

As in vLLM, block i's key hashes its tokens together with block i-1's key (and the model key), so
a key names a whole prefix and any prompt sharing a block-aligned prefix finds its blocks. The
memory tier is an LRU under a byte budget; the disk tier (one file per block under
SCOUTLENS_HOME) lets a second process reuse the first one's prefill. A file carries the model key,
dtype, shape and a CRC32 of its payload: a mismatched, truncated or corrupt file is a miss (and is
deleted), never a crash. Disk errors on write (disk full) become warnings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import struct
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from common.files import atomic_open

MAGIC = b"SLKV0001"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def block_hashes(model_key: str, ids: list[int], block: int) -> list[str]:
    """Chained keys of the full blocks of `ids` (a trailing partial block has none)."""
    parent = hashlib.sha256(f"scoutlens-kv|{model_key}|{block}".encode()).digest()
    keys = []
    for start in range(0, len(ids) - block + 1, block):
        chunk = struct.pack(f"<{block}I", *ids[start:start + block])
        parent = hashlib.sha256(parent + chunk).digest()
        keys.append(parent.hex())
    return keys


@dataclass
class KVBlock:
    """K and V of one block for every layer: a tensor shaped [2, layers, kv_heads, block, dim]."""

    kv: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()


class MemoryTier:
    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self._blocks: OrderedDict[str, KVBlock] = OrderedDict()
        self.bytes = 0

    def get(self, key: str) -> KVBlock | None:
        blk = self._blocks.get(key)
        if blk is not None:
            self._blocks.move_to_end(key)
        return blk

    def put(self, key: str, blk: KVBlock) -> None:
        if key in self._blocks or blk.nbytes > self.budget:
            return
        self._blocks[key] = blk
        self.bytes += blk.nbytes
        while self.bytes > self.budget:
            _, old = self._blocks.popitem(last=False)
            self.bytes -= old.nbytes

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, key: str) -> bool:  # no recency touched
        return key in self._blocks

    def clear(self) -> None:
        self._blocks.clear()
        self.bytes = 0


class DiskTier:
    """Block files under `root/<model key>/<aa>/<key>.kv`; least recently used evicted first."""

    def __init__(self, root: Path, model_key: str, budget_bytes: int):
        self.root = root
        self.dir = root / model_key[:24]
        self.model_key = model_key
        self.budget = budget_bytes

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.kv"

    def get(self, key: str) -> KVBlock | None:
        path = self._path(key)
        try:  # mapped, not read: the page cache's pages are used in place, no private copy
            with open(path, "rb") as fh:
                data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
            return None
        blk = self._decode(data, key)
        if blk is None:
            path.unlink(missing_ok=True)  # corrupt or foreign: drop it, the caller recomputes
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recency for eviction
        return blk

    def _decode(self, data: mmap.mmap, key: str) -> KVBlock | None:
        try:
            if data[:8] != MAGIC:
                return None
            (hlen,) = struct.unpack("<I", data[8:12])
            head = json.loads(data[12:12 + hlen])
            payload = memoryview(data)[12 + hlen:]
            if (head["model"] != self.model_key or head["key"] != key
                    or head["dtype"] not in DTYPES
                    or len(payload) != head["nbytes"] or zlib.crc32(payload) != head["crc32"]):
                return None
            with warnings.catch_warnings():  # read-only is fine: blocks are only copied from
                warnings.simplefilter("ignore", UserWarning)
                kv = torch.frombuffer(data, dtype=DTYPES[head["dtype"]], offset=12 + hlen)
            kv = kv.reshape(head["shape"])
            return KVBlock(kv)
        except (ValueError, KeyError, TypeError, struct.error, RuntimeError):
            return None

    def put(self, key: str, blk: KVBlock) -> bool:
        """Write one block atomically; False (with a warning) when the disk refuses."""
        path = self._path(key)
        kv = blk.kv.contiguous()
        payload = memoryview(kv.view(torch.uint8).numpy()).cast("B")
        head = json.dumps({"model": self.model_key, "key": key,
                           "dtype": str(kv.dtype).removeprefix("torch."),
                           "shape": list(kv.shape), "nbytes": len(payload),
                           "crc32": zlib.crc32(payload)}).encode()
        with contextlib.suppress(OSError):
            if path.stat().st_size == 12 + len(head) + len(payload):
                return True  # already there (a same-size corrupt file is caught when read)
        try:
            with atomic_open(path, "wb") as fh:
                fh.write(MAGIC + struct.pack("<I", len(head)) + head)
                fh.write(payload)
            return True
        except OSError as exc:
            warnings.warn(f"KV cache not saved to disk ({exc.strerror or exc}); answers are "
                          "unaffected, the next process will prefill again", stacklevel=2)
            return False

    def files(self) -> list[Path]:
        return list(self.root.glob("*/*/*.kv")) if self.root.exists() else []

    def evict(self) -> int:
        """Delete least recently used block files until the whole disk tier fits its budget."""
        entries = []
        for p in self.files():
            try:
                st = p.stat()
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        total = sum(e[1] for e in entries)
        removed = 0
        for _, size, p in sorted(entries):
            if total <= self.budget:
                break
            p.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed


class PrefixCache:
    """Find the longest cached block-aligned prefix of a prompt; store newly prefilled blocks."""

    def __init__(self, model_key: str, block: int, disk_root: Path | None,
                 memory_bytes: int = 2 << 30, disk_bytes: int = 20 << 30):
        self.model_key, self.block = model_key, block
        self.memory = MemoryTier(memory_bytes)
        self.disk = DiskTier(disk_root, model_key, disk_bytes) if disk_root else None
        self.hits_memory = self.hits_disk = self.misses = 0

    def keys(self, ids: list[int]) -> list[str]:
        return block_hashes(self.model_key, ids, self.block)

    def has(self, key: str) -> bool:
        """Whether a block is in memory or on disk (not read, not checked: lookup does that)."""
        return key in self.memory or (self.disk is not None and self.disk._path(key).is_file())

    def lookup(self, keys: list[str]) -> list[KVBlock]:
        """Blocks for the longest run of `keys` found, memory first, then disk."""
        found: list[KVBlock] = []
        for key in keys:
            blk = self.memory.get(key)
            if blk is not None:
                self.hits_memory += 1
            elif self.disk is not None and (blk := self.disk.get(key)) is not None:
                self.hits_disk += 1
                self.memory.put(key, blk)
            else:
                self.misses += 1
                break
            found.append(blk)
        return found

    def store(self, keys: list[str], blocks: list[KVBlock], evict: bool = True) -> None:
        """Blocks into memory and onto disk; `evict=False` leaves the disk tier's budget to a
        later call (a prefill stores blocks piece by piece, and evicting scans every file)."""
        for key, blk in zip(keys, blocks, strict=True):
            self.memory.put(key, blk)
            if self.disk is not None and not self.disk.put(key, blk):
                break  # the disk is refusing: do not warn once per block
        if self.disk is not None and evict:
            self.disk.evict()


def usage_by_model(root: Path) -> dict[str, tuple[int, int]]:
    """(block files, bytes) per model folder under a KV cache root, for `scoutlens cache stats`."""
    usage: dict[str, tuple[int, int]] = {}
    for p in root.glob("*/*/*.kv") if root.exists() else []:
        with contextlib.suppress(OSError):
            n, size = usage.get(p.parent.parent.name, (0, 0))
            usage[p.parent.parent.name] = (n + 1, size + p.stat().st_size)
    return usage


def clear_disk(root: Path) -> int:
    files = list(root.glob("*/*/*.kv*")) if root.exists() else []
    for p in files:
        p.unlink(missing_ok=True)
    return len(files)
