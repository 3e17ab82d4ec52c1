"""Cycle schedules for the INT array and their expected outputs from the golden GEMM.

Pure Python + golden: shared by the cocotb testbenches (generated Verilog) and the Amaranth
simulator tests, so both levels check the same thing against the same reference.

A GEMM ``Y = W @ A`` (W [N, K], A [K, M]) runs as: for each block of C output channels, for each
batch of up to ``acc_depth`` activation vectors, for each K tile of R rows, one pass: the tile's
weight rows load as a wavefront and the batch streams (optionally with idle cycles between
vectors). The outer accumulator entry is the vector's index within its batch.

``gemm_schedule`` places every load and vector at the earliest cycle the array's timing rules
allow (docs/design.md "Array schedule"), one rule at a time; it never reads the closed-form
``cycles()`` of the config, which the benches compare against the cycles they count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from golden.accum import gemm

__all__ = [
    "ARRAY_INPUTS",
    "array_inputs",
    "Cycle",
    "Expected",
    "pack",
    "unpack_signed",
    "gemm_schedule",
    "msq_schedule",
    "msq_outlier_rows",
]


ARRAY_INPUTS = ("w_load", "w_row", "w_data", "a_valid", "a_data", "a_first", "a_last", "a_addr")
MSQ_INPUTS = ("w_cfg", "a_shift")


def array_inputs(cfg) -> tuple[str, ...]:
    """The streaming inputs of an array config's ports (a schedule's ``Cycle`` fields)."""
    extra = ("a_swap",) if getattr(cfg, "double_buffer", False) else ()
    if getattr(cfg, "tile", 0):  # INT with T > R: the T tile's first / last K tile
        extra += ("a_tfirst", "a_tlast")
    return ARRAY_INPUTS + extra + (MSQ_INPUTS if hasattr(cfg, "recon_rows") else ())


@dataclass
class Cycle:
    w_load: int = 0
    w_row: int = 0
    w_data: int = 0
    a_valid: int = 0
    a_data: int = 0
    a_first: int = 0
    a_last: int = 0
    a_addr: int = 0
    w_cfg: int = 0  # MicroScopiQ: the row's ReCoN config words
    a_shift: int = 0  # MicroScopiQ: E[tile] - E_min of the vector's K tile
    a_swap: int = 0  # double-buffered arrays: first vector of a new K tile
    a_tfirst: int = 0  # INT arrays with T > R: first K tile of a T tile
    a_tlast: int = 0  # ... and its last K tile


@dataclass
class Expected:
    addr: int
    y: list[int]  # one value per real output column (signed)
    ovf_inner: list[int]
    ovf_outer: list[int]
    where: str = ""  # "n0=.. m=.." for failure messages
    n0: int = 0  # first output channel of y
    m: int = 0  # the activation vector (column of A) it belongs to


@dataclass
class Schedule:
    cycles: list[Cycle] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)
    measured: int | None = None  # cycles counted by a bench, first input to last output
    model_args: dict = field(default_factory=dict)  # data the cycle formula needs (MicroScopiQ)

    def at(self, t: int) -> Cycle:
        """The cycle at index ``t``, extending the schedule with idle cycles as needed."""
        while len(self.cycles) <= t:
            self.cycles.append(Cycle())
        return self.cycles[t]


def pack(values: list[int], bits: int) -> int:
    """Little-endian packing: element 0 in the least significant ``bits`` bits."""
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word


def unpack_signed(word: int, bits: int, count: int) -> list[int]:
    out = []
    for i in range(count):
        v = (word >> (i * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def _expected(cfg, ref, n0: int, n1: int, j: int, m0: int) -> Expected:
    """Output vector j (batch entry j - m0) of columns n0..n1 from a golden GEMM result."""
    return Expected(
        addr=j - m0,
        y=ref.y[n0:n1, j].tolist(),
        ovf_inner=ref.ovf_inner[n0:n1, j].int().tolist(),
        ovf_outer=ref.ovf_outer[n0:n1, j].int().tolist(),
        where=f"{cfg.slug} n0={n0} m={j}",
        n0=n0,
        m=j,
    )


def gemm_schedule(
    cfg,
    w: torch.Tensor,
    a: torch.Tensor,
    *,
    w_codes: torch.Tensor | None = None,
    a_codes: torch.Tensor | None = None,
    idle: float = 0.0,
    seed: int = 0,
    slack: int = 0,
) -> Schedule:
    """Build the input cycles and the expected outputs for an array config.

    ``w`` [N, K] and ``a`` [K, M] are the decoded integer *values* (int64) that define the
    golden GEMM; ``w_codes`` / ``a_codes`` are the codes driven on the ports (default: the
    values themselves, which is what INT codes are; padding uses code 0 = value 0). ``idle`` is
    the probability of an idle cycle before each vector (timing stress). ``slack`` shifts the
    reload rule and the T-tile chain rule (tests only: -1 breaks them by one cycle, which must
    corrupt the outputs).
    """
    R, C, D = cfg.rows, cfg.cols, cfg.acc_depth
    n, k = w.shape
    m = a.shape[1]
    rng = random.Random(seed)
    g = cfg.chained  # K tiles per tile T of the inner accumulator (INT's tile = g R)
    ref = gemm(
        w, a, inner_bits=cfg.acc_bits, tile=g * R, outer_bits=cfg.out_bits, policy=cfg.policy
    )
    tiles = -(-k // R)
    t_tiles = -(-tiles // g)
    # Pair-coded arrays (OliVe) take two adjacent K rows per port word, even element low.
    per = 2 if getattr(cfg, "pair_codes", False) else 1
    w_word, a_word = per * cfg.w_bits, per * cfg.a_bits
    wp = torch.zeros(-(-n // C) * C, tiles * R, dtype=torch.int64)
    wp[:n, :k] = w if w_codes is None else w_codes
    ap = torch.zeros(tiles * R, m, dtype=torch.int64)
    ap[:k] = a if a_codes is None else a_codes
    db = bool(getattr(cfg, "double_buffer", False))
    # Registers between the activation port and row 0 (hdl.array.SystolicArray.edge_stages).
    edge = int(getattr(cfg, "pipeline", 0) >= 1 or db)
    # Row group j of a pass starting at cycle S loads at S + off + per * j: one cycle before
    # its first row needs the weight (a PE at row r sees the vector S + edge + r), one more
    # with double buffering, where the swap runs a cycle ahead of the vector into the shadow.
    off = edge - 1 - int(db)
    s = Schedule()
    start = v_last = None
    prev_times: list[int] = []
    for n0 in range(0, n, C):
        real = min(C, n - n0)
        for m0 in range(0, m, D):
            batch = list(range(m0, min(m, m0 + D)))
            for t in range(tiles):
                if start is None:
                    t0 = -off  # the first load at cycle 0
                else:
                    # Loads of consecutive passes never share a cycle (one load port).
                    t0 = max(v_last + 1, start + R - per + 1)
                    # A row group may reload only after the previous pass's last reader of its
                    # last row, PE (r, C-1): single-buffered, the pass's last vector reaches it
                    # at v_last + edge + r + C - 1; double-buffered, the pass's swap (a cycle
                    # ahead of its first vector) reaches it at start + edge + r + C - 2.
                    last_use = start if db else v_last
                    t0 = max(t0, last_use + C + per - 1 + slack)
                    if getattr(cfg, "pipeline", 0) >= 2:  # the two-cycle output add
                        t0 = max(t0, start + 2)
                times = []  # each vector's cycle, idle gaps included
                for i, _ in enumerate(batch):
                    v = times[-1] + 1 if times else t0
                    while idle and rng.random() < idle:
                        v += 1
                    if t % g:
                        # a T tile's later K tile: the entry's column sum leaves the bottom R
                        # cycles after the top; its next K tile enters the top after that
                        v = max(v, prev_times[i] + R + 1 + slack)
                    times.append(v)
                start, prev_times = times[0], times
                for r in range(R // per):
                    rows = wp[n0 : n0 + C, t * R + r * per : t * R + (r + 1) * per]
                    row = [pack(x, cfg.w_bits) for x in rows.tolist()]  # a pair: even low
                    cyc = s.at(start + off + per * r)
                    cyc.w_load, cyc.w_row, cyc.w_data = 1, r, pack(row, w_word)
                for i, (j, v) in enumerate(zip(batch, times)):
                    vec = ap[t * R : (t + 1) * R, j].reshape(R // per, per).tolist()
                    cyc = s.at(v)
                    cyc.a_valid = 1
                    cyc.a_data = pack([pack(x, cfg.a_bits) for x in vec], a_word)
                    # with T > R, first / last mark the T tiles (the output unit reads them
                    # on a T tile's last K tile)
                    cyc.a_first, cyc.a_last = int(t // g == 0), int(t // g == t_tiles - 1)
                    cyc.a_tfirst = int(t % g == 0)
                    cyc.a_tlast = int(t % g == g - 1 or t == tiles - 1)
                    cyc.a_addr, cyc.a_swap = j - m0, int(db and i == 0)
                v_last = times[-1]
            s.expected += [_expected(cfg, ref, n0, n0 + real, j, m0) for j in batch]
    return s


def msq_outlier_rows(cfg, quant) -> list[list[list[bool]]]:
    """[column block][K tile][row]: the row's ReCoN config routes something (an outlier's hi
    half somewhere in the block's micro-blocks at that input column)."""
    from golden.microscopiq import KIND_HI

    n, k = quant.codes.shape
    R, C = cfg.rows, cfg.lanes
    hi = quant.kind == KIND_HI
    return [
        [
            [bool(t * R + r < k and hi[n0 : n0 + C, t * R + r].any()) for r in range(R)]
            for t in range(-(-k // R))
        ]
        for n0 in range(0, n, C)
    ]


def msq_schedule(
    cfg, quant, x: torch.Tensor, *, idle: float = 0.0, seed: int = 0, slack: int = 0
) -> Schedule:
    """Cycles and expected outputs of the MicroScopiQ array for ``quant`` (a
    ``golden.microscopiq.MsqQuant`` with T = cfg.rows, M a multiple of cfg.cols, m = cfg.m) and
    activation codes ``x`` [K, B]. Each weight load carries a row's slot codes and the router
    compiler's config words for its micro-blocks; each vector carries its tile's shift.

    Passes as ``gemm_schedule``'s: row r of a pass loads one cycle before its first vector
    reaches it (S + r - 1); a pass starts 2 cycles after the previous pass's last vector (a row's
    config is read one cycle after its product), or G with a ReCoN shared by G rows, and at
    least R cycles after the previous pass started (one load port); a pass's
    vectors are ``cfg.spacing`` cycles apart (the shared ReCoN's stalls), idle cycles come in
    whole spacings. ``slack`` (tests only) shortens the spacing of passes that stall."""
    from golden.microscopiq import KIND_HI, compile_router, msq_gemm, router_bits

    p = quant.params
    R, C, D, mib = cfg.rows, cfg.lanes, cfg.acc_depth, cfg.m  # C: lanes per column block
    if p.T != R or p.M % C or p.m != mib or p.b != cfg.b:
        raise ValueError(f"quantize with b={cfg.b}, T={R}, m={mib} and M a multiple of {C}")
    n, k = quant.codes.shape
    m = x.shape[1]
    rng = random.Random(seed)
    ref = msq_gemm(
        quant.coefficients(), x, quant.exp, M=p.M, T=R, inner_bits=cfg.acc_bits,
        outer_bits=cfg.out_bits, policy=cfg.policy,
    )  # fmt: skip
    shift = quant.exp - ref.e_min[:, None]
    if int(shift.max()) >= 1 << cfg.shift_bits:
        raise ValueError(f"a tile shift of {int(shift.max())} exceeds shift_bits")
    tiles = -(-k // R)
    codes = torch.zeros(n, tiles * R, dtype=torch.int64)
    codes[:, :k] = quant.codes
    xp = torch.zeros(tiles * R, m, dtype=torch.int64)
    xp[:k] = x
    nb = router_bits(mib, p.d)

    def row_cfg(n0: int, col: int) -> int:
        words = []
        for g in range(C // mib):
            r0 = n0 + g * mib
            pairs = []
            if col < k:
                for i in range(mib):
                    if quant.kind[r0 + i, col] == KIND_HI:
                        pairs.append((i, int(quant.partner[r0 + i, col]) - r0))
            de = int(quant.de[r0 // mib, col]) if col < k else 0
            words.append(compile_router(pairs, de, mib, p.d))
        return pack(words, nb)

    outliers = msq_outlier_rows(cfg, quant)
    s = Schedule(model_args={"outliers": outliers})
    start = v_last = None
    for blk, n0 in enumerate(range(0, n, C)):
        for m0 in range(0, m, D):
            batch = list(range(m0, min(m, m0 + D)))
            for t in range(tiles):
                sp = cfg.spacing(outliers[blk][t])
                if sp > 1:
                    sp += slack
                times: list[int] = []
                for _ in batch:
                    if times:
                        v = times[-1] + sp
                    elif v_last is None:
                        v = 1
                    else:  # the reload rule, and one load port: R loads per pass
                        v = max(v_last + max(2, cfg.recon_rows), start + R)
                    while idle and rng.random() < idle:
                        v += sp  # whole spacings keep the outlier rows apart
                    times.append(v)
                for r in range(R):
                    col = t * R + r
                    cyc = s.at(times[0] + r - 1)
                    cyc.w_load, cyc.w_row = 1, r
                    cyc.w_data = pack(codes[n0 : n0 + C, col].tolist(), p.b)
                    cyc.w_cfg = row_cfg(n0, col)
                for j, v in zip(batch, times):
                    cyc = s.at(v)
                    cyc.a_valid = 1
                    cyc.a_data = pack(xp[t * R : (t + 1) * R, j].tolist(), cfg.a_bits)
                    cyc.a_first, cyc.a_last = int(t == 0), int(t == tiles - 1)
                    cyc.a_addr, cyc.a_shift = j - m0, int(shift[n0 // p.M, t])
                start, v_last = times[0], times[-1]
            s.expected += [_expected(cfg, ref, n0, n0 + C, j, m0) for j in batch]
    return s
