"""KV offloading: where prefix KV goes when it leaves GPU memory, so a corpus prefilled once need
not be prefilled again after an eviction or a restart.

vLLM 0.32 keeps evicted prefix blocks in host memory (`--kv-offloading-backend native
--kv-offloading-size GiB`: its OffloadingConnector, sized across all TP ranks) and, behind that,
in files (the TieringOffloadingSpec's `fs` secondary tier, configured through
`--kv-transfer-config`). Host memory is lost with the server; the files survive a restart and are
found again only when the block hashes come out the same: scoutlens asks for `sha256_cbor`
(canonical CBOR, seeded with vLLM's fixed seed unless PYTHONHASHSEED is set) and vLLM names the
files after the model, TP/PP sizes and KV dtype, so the same launch finds them again. Both need
CUDA (blocks are copied from GPU memory): on a CPU machine only the command is checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.gpus import GIB
from engine.types import EngineError

MILLION = 1024**2  # tokens, as contexts count them (Scout's 10M = 10,485,760)
HASH_ALGO = "sha256_cbor"  # reproducible across processes and restarts


@dataclass(frozen=True)
class KvOffload:
    """Host memory (GiB, across the node's GPUs) and an optional folder for the disk tier."""

    gib: float
    folder: str | None = None

    @classmethod
    def from_options(cls, gib: float | None, folder: str | None,
                     cpu: bool = False) -> KvOffload | None:
        """The offload `--offload-gb`/`--offload-dir` ask for; None when neither is given."""
        if gib is None and folder is None:
            return None
        if cpu:
            raise EngineError("KV offloading (--offload-gb/--offload-dir) needs CUDA GPUs: vLLM "
                              "copies GPU blocks to host memory and files; vLLM-CPU keeps its "
                              "KV in host memory already (VLLM_CPU_KVCACHE_SPACE)")
        if gib is None:
            raise EngineError("--offload-dir needs --offload-gb: the disk tier sits behind a "
                              "host-memory tier of that many GiB")
        if not gib > 0:
            raise EngineError(f"--offload-gb must be more than 0 GiB, not {gib:g}")
        if folder is not None and not folder.strip():
            raise EngineError("--offload-dir must name a folder")
        return cls(float(gib), folder.strip() if folder else None)

    def argv(self) -> list[str]:
        """vLLM's flags for this offload."""
        if self.folder is None:
            return ["--kv-offloading-backend", "native", "--kv-offloading-size", f"{self.gib:g}"]
        config = {"kv_connector": "OffloadingConnector", "kv_role": "kv_both",
                  "kv_connector_extra_config": {
                      "spec_name": "TieringOffloadingSpec",
                      "cpu_bytes_to_use": int(self.gib * GIB),
                      "secondary_tiers": [{"type": "fs", "root_dir": self.folder}]}}
        return ["--kv-transfer-config", json.dumps(config, separators=(",", ":")),
                "--prefix-caching-hash-algo", HASH_ALGO]

    def figures(self, kv_bytes_per_token: float) -> dict[str, Any]:
        """What the tiers hold: tokens in host memory, GiB per 1M tokens (host and disk, all
        layers' KV: an upper bound when the hybrid manager drops local layers' old blocks)."""
        per_million = kv_bytes_per_token * MILLION / GIB
        return {
            "host_gib": self.gib,
            "host_tokens": int(self.gib * GIB // kv_bytes_per_token) if kv_bytes_per_token else 0,
            "gib_per_million_tokens": round(per_million, 3),
            "folder": self.folder,
            "survives_restart": self.folder is not None,
            "hash_algo": HASH_ALGO if self.folder else None,
        }

    def notes(self, kv_bytes_per_token: float) -> list[str]:
        f = self.figures(kv_bytes_per_token)
        out = [f"KV offload: {self.gib:g} GiB of host memory holds at least "
               f"{f['host_tokens']:,} tokens of prefix KV ({f['gib_per_million_tokens']:,.1f} "
               "GiB per 1M tokens at most: all layers); lost when the server stops"]
        if self.folder:
            out.append(f"KV files in {self.folder}: {f['gib_per_million_tokens']:,.1f} GiB of "
                       "disk per 1M tokens; they survive a restart of the same launch (same "
                       f"model, TP/PP, KV dtype; {HASH_ALGO} block hashes, PYTHONHASHSEED "
                       "unset or unchanged)")
        return out
