"""Calibration capture for whole-model quantizers (AXE, MicroScopiQ).

One pass of the caller's calibration forwards over the float model records, for every selected
Linear layer, an even sample of its input rows in bounded memory plus statistics over *all*
rows (max |x|, whether any input was negative); or, for GPTQ on many windows, the Gram
matrix X^T X of every row (:func:`accumulate_hessians`), one [in, in] matrix per layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from .numerics import check_finite

__all__ = ["LayerInputs", "linear_names", "capture_linear_inputs", "accumulate_hessians"]


class LayerInputs(NamedTuple):
    rows: torch.Tensor  # [<= max_rows, in] float32, an even sample of every row seen
    amax: float  # max |x| over all rows
    negative: bool  # any row had a negative input
    seen: int


def linear_names(model: torch.nn.Module, include=None) -> list[str]:
    """Names of the Linear layers ``include(name, module)`` selects (default: all)."""
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and (include is None or include(n, m))
    ]
    if not names:
        raise ValueError("no Linear layer selected for quantization")
    return names


def _run_hooked(model, calibrate, names, hook) -> None:
    """Run ``calibrate(model)`` with the forward hook ``hook(name)`` on each named layer."""
    mods = dict(model.named_modules())
    hooks = [mods[n].register_forward_hook(hook(n)) for n in names]
    try:
        calibrate(model)
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def capture_linear_inputs(
    model: torch.nn.Module,
    calibrate: Callable[[torch.nn.Module], object],
    names: list[str],
    max_rows: int = 2048,
) -> dict[str, LayerInputs]:
    stats = {
        n: {"rows": [], "idx": [], "seen": 0, "stride": 1, "amax": 0.0, "neg": False} for n in names
    }

    def hook(name):
        # Keep the rows whose global index is a multiple of a power-of-two stride, doubling
        # it whenever more than 2 * max_rows are held: an even sample in bounded memory.
        def f(_m, args, _out):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            check_finite(x, f"calibration input of {name}")
            st = stats[name]
            st["amax"] = max(st["amax"], float(x.abs().max()))
            st["neg"] = st["neg"] or bool((x < 0).any())
            idx = torch.arange(st["seen"], st["seen"] + x.shape[0])
            st["seen"] += x.shape[0]
            keep = idx % st["stride"] == 0
            st["rows"].append(x[keep])
            st["idx"].append(idx[keep])
            while sum(r.shape[0] for r in st["rows"]) > 2 * max_rows:
                st["stride"] *= 2
                keeps = [i % st["stride"] == 0 for i in st["idx"]]
                st["rows"] = [r[k] for r, k in zip(st["rows"], keeps)]
                st["idx"] = [i[k] for i, k in zip(st["idx"], keeps)]

        return f

    _run_hooked(model, calibrate, names, hook)
    out = {}
    for name in names:
        st = stats[name]
        if not st["rows"]:
            raise ValueError(f"calibration never reached layer {name!r}")
        x = torch.cat(st["rows"])
        if x.shape[0] > max_rows:
            x = x[torch.linspace(0, x.shape[0] - 1, max_rows).round().long()]
        out[name] = LayerInputs(x, st["amax"], st["neg"], st["seen"])
    return out


@torch.no_grad()
def accumulate_hessians(
    model: torch.nn.Module,
    calibrate: Callable[[torch.nn.Module], object],
    names: list[str],
    transform: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    row_weight: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, tuple[torch.Tensor, int]]:
    """``{name: (X~^T X~ [in, in] float64, rows)}`` over *every* input row the calibration
    forwards give each selected Linear layer, where ``X~ = transform(name, X)`` (e.g. the
    integer-quantized inputs the hardware sees; default the float inputs). Memory is one
    [in, in] matrix per layer however many rows there are, so GPTQ can calibrate on many
    windows. The transform must act row by row (per-tensor constants fixed beforehand).
    ``row_weight(x)``: a weight >= 0 per row of the layer input ``x`` [..., in] (shape [...]),
    giving ``sum_i a_i x~_i x~_i^T``: the rows whose output error costs the model more (an
    attention sink's value, see docs/evaluation.md) count more."""
    acc: dict[str, list] = {n: [None, 0] for n in names}

    def hook(name):
        def f(_m, args, _out):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
            check_finite(x, f"calibration input of {name}")
            xq = transform(name, x) if transform is not None else x
            if row_weight is not None:
                a = row_weight(args[0].detach()).reshape(-1).to(torch.float64)
                if a.shape[0] != x.shape[0] or bool((a < 0).any()):
                    raise ValueError("row_weight must give one weight >= 0 per input row")
                xq = xq * a.sqrt()[:, None]
            h = xq.T @ xq
            st = acc[name]
            st[0] = h if st[0] is None else st[0].add_(h)
            st[1] += x.shape[0]

        return f

    _run_hooked(model, calibrate, names, hook)
    for name in names:
        if acc[name][0] is None:
            raise ValueError(f"calibration never reached layer {name!r}")
    return {n: (h, rows) for n, (h, rows) in acc.items()}
