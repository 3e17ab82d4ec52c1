"""ANT quantizer: per-tensor adaptive type selection by MSE (docs/ant.md "Format definitions").

For each candidate type t of the mode: grid G_t = sorted values of t; clip search over
alpha = r * max|x| (r = 0.75, 0.76, ..., 1.49 by default, the reference's ``range(75, 150)``;
0.95 .. 1.49 above 6 bits, as the reference) with scale s = alpha / max(G_t), max(G_t) being
the largest *positive* grid value (7 for signed int4, not |-8|: alpha maps to the top of the
grid); ``x / s`` goes to the nearest grid value, ties toward +inf (``half_up``, as the
reference; or ``half_away``). Weights use one alpha per output channel (dim 0) and sum the
per-channel minimum MSEs into the type's score; activations use one alpha per tensor. The
lowest score wins for the whole tensor; an exact tie goes to the first of int, flint, pot (the
reference's order, whatever order the mode names them in). Tensors wider than 6 bits use int
only (as the reference).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from .ant import AntType
from .numerics import check_finite

__all__ = [
    "MODES",
    "DEFAULT_RATIOS",
    "WIDE_RATIOS",
    "TIE_ORDER",
    "GRID_ROUNDING",
    "AntQuant",
    "quantize_to_grid",
    "quantize_ant",
    "quantize_module",
    "LayerReport",
]

MODES = {
    "int,pot,flint": ("int", "pot", "flint"),
    "int,pot": ("int", "pot"),
    "int": ("int",),
    "flint": ("flint",),
    "pot": ("pot",),
}
# The reference searches ``i * 0.01 for i in range(75, 150)``, and from 95 above 6 bits.
DEFAULT_RATIOS = tuple(round(0.01 * i, 2) for i in range(75, 150))  # 0.75 .. 1.49
WIDE_RATIOS = tuple(round(0.01 * i, 2) for i in range(95, 150))  # 0.95 .. 1.49, bits > 6
# Exact MSE ties between types (coinciding grids, e.g. signed flint3 = PoT3) go to the first of
# these, the order in which the reference evaluates them (np.argsort keeps the first minimum).
TIE_ORDER = ("int", "flint", "pot")
GRID_ROUNDING = ("half_up", "half_away")


class AntQuant(NamedTuple):
    codes: torch.Tensor  # int64 codes of the chosen type, x's shape
    values: torch.Tensor  # int64 grid values
    type: AntType  # the per-tensor type
    scales: torch.Tensor  # float64 [channels] (weights) or [1] (activations)
    dequant: torch.Tensor  # values * scale, x's dtype
    mse: dict[str, float]  # per candidate type: the total MSE of its best clip


def quantize_to_grid(
    y: torch.Tensor, grid: torch.Tensor, rounding: str = "half_up"
) -> torch.Tensor:
    """Nearest value of the sorted integer ``grid`` for each element of ``y`` (float).

    Ties: ``half_up`` -> the larger grid value (toward +inf); ``half_away`` -> the one of larger
    magnitude. Values beyond the grid saturate to its ends (that is the clip).
    """
    if rounding not in GRID_ROUNDING:
        raise ValueError(f"rounding must be one of {', '.join(GRID_ROUNDING)}, not {rounding!r}")
    check_finite(y, "y")  # NaN has no nearest value (and would index the table out of range)
    y = y.to(torch.float64)
    key = tuple(grid.tolist())  # a type's grid is a host table (no device sync here) ...
    grid = grid.to(y.device)  # ... and the data may be on a GPU
    if rounding == "half_up":
        table = _half_up_table(key, str(y.device))
        if table is not None:
            lo, lut = table
            t = torch.floor(2 * y).clamp(lo, lo + lut.numel() - 1).to(torch.int64)
            return lut.to(grid.dtype)[t - lo]
    g = grid.to(torch.float64)
    mid = (g[1:] + g[:-1]) / 2
    up = torch.searchsorted(mid, y, right=True)  # a tie lands in the upper bin
    if rounding == "half_up":
        return grid[up]
    down = torch.searchsorted(mid, y, right=False)  # a tie lands in the lower bin
    return grid[torch.where(y < 0, down, up)]


@functools.lru_cache(maxsize=64)
def _half_up_table(grid: tuple, device: str) -> tuple[int, torch.Tensor] | None:
    """A lookup table for half-up rounding to an integer grid: every midpoint is a multiple of
    1/2, so the bin of y is the bin of floor(2y) / 2 and ``lut[floor(2y) - lo]`` is exactly
    ``grid[searchsorted(mid, y, right=True)]`` (the search dominated the clip searches). None
    for a non-integer grid or one spanning more than 2^20. The table lives on ``device``."""
    if any(v != int(v) for v in grid) or grid[-1] - grid[0] > 2**20:
        return None
    g = torch.tensor(grid, dtype=torch.float64, device=device)
    mid = (g[1:] + g[:-1]) / 2
    lo, hi = 2 * int(grid[0]) - 1, 2 * int(grid[-1])  # beyond: saturated to the ends
    t = torch.arange(lo, hi + 1, dtype=torch.float64, device=device) / 2
    return lo, torch.tensor(grid, device=device)[torch.searchsorted(mid, t, right=True)]


def _best_clip(x: torch.Tensor, grid: torch.Tensor, ratios, rounding: str):
    """x: [groups, elements] float64 -> (values, scales[groups], mse[groups]) of the best r."""
    amax = x.abs().amax(dim=1, keepdim=True)
    amax = torch.where(amax > 0, amax, torch.ones_like(amax))  # all-zero group: any scale works
    # alpha maps to the largest positive grid value: signed int's extra negative level (-8 of
    # int4) lies beyond -alpha, as in the reference (its grid is normalised by max(values)).
    gmax = float(grid.max())
    best = None
    for r in ratios:
        s = amax * r / gmax
        v = quantize_to_grid(x / s, grid, rounding)
        err = ((v * s - x) ** 2).sum(dim=1)
        if best is None:
            best = [v, s, err]
        else:
            better = err < best[2]  # strict: ties keep the smaller ratio (searched first)
            best[0] = torch.where(better[:, None], v, best[0])
            best[1] = torch.where(better[:, None], s, best[1])
            best[2] = torch.where(better, err, best[2])
    return best[0], best[1].squeeze(1), best[2]


def quantize_ant(
    x: torch.Tensor,
    bits: int = 4,
    *,
    role: str = "weight",
    mode: str = "int,pot,flint",
    signed: bool | None = None,
    ratios: tuple[float, ...] | None = None,
    rounding: str = "half_up",
) -> AntQuant:
    """Quantize ``x`` with the ANT type that gives the lowest MSE.

    ``role="weight"``: one scale per output channel (dim 0); ``"activation"``: one per tensor
    (pass the calibration batch; reuse the returned type and scale for later inputs).
    ``signed=None`` decides from the data: signed if any value is negative.
    ``ratios=None``: :data:`DEFAULT_RATIOS` (:data:`WIDE_RATIOS` above 6 bits), as the reference.
    """
    if role not in ("weight", "activation"):
        raise ValueError(f"role must be 'weight' or 'activation', not {role!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if ratios is None:
        ratios = DEFAULT_RATIOS if bits <= 6 else WIDE_RATIOS
    if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
        raise ValueError(f"ratios must be non-empty, finite and positive, not {ratios!r}")
    check_finite(x, "x")
    if x.numel() == 0:
        raise ValueError("cannot quantize an empty tensor")
    if role == "weight" and x.dim() < 2:
        raise ValueError(f"weights need at least 2 dimensions [out, ...], not {tuple(x.shape)}")
    negative = bool((x < 0).any())
    signed = negative if signed is None else signed
    if not signed and negative:
        raise ValueError("unsigned quantization cannot hold negative values; use signed=True")
    kinds = ("int",) if bits > 6 else MODES[mode]
    g = (
        x.to(torch.float64).reshape(x.shape[0], -1)
        if role == "weight"
        else x.to(torch.float64).reshape(1, -1)
    )
    results = {}
    for kind in kinds:
        t = AntType(kind, bits, signed)
        v, s, err = _best_clip(g, t.grid(), ratios, rounding)
        results[kind] = (t, v, s, float(err.sum()))
    # An exact tie goes to the first in TIE_ORDER (only the label differs: the grids coincide).
    best = min(sorted(kinds, key=TIE_ORDER.index), key=lambda k: results[k][3])
    t, v, s, _ = results[best]
    values = v.reshape(x.shape)
    return AntQuant(
        codes=t.encode(values),
        values=values,
        type=t,
        scales=s,
        dequant=(v * s[:, None]).reshape(x.shape).to(x.dtype),
        mse={k: results[k][3] for k in kinds},
    )


QUANTIZABLE = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


class LayerReport(NamedTuple):
    weight_type: str
    weight_mse: float
    act_type: str | None
    act_scale: float | None
    codes: torch.Tensor | None = None  # with keep_codes: the weight codes and channel scales
    scales: torch.Tensor | None = None


def _act_fake_quant(t: AntType, scale: float, rounding: str):
    grid = t.grid()

    def hook(module, args):
        x = args[0]
        q = quantize_to_grid(x.detach() / scale, grid, rounding).to(x.dtype) * scale
        return (q,) + tuple(args[1:])

    return hook


def quantize_module(
    model: torch.nn.Module,
    bits: int = 4,
    *,
    calib: torch.Tensor | Callable[[torch.nn.Module], object] | None = None,
    act_bits: int | None = None,
    mode: str = "int,pot,flint",
    rounding: str = "half_up",
    ratios: tuple[float, ...] | None = None,
    include=None,
    progress=None,
    keep_codes: bool = False,
    inplace: bool = False,
) -> tuple[torch.nn.Module, dict[str, LayerReport]]:
    """ANT-quantize every Linear / Conv layer of a copy of ``model`` (those
    ``include(name, module)`` selects; ``progress(iterable)`` wraps the layer loop;
    ``keep_codes`` keeps each layer's weight codes and scales in its report).

    Weights: adaptive type per layer with per-output-channel clip search; the copy holds the
    dequantized weights. With ``calib`` (a calibration batch for ``model``'s forward, or
    ``calib(model)`` running calibration forwards), each such layer's input activation also
    gets a per-tensor type, scale and signedness from every calibration input it saw,
    and the copy fake-quantizes it on every later forward (a pre-hook). Returns the copy and a
    report per layer name.
    """
    import copy

    layers = {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, QUANTIZABLE) and (include is None or include(n, m))
    }
    if not layers:
        raise ValueError("model has no Linear or Conv layers to quantize (or include selects none)")
    qmodel = model if inplace else copy.deepcopy(model)  # inplace: large models
    qlayers = {n: m for n, m in qmodel.named_modules() if n in layers}
    acts: dict[str, list[torch.Tensor]] = {}
    if calib is not None and not callable(calib):
        check_finite(calib, "calib")
    if calib is not None:
        handles = [
            m.register_forward_pre_hook(
                lambda mod, args, name=n: acts.setdefault(name, []).append(
                    args[0].detach().reshape(-1)
                )
            )
            for n, m in layers.items()
        ]
        try:
            with torch.no_grad():
                calib(model) if callable(calib) else model(calib)
        finally:
            for h in handles:
                h.remove()
    report = {}
    for name in progress(list(qlayers)) if progress else qlayers:
        layer = qlayers[name]
        wq = quantize_ant(
            layer.weight.detach(), bits, role="weight", mode=mode, ratios=ratios, rounding=rounding
        )
        with torch.no_grad():
            layer.weight.copy_(wq.dequant)
        a_type = a_scale = None
        if name in acts:
            aq = quantize_ant(
                torch.cat(acts.pop(name)),
                act_bits or bits,
                role="activation",
                mode=mode,
                ratios=ratios,
                rounding=rounding,
            )
            a_type, a_scale = aq.type, float(aq.scales[0])
            layer.register_forward_pre_hook(_act_fake_quant(a_type, a_scale, rounding))
        report[name] = LayerReport(
            wq.type.name, wq.mse[wq.type.kind], a_type.name if a_type else None, a_scale,
            *((wq.codes, wq.scales) if keep_codes else ()),
        )  # fmt: skip
    return qmodel, report
