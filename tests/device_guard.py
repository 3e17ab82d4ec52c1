"""A torch function mode that finds, on a CPU-only machine, what would break or stall on a GPU.

Inside :class:`DeviceGuard`, every tensor factory called from the project's code (``golden/``,
``qarch/``) without a ``device`` (it would land on the CPU whatever the inputs' device) is
recorded with its file and line, and every host synchronisation (``.item()``, ``.tolist()``,
``.numpy()``, ``.cpu()``, ``bool()`` / ``int()`` / ``float()`` of a tensor) is counted, so a
test can assert that a quantizer makes none per column. A CUDA run would fail on the first
(a CPU tensor meeting a GPU one) and crawl on the second; here both are visible without a GPU.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]
OURS = (str(ROOT / "golden"), str(ROOT / "qarch"))

FACTORIES = {
    torch.arange, torch.zeros, torch.ones, torch.full, torch.empty, torch.eye, torch.tensor,
    torch.linspace, torch.logspace, torch.rand, torch.randn, torch.randint, torch.randperm,
}  # fmt: skip
SYNCS = {
    torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu,
    torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__,
}  # fmt: skip


TORCH = str(Path(torch.__file__).parent)


def _caller() -> str | None:
    """``file:line`` of the call when the innermost frame outside torch is in golden/ or qarch/
    (None when it is the test's own code or another library's, e.g. a model's forward)."""
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(TORCH):
        f = f.f_back
    if f is None or not f.f_code.co_filename.startswith(OURS):
        return None
    return f"{Path(f.f_code.co_filename).relative_to(ROOT)}:{f.f_lineno}"


class DeviceGuard(TorchFunctionMode):
    """``factories``: the call sites that create a tensor on the default device; ``syncs``: a
    Counter of host synchronisations by call site."""

    def __init__(self):
        super().__init__()
        self.factories: set[str] = set()
        self.syncs: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            where = _caller()
            if where is not None:
                self.factories.add(where)
        elif func is torch.as_tensor and kwargs.get("device") is None and not (
            args and isinstance(args[0], torch.Tensor)
        ):
            where = _caller()
            if where is not None:
                self.factories.add(where)
        elif func in SYNCS:
            where = _caller()
            if where is not None:
                self.syncs[where] += 1
        return func(*args, **kwargs)

    @property
    def sync_count(self) -> int:
        return sum(self.syncs.values())
