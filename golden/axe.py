"""AXE: accumulator-aware post-training quantization (docs/axe.md).

Layer quantizers (OPTQ/GPTQ and GPFQ) whose integer weights provably never overflow a P-bit
accumulator for any input in range, in any order, per tile of T input columns (multi-stage) or
for the whole row (single stage, T = K). Notation follows the spec: inputs x_i in [mu, nu],
integer weights q_i of M bits, symmetric accumulator range [-(2^(P-1)-1), 2^(P-1)-1]; per
channel and tile, p = sum of positive q_i and n = sum of negative q_i.

The guarantee is ``nu*p + mu*n <= 2^(P-1)-1`` and ``mu*p + nu*n >= -(2^(P-1)-1)``;
:func:`worst_case` computes its left-hand sides exactly, in integers.
"""

from __future__ import annotations

import torch

from .calib import accumulate_hessians, capture_linear_inputs, linear_names
from .gptq import asymmetric_target, check_strength, column_order, gptq_loop
from .numerics import IntFormat, check_finite, check_int64, datatype_bound

__all__ = [
    "ALGORITHMS",
    "input_range",
    "worst_case",
    "guarantee_holds",
    "a2q_l1_bound",
    "a2q_plus_l1_bound",
    "naive_weight_bits",
    "soft_threshold",
    "input_scale",
    "token_scales",
    "quantize_inputs",
    "quantize_layer",
    "AxeLinear",
    "quantize_model",
]

ALGORITHMS = ("gptq", "gpfq")


def input_range(input_bits: int, input_signed: bool) -> tuple[int, int]:
    """(mu, nu): the integer input range of an N-bit input."""
    if not isinstance(input_bits, int) or input_bits < 1:
        raise ValueError(f"input_bits must be a positive int, not {input_bits!r}")
    if input_signed:
        if input_bits < 2:  # -1..0: no positive level, so no scale maps max |x| onto it
            raise ValueError(f"signed inputs need at least 2 bits, not {input_bits}")
        return -(2 ** (input_bits - 1)), 2 ** (input_bits - 1) - 1
    return 0, 2**input_bits - 1


def _tiles(k: int, tile: int | None) -> int:
    if tile is None:
        return 1
    if not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive int or None, not {tile!r}")
    return -(-k // tile)


def worst_case(
    q_int: torch.Tensor, input_bits: int, input_signed: bool, tile: int | None = None
) -> torch.Tensor:
    """Exact worst |partial sum| per output channel and tile: ``[out, n_tiles]`` int64.

    ``max(nu*p + mu*n, -(mu*p + nu*n))``: the extremes of the tile's dot product over all
    admissible inputs (x = nu where q > 0 and mu where q < 0, or the reverse). Every partial sum
    of a subset of the terms lies within them too.
    """
    check_int64(q_int, "q_int")
    if q_int.dim() != 2:
        raise ValueError(f"q_int must be [out, in], not {tuple(q_int.shape)}")
    mu, nu = input_range(input_bits, input_signed)
    out, k = q_int.shape
    n_tiles = _tiles(k, tile)
    t = k if tile is None else tile
    padded = torch.zeros(out, n_tiles * t, dtype=torch.int64, device=q_int.device)
    padded[:, :k] = q_int
    g = padded.reshape(out, n_tiles, t)
    p = g.clamp(min=0).sum(-1)
    n = g.clamp(max=0).sum(-1)
    return torch.maximum(nu * p + mu * n, -(mu * p + nu * n))


def guarantee_holds(
    q_int: torch.Tensor,
    input_bits: int,
    input_signed: bool,
    acc_bits: int,
    tile: int | None = None,
) -> bool:
    """True when no channel/tile can leave [-(2^(P-1)-1), 2^(P-1)-1] for any input."""
    return bool(
        (worst_case(q_int, input_bits, input_signed, tile) <= 2 ** (acc_bits - 1) - 1).all()
    )


def a2q_l1_bound(acc_bits: int, input_bits: int, input_signed: bool) -> float:
    """A2Q: ||q||_1 <= (2^(P-1) - 1) * 2^(1[x signed] - N) suffices."""
    return (2 ** (acc_bits - 1) - 1) * 2.0 ** (int(input_signed) - input_bits)


def a2q_plus_l1_bound(acc_bits: int, input_bits: int) -> float:
    """A2Q+ (zero-centred weights): ||q||_1 <= (2^P - 2) / (2^N - 1) suffices."""
    return (2**acc_bits - 2) / (2**input_bits - 1)


def naive_weight_bits(acc_bits: int, k: int, input_bits: int, input_signed: bool) -> int | None:
    """The "naive bit-width" baseline: the largest weight width M (signed, 2..16) whose
    data-type bound for K terms fits ``acc_bits``; None if not even 2 bits fit."""
    a_fmt = IntFormat(input_bits, input_signed)
    best = None
    for m in range(2, 17):
        if datatype_bound(k, IntFormat(m, True), a_fmt) <= acc_bits:
            best = m
    return best


def soft_threshold(v: torch.Tensor, radius: float) -> torch.Tensor:
    """Theta of the Euclidean projection of each row of ``v`` onto the l1 ball of ``radius``.

    Sort |v| descending (u), find the largest rho (1-based) with
    ``u_rho * rho > sum_{j<=rho} u_j - radius``, theta = ``(sum_{j<=rho} u_j - radius) / rho``;
    0 for rows already inside the ball.
    """
    u = v.abs().sort(dim=-1, descending=True).values.to(torch.float64)
    css = u.cumsum(-1)
    rho = torch.arange(1, u.shape[-1] + 1, dtype=torch.float64, device=u.device)
    cond = u * rho > css - radius
    idx = (cond * rho).argmax(-1, keepdim=True)  # the largest rho that satisfies cond
    theta = (css.gather(-1, idx) - radius) / (idx + 1).to(torch.float64)
    inside = css[..., -1:] <= radius
    return torch.where(inside, torch.zeros_like(theta), theta.clamp(min=0)).squeeze(-1)


def input_scale(amax: float, input_bits: int, input_signed: bool) -> float:
    """Per-tensor input scale: the calibration max |x| maps to nu (1.0 for an all-zero input)."""
    _, nu = input_range(input_bits, input_signed)
    return amax / nu if amax > 0 else 1.0


def token_scales(x: torch.Tensor, input_bits: int, input_signed: bool) -> torch.Tensor:
    """Per-token (per-row) input scales ``[rows, 1]``: each row's max |x| maps to nu (1.0 for
    an all-zero row). The integer inputs stay N-bit, so the accumulator guarantee is unchanged;
    the hardware multiplies each output row by its scale after the integer GEMM."""
    _, nu = input_range(input_bits, input_signed)
    amax = x.abs().amax(dim=-1, keepdim=True)
    return torch.where(amax > 0, amax / nu, torch.ones_like(amax))


def quantize_inputs(
    x: torch.Tensor,
    input_bits: int,
    input_signed: bool,
    scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Integer quantization of calibration inputs, returned dequantized (what the hardware
    sees): round half to even, clamp to [mu, nu]. ``scale``: a per-tensor float, or per-row
    scales ``[rows, 1]`` (:func:`token_scales`); default :func:`input_scale` of ``x``'s own
    max |x|."""
    mu, nu = input_range(input_bits, input_signed)
    if not input_signed and bool((x < 0).any()):
        raise ValueError("unsigned inputs cannot be negative; use input_signed=True")
    s = input_scale(float(x.abs().max()), input_bits, input_signed) if scale is None else scale
    if not bool(torch.all(torch.as_tensor(s, device=x.device) > 0)):
        raise ValueError(f"input scale must be positive, not {s!r}")
    return torch.round(x / s).clamp(mu, nu) * s


class _Constraint:
    """Per-channel, per-tile budgets: the soft threshold and the strict local clamp."""

    def __init__(self, v: torch.Tensor, acc_bits: int, mu: int, nu: int, tile: int | None):
        out, k = v.shape
        self.mu, self.nu = mu, nu
        self.lim = 2 ** (acc_bits - 1) - 1
        self.t = k if tile is None else tile
        n_tiles = _tiles(k, tile)
        self.p = torch.zeros(out, n_tiles, dtype=torch.int64, device=v.device)
        self.n = torch.zeros_like(self.p)
        # Soft global threshold, once per channel and tile on the zero-centred v = w / s.
        radius = (2**acc_bits - 2) / (nu - mu)
        self.theta = torch.zeros(out, n_tiles, dtype=torch.float64, device=v.device)
        for j in range(n_tiles):
            seg = v[:, j * self.t : (j + 1) * self.t].to(torch.float64)
            seg = seg - seg.mean(dim=1, keepdim=True)
            self.theta[:, j] = soft_threshold(seg, radius)

    def apply(self, a: torch.Tensor, col: int) -> torch.Tensor:
        """Soft threshold then strict clamp of candidate ``a`` (integer units) for column ``col``
        (original index)."""
        j = col // self.t
        a = a.to(torch.float64)
        a = torch.sign(a) * (a.abs() - self.theta[:, j]).clamp(min=0)
        p, n = self.p[:, j].to(torch.float64), self.n[:, j].to(torch.float64)
        mu, nu, lim = self.mu, self.nu, self.lim
        u = (lim - nu * p - mu * n) / nu
        low = (-lim - mu * p - nu * n) / nu
        if mu < 0:
            u = torch.minimum(u, (-lim - mu * p - nu * n) / mu)
            low = torch.maximum(low, (lim - nu * p - mu * n) / mu)
        u, low = u - 0.5, low + 0.5
        return torch.minimum(torch.maximum(a, low.clamp(max=0)), u.clamp(min=0))

    def update(self, q: torch.Tensor, col: int) -> None:
        """Budgets follow the *rounded integers* (never a truncated float)."""
        j = col // self.t
        self.p[:, j] += q.clamp(min=0)
        self.n[:, j] += q.clamp(max=0)


def _check_layer_args(weight, inputs, weight_bits, input_bits, acc_bits, algorithm):
    check_finite(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight must be [out, in], not {tuple(weight.shape)}")
    if inputs is not None:  # else a Gram matrix (checked by the GPTQ loop)
        check_finite(inputs, "inputs")
    if inputs is not None and (inputs.dim() != 2 or inputs.shape[1] != weight.shape[1]):
        raise ValueError(
            f"inputs must be [samples, in={weight.shape[1]}], not {tuple(inputs.shape)}"
        )
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    if not isinstance(weight_bits, int) or not 2 <= weight_bits <= 16:
        raise ValueError(f"weight_bits must be in 2..16, not {weight_bits!r}")
    if input_bits is None:  # weight-only: float inputs, so no accumulator to bound
        if acc_bits is not None:
            raise ValueError("acc_bits needs integer inputs: give input_bits")
    elif not isinstance(input_bits, int) or not 1 <= input_bits <= 16:
        raise ValueError(f"input_bits must be in 1..16 or None, not {input_bits!r}")
    if acc_bits is not None and (not isinstance(acc_bits, int) or not 2 <= acc_bits <= 62):
        raise ValueError(f"acc_bits must be in 2..62 or None, not {acc_bits!r}")


def quantize_layer(
    weight: torch.Tensor,
    inputs: torch.Tensor,
    *,
    weight_bits: int,
    input_bits: int,
    input_signed: bool,
    acc_bits: int | None,
    tile: int | None = None,
    algorithm: str = "gptq",
    act_order: bool = False,
    block_size: int = 128,
    damp: float = 0.01,
    input_scale: float | torch.Tensor | None = None,
    gram: torch.Tensor | None = None,
    cross: torch.Tensor | None = None,
    asym: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize one layer with OPTQ/GPTQ or GPFQ, with AXE's overflow guarantee.

    ``weight`` [out, in] (nn.Linear layout); ``inputs`` [samples, in] float calibration rows,
    integer-quantized here to ``input_bits`` (what the hardware sees; None: weight-only, the
    float inputs as they are, no accumulator constraint). ``acc_bits`` = P (P_I
    with ``tile`` = T for multi-stage; ``tile=None`` is single stage); ``acc_bits=None`` gives
    the plain algorithm. Scales are per output channel (symmetric, max|w| / (2^(M-1)-1)), fixed
    before the loop. ``input_scale``: the per-tensor input scale, or per-row scales ``[samples, 1]``
    (default: per tensor from ``inputs``). ``gram``: instead of ``inputs`` (None), the Gram
    matrix X~^T X~ [in, in] of the *already integer-quantized* inputs over many more rows
    (golden.calib.accumulate_hessians); GPTQ only, since GPFQ also needs the float inputs.
    ``cross`` with ``asym`` > 0 (GPTQ with ``gram`` only): asymmetric calibration, GPTQ (and
    AXE's soft threshold) on golden.gptq.asymmetric_target's shifted weights; the scales stay
    those of ``weight``. Returns ``(q_int [out, in] int64, scale [out] float64)``.
    """
    _check_layer_args(weight, inputs, weight_bits, input_bits, acc_bits, algorithm)
    # float32 as the published GPTQ (golden.gptq); the scales, budgets and GPFQ stay float64
    w = weight.detach().to(torch.float32 if algorithm == "gptq" else torch.float64).clone()
    out, k = w.shape
    qmax = 2 ** (weight_bits - 1) - 1
    qmin = -qmax - 1
    amax = weight.detach().abs().amax(dim=1).to(torch.float64)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    mu, nu = input_range(input_bits, input_signed) if input_bits is not None else (0, 0)
    if (inputs is None) == (gram is None):
        raise ValueError("give the calibration inputs or their Gram matrix, not both")
    if gram is not None and algorithm != "gptq":
        raise ValueError("a Gram matrix calibrates gptq only: gpfq needs the inputs themselves")
    if asym and (gram is None or cross is None):
        raise ValueError("asym > 0 needs the Gram matrix and the cross matrix (gram=True)")
    if asym:
        w = asymmetric_target(w, gram, cross, asym, damp)
    xq = None
    if inputs is not None and input_bits is None:
        xq = inputs.detach().to(torch.float64)
    elif inputs is not None:
        xq = quantize_inputs(inputs.detach().to(torch.float64), input_bits, input_signed,
                             input_scale)  # fmt: skip
    cons = _Constraint(w / scale[:, None], acc_bits, mu, nu, tile) if acc_bits else None

    def step(a: torch.Tensor, col: int) -> torch.Tensor:
        if cons is not None:
            a = cons.apply(a, col)
        q = torch.round(a).clamp(qmin, qmax).to(torch.int64)
        if cons is not None:
            cons.update(q, col)
        return q

    if algorithm == "gptq":
        q = _gptq(w, xq, scale, step, act_order, block_size, damp, gram)
    else:
        x = inputs.detach().to(torch.float64)
        q = _gpfq(w, x, xq, scale, step, act_order)
    return q, scale


def _gptq(w, xq, scale, step, act_order, block_size, damp, gram=None):
    """OPTQ/GPTQ through the shared loop (golden.gptq), on integer units ``w / scale``."""
    q = torch.zeros(w.shape, dtype=torch.int64, device=w.device)

    def quant_col(wc: torch.Tensor, col: int) -> torch.Tensor:
        q[:, col] = step(wc / scale, col)
        return (q[:, col] * scale).to(wc.dtype)

    gptq_loop(w, xq, quant_col, act_order=act_order, block_size=block_size, damp=damp, gram=gram)
    return q


def _gpfq(w, x, xq, scale, step, act_order):
    """GPFQ: a_t = (G_tt w_t + sum_{j<t} G_tj w_j - sum_{j<t} H_tj q_j s) / H_tt, with
    G = X~ X^T and H = X~ X~^T (X~ quantized, X float inputs), in processing order."""
    out, k = w.shape
    g = xq.T @ x  # [in, in]: G_tj = <x~_t, x_j>
    h = xq.T @ xq
    perm = column_order(torch.diag(h), act_order)
    acc = torch.zeros(out, k, dtype=torch.float64, device=w.device)  # sum over processed j
    q = torch.zeros(out, k, dtype=torch.int64, device=w.device)
    for t in perm.tolist():
        htt = h[t, t]
        # a dead input (htt = 0): its weight cannot matter, so 0; a select, not a branch, so the
        # host never waits for the device per column
        a = torch.where(htt > 0, (g[t, t] * w[:, t] + acc[:, t]) / htt / scale, 0.0)
        qt = step(a, t)
        q[:, t] = qt
        acc += w[:, t : t + 1] * g[:, t][None, :] - (qt * scale)[:, None] * h[:, t][None, :]
    return q


class AxeLinear(torch.nn.Module):
    """A Linear layer as the integer hardware computes it: inputs quantized to N-bit integers
    with the calibrated per-tensor scale, or (``in_scale=None``) with dynamic per-token scales
    (round half to even, clamp to [mu, nu]), integer
    weights ``q_int`` with per-channel scales, an integer dot product (AXE guarantees that each
    tile's partial sums fit P_I bits, so it is exact), rescaled, plus the float bias."""

    def __init__(
        self,
        q_int: torch.Tensor,
        w_scale: torch.Tensor,
        in_scale: float | None,
        input_bits: int,
        input_signed: bool,
        bias: torch.Tensor | None,
        acc_bits: int | None,
        tile: int | None,
    ):
        super().__init__()
        # the codes in the narrowest integer type that holds them (int8 for <= 8-bit weights):
        # a quantized model is then smaller than its float original; ``q_int`` gives int64
        lo, hi = (int(q_int.min()), int(q_int.max())) if q_int.numel() else (0, 0)
        small = next(t for t in (torch.int8, torch.int16, torch.int32, torch.int64)
                     if torch.iinfo(t).min <= lo and hi <= torch.iinfo(t).max)  # fmt: skip
        self.register_buffer("codes", q_int.to(small))
        self.register_buffer("w_scale", w_scale.to(torch.float32))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.in_scale, self.input_bits, self.input_signed = in_scale, input_bits, input_signed
        self.acc_bits, self.tile = acc_bits, tile
        self.in_features, self.out_features = q_int.shape[1], q_int.shape[0]

    @property
    def q_int(self) -> torch.Tensor:
        """The integer weight codes [out, in], int64."""
        return self.codes.to(torch.int64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_bits is None:  # weight-only: float inputs, dequantized weights
            w = self.codes.to(torch.float32) * self.w_scale[:, None]
            return torch.nn.functional.linear(x, w.to(x.dtype), self.bias)
        mu, nu = input_range(self.input_bits, self.input_signed)
        s_in = self.in_scale
        if s_in is None:  # dynamic per-token scales
            s_in = token_scales(x.detach(), self.input_bits, self.input_signed)
        xi = torch.round(x / s_in).clamp(mu, nu)
        # Integer-valued operands: float32 products and sums are exact below 2^24, which
        # covers every P_I <= 24 tile; wider sums only lose float rounding, as a dequantized
        # output would anyway.
        y = (xi.to(torch.float32) @ self.codes.T.to(torch.float32)) * (s_in * self.w_scale)
        y = y if self.bias is None else y + self.bias
        return y.to(x.dtype)  # a bfloat16 / float16 model keeps its dtype (float32: no-op)

    def extra_repr(self) -> str:
        if self.input_bits is None:
            return f"in={self.in_features}, out={self.out_features}, float inputs"
        return (
            f"in={self.in_features}, out={self.out_features}, "
            f"N={self.input_bits}{'s' if self.input_signed else 'u'}"
            f"{'/token' if self.in_scale is None else ''}, "
            f"P_I={self.acc_bits}, T={self.tile}"
        )


@torch.no_grad()
def quantize_model(
    model: torch.nn.Module,
    calibrate,
    *,
    weight_bits: int,
    input_bits: int,
    acc_bits: int | None,
    tile: int | None = None,
    algorithm: str = "gptq",
    act_order: bool = False,
    include=None,
    max_rows: int = 2048,
    input_granularity: str = "tensor",
    gram: bool = False,
    row_weight=None,
    progress=None,
    calib_cache: dict | None = None,
    capture: str = "float",
    inplace: bool = False,
    asym: float = 0.0,
) -> torch.nn.Module:
    """AXE on every Linear layer of a copy of ``model``, with real calibration data.

    ``calibrate(m)`` runs the calibration forward passes on ``m`` (e.g. held-out text).
    ``capture="float"``: the inputs of every selected layer are captured in one pass over the
    float model; ``"block"`` / ``"sequential"``: stage by stage on the partly quantized copy
    (golden.calib.quantize_sequential: each block's layers, or each group of layers reading the
    same input, calibrate on the outputs of the blocks already quantized). Per layer: at most
    ``max_rows`` rows (an even stride over all calls; the input scale and the signedness come
    from *all* rows: unsigned when no input was negative). Each layer is then quantized by
    :func:`quantize_layer` on its integer-quantized inputs (``act_order``: in act-order) and
    replaced by an :class:`AxeLinear`. ``include(name, module)`` selects layers (default: every
    Linear). ``acc_bits=None`` gives the plain algorithm. ``input_granularity="token"``: dynamic
    per-token input scales (calibration inputs quantized the same way) instead of the
    calibrated per-tensor scale. ``gram=True`` (GPTQ only): a second calibration pass, once
    each layer's signedness and scale are known, accumulates the Gram matrix of its
    integer-quantized inputs over *every* row (golden.calib.accumulate_hessians), so the
    Hessian sees all calibration tokens instead of ``max_rows``; the first pass then only
    gathers the statistics; ``row_weight`` weights its rows (golden.calib). GPFQ's float
    inputs X are, with a sequential capture, the partly quantized model's (X~ their integer
    version). ``progress(iterable, total)`` wraps the loop. ``calib_cache`` (float capture
    only): a dict the caller keeps between calls on the same model, ``calibrate``, ``include``
    and ``row_weight``; the captured statistics and Gram matrices are stored there per (input
    bits, granularity, gram, max_rows) and reused (plain GPTQ and AXE-GPTQ at the same input
    bits see the same integer inputs). ``asym`` > 0 (GPTQ with ``gram``): asymmetric
    calibration (golden.gptq.asymmetric_target); with a block list and a block or sequential
    capture the float model's inputs come from a float stream run beside the quantized one
    (golden.calib.quantize_sequential ``paired``), elsewhere from the layer's own float inputs.
    """
    import copy

    from .calib import CAPTURES, quantize_sequential

    if input_granularity not in ("tensor", "token"):
        raise ValueError(
            f"input_granularity must be 'tensor' or 'token', not {input_granularity!r}"
        )
    if capture not in CAPTURES:
        raise ValueError(f"capture must be one of {', '.join(CAPTURES)}, not {capture!r}")
    if gram and algorithm != "gptq":
        raise ValueError("gram=True calibrates gptq only: gpfq needs the inputs themselves")
    check_strength("asym", asym)
    if asym and not gram:
        raise ValueError("asym > 0 needs gram=True (GPTQ from Gram matrices)")
    if input_bits is None and acc_bits is not None:
        raise ValueError("acc_bits needs integer inputs: give input_bits")
    per_tensor = input_granularity == "tensor"
    names = linear_names(model, include)
    qmodel = model if inplace else copy.deepcopy(model)  # inplace: large models
    layer_args = dict(
        weight_bits=weight_bits, input_bits=input_bits, acc_bits=acc_bits, tile=tile,
        algorithm=algorithm, act_order=act_order, per_tensor=per_tensor, gram=gram, asym=asym,
    )  # fmt: skip

    if capture != "float":

        def stage(stage_names: list[str], run) -> None:
            captured, grams = _calibrate(
                qmodel, None, stage_names, input_bits, per_tensor, gram, max_rows, row_weight,
                run, cross=bool(asym),
            )  # fmt: skip
            for name in stage_names:
                _replace(qmodel, name, captured.get(name), grams.get(name), **layer_args)

        quantize_sequential(qmodel, calibrate, names, stage, capture=capture, progress=progress,
                            paired=bool(asym))  # fmt: skip
        return qmodel
    key = ("axe", input_bits, input_granularity, gram, max_rows, bool(asym))
    if calib_cache is not None and key in calib_cache:
        captured, grams = calib_cache[key]
    else:
        captured, grams = _calibrate(
            model, calibrate, names, input_bits, per_tensor, gram, max_rows, row_weight,
            cross=bool(asym),
        )  # fmt: skip
        if calib_cache is not None:
            calib_cache[key] = (captured, grams)
    it = progress(names, len(names)) if progress else names
    for name in it:
        _replace(qmodel, name, captured.get(name), grams.get(name), **layer_args)
        if calib_cache is None:  # free each layer's calibration as soon as it is used
            captured.pop(name, None)
            grams.pop(name, None)
    return qmodel


def _replace(qmodel, name, cap, gram_rows, *, weight_bits, input_bits, acc_bits, tile,
             algorithm, act_order, per_tensor, gram, asym) -> None:  # fmt: skip
    """Quantize layer ``name`` of ``qmodel`` from its calibration ``cap`` (and Gram matrix) and
    put the :class:`AxeLinear` in its place."""
    qmods = dict(qmodel.named_modules())
    x = None if gram else cap.rows
    signed = cap.negative if cap is not None else True
    weight_only = input_bits is None
    s_in = input_scale(cap.amax, input_bits, signed) if per_tensor and not weight_only else None
    lin = qmods[name]
    if gram or weight_only:
        in_scale = None
    elif per_tensor:
        in_scale = s_in
    else:
        in_scale = token_scales(x, input_bits, signed)
    cross = gram_rows[2] if gram and asym else None
    q, s = quantize_layer(
        lin.weight, x, weight_bits=weight_bits, input_bits=input_bits, input_signed=signed,
        acc_bits=acc_bits, tile=tile, algorithm=algorithm, act_order=act_order,
        input_scale=in_scale, gram=gram_rows[0] if gram else None,
        cross=cross, asym=asym if cross is not None else 0.0,  # None: C = 0, no shift
    )  # fmt: skip
    new = AxeLinear(q, s, s_in, input_bits, signed, lin.bias, acc_bits, tile)
    parent, _, attr = name.rpartition(".")
    setattr(qmods[parent] if parent else qmodel, attr, new)


def _calibrate(model, calibrate, names, input_bits, per_tensor, gram, max_rows, row_weight,
               run=None, cross=False):  # fmt: skip
    """The calibration of :func:`quantize_model`: per-layer captured inputs (or only their
    statistics) and, with ``gram``, the Gram matrices of the integer inputs. ``run``: a stage
    runner of golden.calib.quantize_sequential instead of ``calibrate(model)``."""
    if gram and input_bits is None:  # weight-only: the float inputs' Gram matrices, one pass
        return {}, accumulate_hessians(model, calibrate, names, None, row_weight, run=run,
                                       cross=cross)  # fmt: skip
    captured = capture_linear_inputs(model, calibrate, names, 1 if gram else max_rows, run=run)
    grams = {}
    if gram:

        def to_hw(name: str, x: torch.Tensor) -> torch.Tensor:
            neg = captured[name].negative
            if per_tensor:
                s = input_scale(captured[name].amax, input_bits, neg)
            else:
                s = token_scales(x, input_bits, neg)
            return quantize_inputs(x, input_bits, neg, s)

        def key(name: str) -> tuple:  # what to_hw depends on besides the rows
            return captured[name].negative, captured[name].amax

        grams = accumulate_hessians(model, calibrate, names, to_hw, row_weight, run=run,
                                    transform_key=key, cross=cross)  # fmt: skip
    return captured, grams
