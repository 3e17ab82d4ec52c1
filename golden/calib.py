"""Calibration capture for whole-model quantizers (AXE, MicroScopiQ).

The caller's calibration forwards record, for every selected Linear layer, an even sample of its
input rows in bounded memory plus statistics over *all* rows (max |x|, whether any input was
negative); or, for GPTQ on many windows, the Gram matrix X^T X of every row
(:func:`accumulate_hessians`), one [in, in] matrix per layer. Either in one pass over the float
model (``capture="float"``), or stage by stage on the partly quantized model
(:func:`quantize_sequential`: GPTQ's sequential calibration, block by block).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch

from .numerics import check_finite

__all__ = [
    "LayerInputs",
    "linear_names",
    "capture_linear_inputs",
    "accumulate_hessians",
    "CAPTURES",
    "find_blocks",
    "quantize_sequential",
]


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


def _run(model, calibrate, names, hook, run, float_inputs=None) -> None:
    if run is None:
        _run_hooked(model, calibrate, names, hook)
    elif float_inputs is None:
        run(hook)
    else:
        run(hook, float_inputs=float_inputs)


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
    run: Callable | None = None,
) -> dict[str, LayerInputs]:
    """An even sample of at most ``max_rows`` input rows of each named layer, and statistics
    over all rows. ``run(make_hook)``: run the calibration forwards with these hooks instead of
    ``calibrate(model)`` (a stage of :func:`quantize_sequential`)."""
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
            idx = torch.arange(st["seen"], st["seen"] + x.shape[0], device=x.device)
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

    _run(model, calibrate, names, hook, run)
    out = {}
    for name in names:
        st = stats[name]
        if not st["rows"]:
            raise ValueError(f"calibration never reached layer {name!r}")
        x = torch.cat(st["rows"])
        if x.shape[0] > max_rows:
            x = x[torch.linspace(0, x.shape[0] - 1, max_rows, device=x.device).round().long()]
        out[name] = LayerInputs(x, st["amax"], st["neg"], st["seen"])
    return out


@torch.no_grad()
def accumulate_hessians(
    model: torch.nn.Module,
    calibrate: Callable[[torch.nn.Module], object],
    names: list[str],
    transform: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    row_weight: Callable[[torch.Tensor], torch.Tensor] | None = None,
    run: Callable | None = None,
    transform_key: Callable[[str], object] | None = None,
    cross: bool = False,
) -> dict[str, tuple]:
    """``{name: (X~^T X~ [in, in] float64, rows)}`` over *every* input row the calibration
    forwards give each selected Linear layer, where ``X~ = transform(name, X)`` (e.g. the
    integer-quantized inputs the hardware sees; default the float inputs). Memory is one
    [in, in] matrix per layer however many rows there are, so GPTQ can calibrate on many
    windows. The transform must act row by row (per-tensor constants fixed beforehand).
    ``row_weight(x)``: a weight >= 0 per row of the layer input ``x`` [..., in] (shape [...]),
    giving ``sum_i a_i x~_i x~_i^T``: the rows whose output error costs the model more (an
    attention sink's value, see docs/evaluation.md) count more. ``run``: as in
    :func:`capture_linear_inputs`. Layers that read the same input tensor in a row (q/k/v,
    gate/up) share one product when there is no transform, or when ``transform_key(name)``
    says that their transforms are the same. ``cross=True``: also ``C = sum_i a_i (x_i -
    x~_i) x~_i^T`` [in, in] (golden.gptq.asymmetric_target), returned third, where ``x_i`` is
    the float model's input of the same row when the stage runner pairs it
    (:func:`quantize_sequential`'s blocks) and else the layer's own float input (so ``C`` holds
    the input quantization error only). ``C`` is None where it is exactly zero (no transform
    and no paired float input): no [in, in] matrix is kept for it."""
    acc: dict[str, list] = {n: [None, 0, None, 0] for n in names}  # H, rows, C, rows in C
    last: list = [None, None, None, 0, None, None]  # input, transform key, product, rows, cross,
    # float input
    paired: dict[str, torch.Tensor] | None = {} if cross else None

    def add(name: str, h: torch.Tensor, rows: int, c: torch.Tensor | None) -> None:
        st = acc[name]
        st[0] = h.clone() if st[0] is None else st[0].add_(h)
        st[1] += rows
        if c is not None:
            st[2] = c.clone() if st[2] is None else st[2].add_(c)
            st[3] += rows

    def hook(name):
        def f(_m, args, _out):
            key = transform_key(name) if transform_key else (None if transform is None else name)
            xf = paired.get(name) if paired is not None else None
            if args[0] is last[0] and key == last[1] and xf is last[5]:  # same rows, transform:
                add(name, last[2], last[3], last[4])  # the same products
                return
            x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
            check_finite(x, f"calibration input of {name}")
            xq = transform(name, x) if transform is not None else x
            c = None
            zero = xf is None and transform is None  # x - x~ = 0: C stays None
            if cross and not zero:
                ref = x if xf is None else xf.detach().reshape(x.shape).to(torch.float64)
                dx = ref - xq
            if row_weight is not None:
                a = row_weight(args[0].detach()).reshape(-1).to(torch.float64)
                if a.shape[0] != x.shape[0] or bool((a < 0).any()):
                    raise ValueError("row_weight must give one weight >= 0 per input row")
                xq = xq * a.sqrt()[:, None]
                if cross and not zero:
                    dx = dx * a.sqrt()[:, None]
            h = xq.T @ xq
            if cross and not zero:
                c = dx.T @ xq
            last[:] = [args[0], key, h, x.shape[0], c, xf]
            add(name, h, x.shape[0], c)

        return f

    _run(model, calibrate, names, hook, run, paired)
    for name in names:
        if acc[name][0] is None:
            raise ValueError(f"calibration never reached layer {name!r}")
    for name, (_h, rows, c, c_rows) in acc.items():
        if c is not None and c_rows != rows:  # some calls paired, some not: C would mix
            raise ValueError(f"layer {name!r}: only some calibration rows have a float pair")
    if cross:
        return {n: (h, rows, c) for n, (h, rows, c, _r) in acc.items()}
    return {n: (h, rows) for n, (h, rows, _c, _r) in acc.items()}


# -- block-sequential calibration ----------------------------------------------------------------

CAPTURES = ("sequential", "block", "float")


class _Stop(Exception):
    """Raised by a hook once a block call has fed every layer of the stage: the rest of the
    block's forward is not needed."""


def find_blocks(model: torch.nn.Module, names: list[str]) -> tuple[str, torch.nn.ModuleList] | None:
    """The ``nn.ModuleList`` of two or more blocks (a transformer's layers, EfficientNet's
    MBConv blocks) that holds the most selected layers, with its name; None when no list holds
    any (a plain CNN)."""
    best, most = None, 0
    for lname, mod in model.named_modules():
        if not isinstance(mod, torch.nn.ModuleList) or not lname or len(mod) < 2:
            continue
        per = sum(n.startswith(f"{lname}.{i}.") for n in names for i in range(len(mod)))
        if per > most:
            best, most = (lname, mod), per
    return best


def _groups(calls: list[tuple[str, int]]) -> list[list[str]]:
    """Layers in first-call order, grouped by the input tensor they read (q/k/v read the same
    normalised hidden state, gate/up the same; o and down read their own)."""
    out: list[list[str]] = []
    seen: dict[int, list[str]] = {}
    done: set[str] = set()
    for name, key in calls:
        if name in done:
            continue
        done.add(name)
        if key in seen:
            seen[key].append(name)
        else:
            seen[key] = [name]
            out.append(seen[key])
    return out


def _record_calls(names: list[str], mods: dict[str, torch.nn.Module], run) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    inputs: list[torch.Tensor] = []  # kept alive so that id() stays unique during the run

    def hook(name):
        def f(_m, args, _out):
            inputs.append(args[0])
            calls.append((name, id(args[0])))

        return f

    hooks = [mods[n].register_forward_hook(hook(n)) for n in names]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return calls


def _hidden(out):
    return out[0] if isinstance(out, (tuple, list)) else out


_CACHE_KWARGS = ("past_key_value", "past_key_values")


class _BlockInputs:
    """Every calibration call's inputs to the block list: the hidden state (replaced block by
    block) and block 0's other arguments; non-tensor arguments come from each block's own first
    call (e.g. EfficientNet's per-block drop-connect rate)."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple, dict]] = []
        self.scalars: dict[int, tuple[tuple, dict]] = {}
        self.first: list[str] = []  # selected layers outside the list called before block 0

    def capture(self, blocks: torch.nn.ModuleList):
        def hook(i):
            def f(_m, args, kwargs):
                kwargs = {k: (None if k in _CACHE_KWARGS else v) for k, v in kwargs.items()}
                if "use_cache" in kwargs:
                    kwargs["use_cache"] = False  # a KV cache would grow with every re-run
                if i == 0:
                    self.calls.append(((args[0].detach().clone(), *args[1:]), kwargs))
                if i not in self.scalars:
                    self.scalars[i] = (args, kwargs)

            return f

        return [
            b.register_forward_pre_hook(hook(i), with_kwargs=True) for i, b in enumerate(blocks)
        ]

    def args_for(self, i: int, j: int) -> tuple[tuple, dict]:
        args, kwargs = self.calls[j]
        own_args, own_kwargs = self.scalars.get(i, (args, kwargs))

        def pick(mine, block0):
            return block0 if isinstance(block0, torch.Tensor) or mine is None else mine

        rest = tuple(pick(m, a) for m, a in zip(own_args[1:], args[1:]))
        kw = {k: pick(own_kwargs.get(k), v) for k, v in kwargs.items()}
        return (args[0], *rest), kw


@torch.no_grad()
def quantize_sequential(
    model: torch.nn.Module,
    calibrate: Callable[[torch.nn.Module], object],
    names: list[str],
    quantize_stage: Callable[[list[str], Callable], None],
    *,
    capture: str = "sequential",
    progress=None,
    paired: bool = False,
) -> None:
    """Quantize the selected layers of ``model`` *in place*, stage by stage, each stage's
    calibration inputs coming from the model with every earlier stage already quantized (GPTQ's
    sequential calibration).

    ``quantize_stage(stage, run)`` quantizes the layers named in ``stage`` (replacing or
    rewriting them in ``model``); ``run(make_hook)`` runs the stage's calibration forwards with
    the forward hook ``make_hook(name)`` on each of its layers, as often as the caller needs
    (statistics, then Hessians). Stages: with a block list (:func:`find_blocks`), the block
    inputs of every calibration call are captured once and the blocks run one at a time on
    them (one block's activations in memory); ``capture="block"``: all layers of a block form
    one stage; ``"sequential"``: the layers reading the same input form a stage (q/k/v, o,
    gate/up, down), in call order. Selected layers before the block list, after it, or in a
    model without one are calibrated by full passes over the partly quantized model: with
    ``"sequential"`` one stage per group of layers reading the same input, in call order; with
    ``"block"`` the layers before the list form one stage, and those after it another (a model
    without a block list is then one stage, as with the float capture). The blocks
    must form a chain (block i+1 reads block i's output, with block 0's other tensor
    arguments); where they do not (checked on the float model first), every stage uses full
    passes instead, with a warning. Blocks after the last one with selected layers run only
    when selected layers follow the list. ``progress(iterable, total)`` wraps the blocks.

    ``paired=True``: a float stream runs beside the quantized one, through a float copy of each
    block (taken before its first stage is quantized) from block 0's float inputs, so a stage
    runner called as ``run(make_hook, float_inputs=d)`` fills the dict ``d`` with the float
    model's input of each stage layer for the same calibration call, just before the quantized
    call's hooks run (asymmetric calibration, golden.calib.accumulate_hessians ``cross``).
    Stages calibrated by full passes leave ``d`` empty."""
    if capture not in CAPTURES[:2]:
        raise ValueError(f"capture must be one of {', '.join(CAPTURES[:2])}, not {capture!r}")

    def live() -> dict[str, torch.nn.Module]:  # stages replace modules: never a stale map
        return dict(model.named_modules())

    found = find_blocks(model, names)

    def full_run(stage: list[str]):
        def run(make_hook, float_inputs=None) -> None:  # no float stream to pair here
            _run_hooked(model, calibrate, stage, make_hook)

        return run

    def full_stages(layers: list[str]) -> None:
        if not layers:
            return
        if capture == "block":  # one stage: no pass needed to find the groups (an unreached
            quantize_stage(layers, full_run(layers))  # layer is the stage's own error)
            return
        calls = _record_calls(layers, live(), lambda: calibrate(model))
        missing = set(layers) - {n for n, _ in calls}
        if missing:
            raise ValueError(f"calibration never reached layer {sorted(missing)[0]!r}")
        for stage in _groups(calls):
            quantize_stage(stage, full_run(stage))

    if found is None:
        full_stages(names)
        return
    prefix, blocks = found
    per_block = [[n for n in names if n.startswith(f"{prefix}.{i}.")] for i in range(len(blocks))]
    inside = {n for b in per_block for n in b}
    outside = [n for n in names if n not in inside]

    def capture_inputs() -> _BlockInputs:
        cache = _BlockInputs()
        hooks = cache.capture(blocks)

        def pre(name):
            def f(_m, _a, _o):
                if not cache.calls and name not in cache.first:
                    cache.first.append(name)

            return f

        mods = live()
        hooks += [mods[n].register_forward_hook(pre(n)) for n in outside]
        try:
            calibrate(model)
        finally:
            for h in hooks:
                h.remove()
        if not cache.calls:
            raise ValueError(f"calibration never reached {prefix}.0")
        return cache

    cache = capture_inputs()
    if not _is_chain(blocks, cache):
        warnings.warn(
            f"the blocks of {prefix} do not form a chain (block 1 does not read block 0's "
            "output): each stage calibrates with a full pass instead of replaying the blocks",
            stacklevel=2,
        )
        full_stages(names)
        return
    finputs = [a[0] for a, _ in cache.calls] if paired else None  # the float model's
    before = [n for n in outside if n in cache.first]
    if before:
        full_stages(before)
        cache = capture_inputs()
    inputs = [a[0] for a, _ in cache.calls]  # each call's hidden state into the next block
    # blocks past the last one with selected layers only matter to the layers after the list
    after = [n for n in outside if n not in before]
    stop = len(blocks) if after else max(i for i, b in enumerate(per_block) if b) + 1
    it = range(stop)
    for i in progress(it, stop) if progress else it:
        block = blocks[i]

        def call(j: int, x: torch.Tensor, i: int = i, block=block):
            args, kw = cache.args_for(i, j)
            return block(x, *args[1:], **kw)

        pair = None
        if paired:
            fblock = copy.deepcopy(block) if per_block[i] else block  # float weights kept

            def fcall(j: int, x: torch.Tensor, i: int = i, fblock=fblock):
                args, kw = cache.args_for(i, j)
                return fblock(x, *args[1:], **kw)

            rel = f"{prefix}.{i}."
            pair = _Pair(fblock, fcall, finputs, {n: n[len(rel) :] for n in per_block[i]})
        if per_block[i]:
            calls = _record_calls(per_block[i], live(), partial(call, 0, inputs[0]))
            groups = _groups(calls)
            order = [n for g in groups for n in g]
            if set(order) != set(per_block[i]):
                missing = sorted(set(per_block[i]) - set(order))[0]
                raise ValueError(f"calibration never reached layer {missing!r}")
            for stage in groups if capture == "sequential" else [order]:
                quantize_stage(stage, _block_run(stage, live, call, inputs, pair))
        inputs = [_hidden(call(j, x)).detach() for j, x in enumerate(inputs)]
        if pair is not None:
            finputs = pair.outputs()
    full_stages(after)


class _Pair:
    """One block's float stream: its float copy, the float inputs of every calibration call
    and the outputs the paired runs computed on the way (each run is a whole float forward)."""

    def __init__(self, fblock, fcall, finputs, rel: dict[str, str]) -> None:
        self.fcall, self.finputs, self.rel = fcall, finputs, rel
        self.mods = dict(fblock.named_modules())  # the copy's modules are never replaced
        self.out: list = [None] * len(finputs)

    def fill(self, j: int, stage: list[str], into: dict) -> None:
        """Run call ``j`` of the float stream, putting each stage layer's input into ``into``."""
        into.clear()

        def hook(name):
            def f(_m, args, _out):
                into[name] = args[0]  # no copy: layers reading one tensor share its products

            return f

        hooks = [self.mods[self.rel[n]].register_forward_hook(hook(n)) for n in stage]
        try:
            self.out[j] = _hidden(self.fcall(j, self.finputs[j])).detach()
        finally:
            for h in hooks:
                h.remove()

    def outputs(self) -> list:
        return [
            o if o is not None else _hidden(self.fcall(j, x)).detach()
            for j, (o, x) in enumerate(zip(self.out, self.finputs))
        ]


def _block_run(stage: list[str], live, call, inputs, pair: _Pair | None = None):
    """The runner of a stage inside a block: the block on every cached input, stopped once the
    stage's last layer has run; with ``float_inputs`` and a float stream (``pair``), each call's
    float twin runs first and fills the dict."""
    last = stage[-1]

    def run(make_hook, float_inputs: dict | None = None) -> None:
        def hook(name):
            inner = make_hook(name)

            def f(m, args, out):
                inner(m, args, out)
                if name == last:
                    raise _Stop

            return f

        mods = live()
        hooks = [mods[n].register_forward_hook(hook(n)) for n in stage]
        try:
            for j, x in enumerate(inputs):
                if float_inputs is not None and pair is not None:
                    pair.fill(j, stage, float_inputs)
                try:
                    call(j, x)
                except _Stop:
                    pass
        finally:
            for h in hooks:
                h.remove()

    return run


def _is_chain(blocks: torch.nn.ModuleList, cache: _BlockInputs) -> bool:
    """Block 1's captured first input must be what block 0 computes from its own (the float
    model): else replaying the blocks as a chain would calibrate on wrong data."""
    if 1 not in cache.scalars:  # block 1 never ran: nothing shows that it reads block 0
        return False
    args, kw = cache.args_for(0, 0)
    out = _hidden(blocks[0](*args, **kw))
    seen = cache.scalars[1][0][0]
    return out.shape == seen.shape and torch.allclose(out, seen, rtol=1e-4, atol=1e-5)
