"""MicroScopiQ hardware: the multi-precision INT PE, ReCoN and the MicroScopiQ array.

Format and design: docs/microscopiq.md.

- :class:`MsqPE` multiplies a signed activation by a 4-bit weight word, BitFusion style, from
  two 2-bit x a sub-multipliers: one 4-bit weight (signed or unsigned) or two 2-bit weights
  (each signed or unsigned). It outputs products, not sums.
- :class:`ReCoN` (N lanes) routes each outlier's partner product to the outlier's lane through
  a Benes network of 2x2 switches, then each lane passes, merges ``((p_i << b) + p_j) << dE``
  or zero-fills, as its config word says. Pipelined: registers after the network and after
  the lane units (``latency`` = 2).
- :class:`MsqArray`: rows are input columns k (one K tile = one MaB tile), columns are output
  lanes; activations are broadcast along a row (each row's ReCoN needs the whole MiB's
  products in the same cycle), partial sums move down; an output unit adds each tile's sums
  shifted by the tile's exponent difference into P_O-bit accumulators.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from ._params import check_choice, check_int
from .array import _delay, array_ports, check_acc_depth, output_unit
from .int_pe import POLICIES, add_with_policy

__all__ = [
    "pe_mode_layout",
    "MsqPE",
    "benes_switches",
    "recon_config_bits",
    "recon_config_layout",
    "LaneMode",
    "ReCoN",
    "MsqArray",
]

pe_mode_layout = data.StructLayout({"split": 1, "signed_lo": 1, "signed_hi": 1})


class LaneMode(enum.Enum, shape=2):
    """What a ReCoN lane does with its product: pass it, merge the routed partner product into
    it (``((p_i << b) + p_j) << dE``), or zero-fill (the partner's own lane)."""

    PASS = 0
    MERGE = 1
    ZERO = 2


LANE_PASS, LANE_MERGE, LANE_ZERO = LaneMode.PASS.value, LaneMode.MERGE.value, LaneMode.ZERO.value


def benes_switches(n: int) -> int:
    return 1 if n == 2 else n + 2 * benes_switches(n // 2)


def recon_config_layout(n: int, d: int) -> data.StructLayout:
    """A ReCoN config word, LSB first: the Benes switch bits (``golden.microscopiq``'s router
    compiler sets them), a :class:`LaneMode` per lane, dE."""
    return data.StructLayout(
        {"switches": benes_switches(n), "mode": data.ArrayLayout(LaneMode, n), "de": d}
    )


def recon_config_bits(n: int, d: int) -> int:
    """Width of :func:`recon_config_layout`."""
    return recon_config_layout(n, d).size


def _check_lanes(n: int) -> int:
    n = check_int("lanes", n, 2, 64)
    if n & (n - 1):
        raise ValueError(f"lanes must be a power of two, not {n}")
    return n


class MsqPE(wiring.Component):
    """Multi-precision INT PE (b_max = 4): products of ``a`` (signed, ``a_bits``) and a weight
    word ``w`` (4 bits) by ``mode`` (``pe_mode_layout``):

    - ``split = 0``: one 4-bit weight, two's complement if ``signed_hi`` else unsigned;
      ``p0 = a * w``, ``p1 = 0``.
    - ``split = 1``: two 2-bit weights, ``w[1:0]`` (``signed_lo``) and ``w[3:2]``
      (``signed_hi``); ``p0 = a * w[1:0]``, ``p1 = a * w[3:2]``.

    Built from two 2-bit x a sub-multipliers (the 4-bit product is ``(s_hi << 2) + s_lo`` with
    the low half unsigned). Outputs registered, ``latency`` = 1.
    Golden model: the integer products of the decoded weights.
    """

    latency = 1

    def __init__(self, *, a_bits: int = 8) -> None:
        self.a_bits = check_int("a_bits", a_bits, 2, 16)
        super().__init__(
            {
                "a": In(signed(a_bits)),
                "w": In(4),
                "mode": In(pe_mode_layout),
                "p0": Out(signed(a_bits + 5)),
                "p1": Out(signed(a_bits + 3)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        mode = self.mode
        lo_signed = mode.split & mode.signed_lo  # in single mode the low half is unsigned
        w_lo = Signal(signed(3))
        w_hi = Signal(signed(3))
        m.d.comb += [
            w_lo.eq(Mux(lo_signed, self.w[0:2].as_signed(), self.w[0:2])),
            w_hi.eq(Mux(mode.signed_hi, self.w[2:4].as_signed(), self.w[2:4])),
        ]
        s_lo = Signal(signed(self.a_bits + 3))
        s_hi = Signal(signed(self.a_bits + 3))
        m.d.comb += [s_lo.eq(self.a * w_lo), s_hi.eq(self.a * w_hi)]
        with m.If(mode.split):
            m.d.sync += [self.p0.eq(s_lo), self.p1.eq(s_hi)]
        with m.Else():
            m.d.sync += [self.p0.eq((s_hi << 2) + s_lo), self.p1.eq(0)]
        return m


def _benes(m: Module, bits, values: list, name: str) -> list:
    """Structural Benes network (recursive): first-stage switch s takes inputs (2s, 2s+1) to
    the upper / lower subnetworks' input s, crossed when its bit is 1; the last stage takes
    the subnetworks' output s to outputs (2s, 2s+1), crossed when its bit is 1. Bit order:
    first stage, upper subnetwork, lower subnetwork, last stage."""
    n = len(values)
    if n == 2:
        return [Mux(bits[0], values[1], values[0]), Mux(bits[0], values[0], values[1])]
    h = n // 2
    sub = benes_switches(h) if h > 1 else 0
    first, up_bits = bits[:h], bits[h : h + sub]
    lo_bits, last = bits[h + sub : h + 2 * sub], bits[h + 2 * sub :]
    up = [Mux(first[s], values[2 * s + 1], values[2 * s]) for s in range(h)]
    lo = [Mux(first[s], values[2 * s], values[2 * s + 1]) for s in range(h)]
    up = _benes(m, up_bits, up, name + "u")
    lo = _benes(m, lo_bits, lo, name + "l")
    out = []
    for s in range(h):
        out += [Mux(last[s], lo[s], up[s]), Mux(last[s], up[s], lo[s])]
    return out


class ReCoN(wiring.Component):
    """ReCoN for one micro-block of ``lanes`` products.

    Members: ``p``: In(lanes x signed(prod_bits)); ``config``: In(recon_config_bits) — the
    router compiler's word (``golden.microscopiq.compile_router``): Benes switch bits, lane modes
    (0 pass, 1 merge, 2 zero; 2 bits each), dE. ``q``: Out(lanes x signed(out_bits)) with
    ``out_bits = prod_bits + b + 1 + 2^d - 1``. Pipelined, ``latency`` = ``stages``: 2 registers
    after the network and after the lane units, 1 only after the lane units. Golden model:
    ``golden.microscopiq.recon``.
    """

    def __init__(
        self, *, lanes: int = 8, prod_bits: int = 13, b: int = 4, d: int = 2, stages: int = 2
    ) -> None:
        self.stages = check_int("stages", stages, 1, 2)
        self.latency = stages  # 1: only the lane outputs are registered
        self.lanes = _check_lanes(lanes)
        self.prod_bits = check_int("prod_bits", prod_bits, 2, 40)
        self.b = check_choice("b", b, (2, 4, 8))
        self.d = check_int("d", d, 1, 4)
        self.out_bits = prod_bits + b + 1 + 2**d - 1
        super().__init__(
            {
                "p": In(data.ArrayLayout(signed(prod_bits), lanes)),
                "config": In(recon_config_layout(lanes, d)),
                "q": Out(data.ArrayLayout(signed(self.out_bits), lanes)),
            }
        )

    @property
    def switches(self) -> int:
        return benes_switches(self.lanes)

    def elaborate(self, platform):
        m = Module()
        n = self.lanes
        cfg = self.config
        routed = _benes(m, cfg.switches, [self.p[i] for i in range(n)], "benes")
        # stage 1 registers (stages = 2): own product, routed partner product, lane mode, dE
        own = [Signal(signed(self.prod_bits), name=f"own{i}") for i in range(n)]
        part = [Signal(signed(self.prod_bits), name=f"part{i}") for i in range(n)]
        mode = [Signal(2, name=f"mode{i}") for i in range(n)]
        de = Signal(self.d)
        dom = m.d.sync if self.stages == 2 else m.d.comb
        for i in range(n):
            dom += [own[i].eq(self.p[i]), part[i].eq(routed[i]), mode[i].eq(cfg.mode[i])]
        dom += de.eq(cfg.de)
        # stage 2: lane units
        for i in range(n):
            merged = Signal(signed(self.prod_bits + self.b + 1), name=f"merged{i}")
            m.d.comb += merged.eq((own[i] << self.b) + part[i])
            with m.Switch(mode[i]):
                with m.Case(LANE_MERGE):
                    m.d.sync += self.q[i].eq(merged << de)
                with m.Case(LANE_ZERO):
                    m.d.sync += self.q[i].eq(0)
                with m.Default():
                    m.d.sync += self.q[i].eq(own[i])
        return m


class MsqArray(wiring.Component):
    """The MicroScopiQ array (ReCoN per micro-block, per row or shared by a group of rows).

    ``b`` = 4: one 4-bit slot per PE, the PE in its single mode; ``b`` = 2: two 2-bit slots per
    PE, the PE in its split mode (two products of the row's activation), so C PE columns
    compute L = 2C output channels (lanes). L = C for b = 4.

    Members (packed buses little-endian)
    -------
    w_load In(1), w_row In(log2 R), w_data In(L x b): slot codes of row ``w_row`` (lane l ->
        output channel l; for b = 2, PE c holds lanes 2c (w[1:0]) and 2c + 1 (w[3:2]));
        w_cfg In(L/m x recon_config_bits): that row's ReCoN config words (one per MiB). The
        lane modes also say how each slot decodes: pass = inlier (sign-magnitude), merge =
        outlier hi half (two's complement), zero = partner lo half (unsigned).
    a_valid, a_data (R signed activations), a_first, a_last, a_addr: as the foundation array;
    a_shift In(shift_bits): ``E[tile] - E_min`` of this K tile for this column block.
    y_valid, y_data (L x out_bits), y_ovf_inner, y_ovf_outer, y_addr: ``latency`` =
        R + 2 + recon_stages cycles after the vector with ``a_last``.

    ``recon_rows`` = G: rows per ReCoN. G = 1 gives every row its own ReCoNs (one per MiB);
    G > 1 shares one set among G consecutive rows, time-multiplexed: a row whose config has an
    outlier (any lane not ``pass``) sends its products through the shared ReCoN in the cycle it
    holds a valid vector's products, every other row bypasses it through ``recon_stages``
    registers. At most one outlier row of a group may hold a vector in any cycle: the schedule
    spaces the vectors of a K tile by ``recon_spacing`` (the stall cycles), docs/microscopiq.md.
    ``recon_stages``: 2 (registers after the network and the lane units) or 1. ``pipeline`` 1:
    the output accumulators are a memory read a cycle ahead (``acc_depth`` up to 4,096); 2: and
    the tile sums are shifted (``<< a_shift``) into a register before the P_O add, which then
    takes two cycles (low half, then high half with the carry: ``hdl.array``'s split output
    unit), two more cycles of latency.

    Column sums are P_I bits (``acc_bits``, policy, sticky flag) over the R rows of a tile (the
    MaB tile is the array's K tile, T = R); the outputs add ``sum << a_shift`` into ``out_bits``
    (P_O) accumulators (``acc_depth`` entries per column). Golden model:
    ``golden.microscopiq.msq_gemm``.
    """

    def __init__(
        self,
        *,
        rows: int = 8,
        cols: int = 8,
        m: int = 8,
        a_bits: int = 8,
        d: int = 2,
        acc_bits: int = 32,
        out_bits: int = 32,
        policy: str = "wrap",
        acc_depth: int = 4,
        shift_bits: int = 4,
        recon_rows: int = 1,
        recon_stages: int = 2,
        pipeline: int = 0,
        b: int = 4,
    ) -> None:
        self.rows = check_int("rows", rows, 1, 64)
        self.m = _check_lanes(m)
        self.cols = check_int("cols", cols, 1, 64)
        self.b = check_choice("b", b, (2, 4))
        self.lanes = cols * (4 // b)  # output channels per column block
        if self.lanes % m:  # b = 2: two lanes per PE column
            raise ValueError(
                f"cols must give a multiple of m = {m} lanes ({4 // b} per column), not {cols}"
            )
        self.a_bits = check_int("a_bits", a_bits, 2, 16)
        self.d = check_int("d", d, 1, 4)
        self.acc_bits = check_int("acc_bits", acc_bits, 2, 62)
        self.out_bits = check_int("out_bits", out_bits, acc_bits, 62)
        self.policy = check_choice("policy", policy, POLICIES)
        self.pipeline = check_int("pipeline", pipeline, 0, 2)
        self.acc_depth = check_acc_depth(acc_depth, pipeline)
        self.shift_bits = check_int("shift_bits", shift_bits, 1, 6)
        self.recon_rows = check_int("recon_rows", recon_rows, 1, rows)
        if rows % recon_rows:
            raise ValueError(f"recon_rows must divide rows = {rows}, not {recon_rows}")
        self.recon_stages = check_int("recon_stages", recon_stages, 1, 2)
        super().__init__(
            array_ports(
                w_rows=rows,
                w_data=data.ArrayLayout(b, self.lanes),
                a_data=data.ArrayLayout(signed(a_bits), rows),
                cols=self.lanes,
                out_bits=out_bits,
                acc_depth=acc_depth,
                extra={
                    "w_cfg": In(data.ArrayLayout(recon_config_layout(m, d), self.lanes // m)),
                    "a_shift": In(unsigned(shift_bits)),
                },
            )
        )

    @property
    def latency(self) -> int:
        # pipeline 2: + the routed-addend register, the shift register and the split P_O add
        # (hdl.array._split_output_unit)
        return self.rows + MsqPE.latency + self.recon_stages + 1 + 3 * (self.pipeline == 2)

    @property
    def split_add(self) -> bool:
        return self.pipeline == 2

    def _slot(self, code, mode):
        """Edge decode of one b-bit slot by its lane mode -> (b-bit PE weight field, signed):
        an inlier's sign-magnitude code becomes two's complement (|q| <= 2^(b-1) - 1 fits)."""
        b = self.b
        mag = Cat(code[: b - 1], Const(0, 1))
        sm = Mux(code[b - 1], -mag, mag)  # sign-magnitude inlier
        word = Mux(mode == LANE_PASS, sm[:b], code)
        return word, mode != LANE_ZERO

    @property
    def prod_bits(self) -> int:
        """A lane's product: a x (b + 1)-bit signed (the b-bit field, signed or not)."""
        return self.a_bits + self.b + 1

    def _recon(self) -> ReCoN:
        return ReCoN(
            lanes=self.m, prod_bits=self.prod_bits, b=self.b, d=self.d, stages=self.recon_stages
        )

    def _routed(self, m: Module, r0: int, products, cfgs) -> list[list]:
        """The ReCoN outputs (the addends of the column sums) of rows r0 .. r0 + G - 1, each
        ``recon_stages`` cycles after its products: their own ReCoNs (G = 1) or the group's
        shared ones, which the one outlier row holding a vector uses while the others bypass."""
        G, C, mib, S = self.recon_rows, self.lanes, self.m, self.recon_stages
        if G == 1:
            out = []
            for g in range(C // mib):
                rc = m.submodules[f"recon_{r0}_{g}"] = self._recon()
                m.d.comb += rc.config.eq(cfgs[r0][g])
                m.d.comb += [rc.p[lane].eq(products[0][g * mib + lane]) for lane in range(mib)]
                out += [rc.q[lane] for lane in range(mib)]
            return [out]
        # A row uses the shared ReCoN when its config routes anything and its products are a
        # vector's (the valid bit reaches row r's product registers r + 1 cycles after entry).
        sel = []
        for i in range(G):
            r = r0 + i
            outl = Signal(name=f"outlier_row_{r}")
            modes = [cfgs[r][g].mode[k].as_value() for g in range(C // mib) for k in range(mib)]
            m.d.comb += outl.eq(Cat(*[md != LANE_PASS for md in modes]).any())
            sel.append(outl & _delay(m, self.a_valid, r + MsqPE.latency, f"row_valid_{r}"))
        took = [_delay(m, sel[i], S, f"took_{r0 + i}") for i in range(G)]  # with the outputs
        out = [[] for _ in range(G)]
        layout = recon_config_layout(mib, self.d)
        for g in range(C // mib):
            rc = m.submodules[f"recon_{r0 // G}_{g}"] = self._recon()
            cfg_in = Signal(layout, name=f"recon_cfg_{r0 // G}_{g}")
            # one-hot row multiplexers: an AND-OR of the selected row's products and config
            m.d.comb += cfg_in.as_value().eq(
                _or_of([Mux(sel[i], cfgs[r0 + i][g].as_value(), 0) for i in range(G)])
            )
            m.d.comb += rc.config.eq(cfg_in)
            for lane in range(mib):
                c = g * mib + lane
                m.d.comb += rc.p[lane].eq(
                    _or_of([Mux(sel[i], products[i][c], 0) for i in range(G)])
                )
                for i in range(G):
                    bypass = _delay(m, products[i][c], S, f"bypass_{r0 + i}_{c}")
                    out[i].append(Mux(took[i], rc.q[lane], bypass))
        return out

    def elaborate(self, platform):
        m = Module()
        R, C, L, mib, G = self.rows, self.cols, self.lanes, self.m, self.recon_rows
        layout = recon_config_layout(mib, self.d)
        # per lane: the decoded b-bit field and whether the PE multiplies it as signed
        weights = [[Signal(self.b, name=f"w_{r}_{c}") for c in range(L)] for r in range(R)]
        wsign = [[Signal(name=f"ws_{r}_{c}") for c in range(L)] for r in range(R)]
        cfgs = [[Signal(layout, name=f"cfg_{r}_{g}") for g in range(L // mib)] for r in range(R)]
        for r in range(R):
            with m.If(self.w_load & (self.w_row == r)):
                for c in range(L):
                    g, lane = divmod(c, mib)
                    mode = self.w_cfg[g].mode[lane].as_value()
                    word, sgn = self._slot(self.w_data[c], mode)
                    m.d.sync += [weights[r][c].eq(word), wsign[r][c].eq(sgn)]
                m.d.sync += [cfgs[r][g].eq(self.w_cfg[g]) for g in range(L // mib)]
        psum = [Signal(signed(self.acc_bits), name=f"psum_top_{c}") for c in range(L)]
        ovf = [Signal(name=f"ovf_top_{c}") for c in range(L)]
        for r0 in range(0, R, G):
            products = []
            for r in range(r0, r0 + G):
                act = _delay(m, self.a_data[r], r, f"skew_{r}")  # row r sees the vector r later
                row = []
                for c in range(C):
                    pe = m.submodules[f"pe_{r}_{c}"] = MsqPE(a_bits=self.a_bits)
                    m.d.comb += pe.a.eq(act)
                    if self.b == 4:  # single mode: one 4-bit field, one product
                        m.d.comb += [pe.w.eq(weights[r][c]), pe.mode.split.eq(0),
                                     pe.mode.signed_hi.eq(wsign[r][c])]  # fmt: skip
                        row.append(pe.p0)
                        continue
                    # split mode: lanes 2c (w[1:0]) and 2c + 1 (w[3:2]), each signed or not;
                    # p0 is a_bits + 5 wide but holds a 2-bit product: the lane keeps
                    # prod_bits = a_bits + 3 (a deliberate, exact truncation)
                    lo, hi = 2 * c, 2 * c + 1
                    m.d.comb += [
                        pe.w.eq(Cat(weights[r][lo], weights[r][hi])),
                        pe.mode.split.eq(1),
                        pe.mode.signed_lo.eq(wsign[r][lo]),
                        pe.mode.signed_hi.eq(wsign[r][hi]),
                    ]
                    row += [pe.p0[: self.prod_bits].as_signed(), pe.p1]
                products.append(row)
            routed = self._routed(m, r0, products, cfgs)
            if self.pipeline == 2:  # a register between the row select and the column add
                routed = [[_delay(m, v, 1, f"routed_{r0 + i}_{c}") for c, v in enumerate(row)]
                          for i, row in enumerate(routed)]  # fmt: skip
            for i in range(G):
                r = r0 + i
                for c in range(L):
                    total, o = add_with_policy(
                        m, psum[c], routed[i][c], self.acc_bits, self.policy
                    )
                    nps = Signal(signed(self.acc_bits), name=f"psum_{r}_{c}")
                    nov = Signal(name=f"ovf_{r}_{c}")
                    m.d.sync += [nps.eq(total), nov.eq(ovf[c] | o)]
                    psum[c], ovf[c] = nps, nov
        staged = self.pipeline == 2  # the shifted sums registered before the P_O add
        shift = _delay(m, self.a_shift, self.latency - 1 - 2 * staged, "ctrl_shift")  # at psum
        shifted = []
        for c in range(L):
            sh = Signal(signed(self.acc_bits + 2**self.shift_bits - 1), name=f"sh_{c}")
            m.d.comb += sh.eq(psum[c] << shift)  # exact: never truncated
            if staged:
                sh_q = Signal.like(sh, name=f"sh_q_{c}")
                ovf_q = Signal(name=f"ovf_q_{c}")
                m.d.sync += [sh_q.eq(sh), ovf_q.eq(ovf[c])]
                sh, ovf[c] = sh_q, ovf_q
            shifted.append(sh)
        output_unit(m, self, shifted, ovf, self.a_valid, self.a_first, self.a_last, self.a_addr)
        return m


def _or_of(values: list):
    """The bitwise OR of ``values`` (a one-hot multiplexer's second level)."""
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
