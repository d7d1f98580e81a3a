"""The accelerators the planner knows (memory as CUDA reports it, bandwidth, bf16 peak) and the
`--gpus` spec: NODES x GPUS_PER_NODE x KIND, or the CPU."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.types import EngineError

GIB = 1024**3

@dataclass(frozen=True)
class GpuKind:
    """One accelerator model. `usable_gib` is what CUDA reports as total memory, the figure
    vLLM's --gpu-memory-utilization applies to; `nominal_gb` is the data-sheet number."""

    name: str
    nominal_gb: int
    usable_gib: float
    bandwidth_tbs: float
    bf16_tflops: float  # dense


GPU_KINDS: dict[str, GpuKind] = {
    "H100": GpuKind("H100", 80, 79.2, 3.35, 989.0),  # SXM, HBM3
    "H200": GpuKind("H200", 141, 139.8, 4.8, 989.0),  # HBM3e, same compute as H100
}
MAX_PER_NODE = 8
#: vLLM --max-num-batched-tokens (the prefill chunk) unless chosen: GPUs, and the CPU build
BATCHED_TOKENS = {"gpu": 8192, "cpu": 2048}


@dataclass(frozen=True)
class GpuSpec:
    """NODES x GPUS_PER_NODE x KIND, or the CPU (kind None). Tensor parallel spans a node's
    GPUs, pipeline parallel spans nodes (vLLM's recommendation for multi-node serving)."""

    kind: GpuKind | None
    per_node: int = 1
    nodes: int = 1

    @classmethod
    def parse(cls, text: str) -> GpuSpec:
        """"1xH100" | "8xH100" | "8xH200" | "2x8xH100" (nodes x GPUs) | "H100" | "cpu"."""
        t = (text or "").strip().upper().replace(" ", "")
        if t == "CPU":
            return cls(None)
        m = re.fullmatch(r"(?:(\d+)X)?(?:(\d+)X)?([A-Z]\w*)", t)
        kinds = " | ".join(GPU_KINDS)
        usage = "use e.g. 1xH100, 8xH100, 8xH200, 2x8xH100 (nodes x GPUs) or cpu"
        if not m:
            raise EngineError(f"--gpus: not a GPU set: {text!r} ({usage})")
        a, b, name = m.groups()
        kind = GPU_KINDS.get(name)
        if kind is None:
            raise EngineError(f"--gpus: unknown GPU {name!r} (known: {kinds}, or cpu)")
        nodes, per_node = (int(a), int(b)) if b else (1, int(a or 1))
        if nodes < 1 or per_node < 1:
            raise EngineError(f"--gpus: counts must be positive: {text!r}")
        if per_node > MAX_PER_NODE:
            raise EngineError(f"--gpus: a node holds at most {MAX_PER_NODE} GPUs; for more write "
                              f"NODESx8x{name} (e.g. 2x8x{name})")
        return cls(kind, per_node, nodes)

    @property
    def is_cpu(self) -> bool:
        return self.kind is None

    @property
    def count(self) -> int:
        return self.per_node * self.nodes

    def __str__(self) -> str:
        if self.kind is None:
            return "cpu"
        head = f"{self.nodes}x" if self.nodes > 1 else ""
        return f"{head}{self.per_node}x{self.kind.name}"
