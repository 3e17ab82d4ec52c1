"""Weight-stationary R x C systolic MAC array with multi-stage accumulation (int.md "Array")."""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ._params import check_bool, check_choice, check_int
from .int_pe import POLICIES, IntPE, add_with_policy, check_pe_params, skew_capable

__all__ = [
    "SystolicArray",
    "IntArray",
    "output_unit",
    "array_ports",
    "check_acc_depth",
    "check_tile",
]


def _taps(m: Module, sig, cycles: int, name: str) -> list:
    """``sig`` and its copies delayed by 1..``cycles`` cycles (one register chain)."""
    taps = [sig]
    for i in range(cycles):
        nxt = Signal(sig.shape(), name=f"{name}_d{i + 1}")
        m.d.sync += nxt.eq(taps[-1])
        taps.append(nxt)
    return taps


def _delay(m: Module, sig, cycles: int, name: str):
    """``cycles`` registers in series after ``sig`` (0 cycles: ``sig`` itself)."""
    return _taps(m, sig, cycles, name)[-1]


def array_ports(*, w_rows, w_data, a_data, cols, out_bits, acc_depth, extra=None) -> dict:
    """The signature every array shares: weight load, activation stream, outputs."""
    addr_bits = (acc_depth - 1).bit_length()
    return {
        "w_load": In(1),
        "w_row": In(unsigned(max(1, (w_rows - 1).bit_length()))),
        "w_data": In(w_data),
        "a_valid": In(1),
        "a_data": In(a_data),
        "a_first": In(1),
        "a_last": In(1),
        "a_addr": In(unsigned(addr_bits)),
        **(extra or {}),
        "y_valid": Out(1),
        "y_data": Out(data.ArrayLayout(signed(out_bits), cols)),
        "y_ovf_inner": Out(cols),
        "y_ovf_outer": Out(cols),
        "y_addr": Out(unsigned(addr_bits)),
    }


class SystolicArray(wiring.Component):
    """Weight-stationary systolic array computing a multi-stage integer GEMM ``Y = W @ A``.

    PE (r, c) holds the weight of input channel r (within the current K tile) for output
    channel c. Activation vectors enter one per cycle on ``a_data``; the array skews row r by r
    cycles internally, activations move right one PE per cycle and partial sums move down one
    PE per cycle, starting at 0 at the top. The column chain is the **inner** accumulator
    (``acc_bits`` = P_I, tile T = ``rows``, or ``tile``); the bottom of each column is
    de-skewed and added to an **outer** ``out_bits`` (P_O) accumulator per column, held in
    ``acc_depth`` entries so up to ``acc_depth`` vectors stream back-to-back through every K
    tile.

    Scheme arrays subclass this and override two hooks: ``_decode`` (an operand decoder at the
    array edge: one per loaded weight word, one per activation row) and ``_make_pe``.

    Parameters (keyword only, besides the scheme's): rows, cols; acc_bits (P_I); out_bits
    (P_O); policy; acc_depth (power of two: 2..256 with ``pipeline`` = 0, up to 4,096 with a
    pipelined output unit, which keeps the entries in a memory); double_buffer: weights load
    into shadow registers and swap in per PE as the first vector of the new tile reaches it
    (no drain between K tiles); pipeline: 0 = one-cycle PEs and a one-cycle read-modify-write
    output unit; 1 = decoded activations registered at the edge and the output unit split into
    a registered memory read and an add + write stage; 2 = also the product registered in
    every PE (multiplier and adder in different cycles) and the output add over two cycles;
    3 = also the multiplier split over two cycles (INT: one partial product per 2-bit weight
    slice; ANT, OliVe: the magnitude product before the shifter), carry-select adds with the
    PEs' sticky flags a cycle behind their sums (INT: the partial sum down the columns in two
    halves a cycle apart where the PEs allow, ``psum_skew``: one cycle more), and the
    memory's output registered (for LUT
    fabrics: the iCE40 has no DSP and a slow block-RAM clock-to-out). tile: AXE's tile T of the
    inner accumulator (default: R): a multiple T = g R, g > 1, chains each column over g K tiles
    (the sum leaving a column's bottom enters its top again with the same entry's next K
    tile), so the P_I-bit register sums T rows in input order, as ``golden.accum.gemm(...,
    tile=T)`` does; only a T tile's last K tile adds into P_O.

    Members (packed buses are little-endian: element 0 in the least significant bits)
    -------
    w_load In(1), w_row In(log2 R), w_data In(C codes): load row ``w_row`` of the weight
        tile (element c -> column c). Takes effect at the next edge (into the shadow row with
        ``double_buffer``). Timing rules: docs/design.md "Array schedule".
    a_valid In(1), a_data In(R codes): one activation vector (element r -> row r);
    a_swap In(1) (``double_buffer`` only): this vector is the first of a new K tile: every PE
    swaps its shadow weight in just before this vector reaches it;
    a_first In(1): this is the first K tile for this output (start the outer sum at 0);
    a_last In(1): last K tile (emit the result); a_addr In(log2 acc_depth): accumulator entry.
    a_tfirst, a_tlast In(1) (T > R only): the first / last K tile of a T tile; ``a_first`` /
    ``a_last`` then mark the first / last T tile (read with ``a_tlast``).
    y_valid Out(1), y_data Out(C x out_bits), y_ovf_inner Out(C), y_ovf_outer Out(C),
    y_addr Out(log2 acc_depth): the finished outputs, ``latency`` cycles after the vector with
    ``a_last`` entered. Flags are sticky over the K tiles of one output.

    Golden model: ``golden.accum.gemm(W, A, inner_bits=P_I, tile=T, outer_bits=P_O, policy)``
    on the decoded integer operands.
    """

    def __init__(
        self,
        *,
        rows,
        cols,
        acc_bits,
        out_bits,
        policy,
        acc_depth,
        w_code,
        a_code,
        extra_ports=None,
        rows_per_code: int = 1,
        double_buffer: bool = False,
        pipeline: int = 0,
        tile: int | None = None,
    ) -> None:
        self.rows = check_int("rows", rows, 1, 64)
        # A code may cover several adjacent K rows (OliVe pairs: 2); rows must tile by it.
        self.rows_per_code = rows_per_code
        if rows % rows_per_code:
            raise ValueError(f"rows must be a multiple of {rows_per_code}, not {rows}")
        codes_per_col = rows // rows_per_code
        self.cols = check_int("cols", cols, 1, 64)
        self.acc_bits = check_int("acc_bits", acc_bits, 2, 62)
        self.policy = check_choice("policy", policy, POLICIES)
        self.out_bits = check_int("out_bits", out_bits, acc_bits, 62)
        self.double_buffer = check_bool("double_buffer", double_buffer)
        self.pipeline = check_int("pipeline", pipeline, 0, 3)
        self.acc_depth = check_acc_depth(acc_depth, pipeline)
        self.tile = check_tile(tile, rows=rows, pipeline=pipeline, acc_depth=acc_depth)
        extra = dict(extra_ports or {})
        if double_buffer:
            extra["a_swap"] = In(1)
        if self.tile > rows:
            extra["a_tfirst"], extra["a_tlast"] = In(1), In(1)
        super().__init__(
            array_ports(
                w_rows=codes_per_col,
                w_data=data.ArrayLayout(w_code, cols),
                a_data=data.ArrayLayout(a_code, codes_per_col),
                cols=cols,
                out_bits=out_bits,
                acc_depth=acc_depth,
                extra=extra,
            )
        )

    @property
    def edge_stages(self) -> int:
        """Registers between the activation port (after its decoders) and row 0: one when the
        operands are pipelined or a swap must run one cycle ahead of its vector."""
        return int(self.pipeline >= 1 or self.double_buffer)

    @property
    def pe_pipeline(self) -> int:
        """Registers inside each PE: the product (``pipeline`` = 2), and the partial products
        or the product before the shifter too (``pipeline`` = 3)."""
        return max(0, self.pipeline - 1)

    @property
    def read_register(self) -> bool:
        """``pipeline`` = 3 registers the accumulator memory's output before the add (the
        read is issued two cycles ahead; the writes in flight are forwarded)."""
        return self.pipeline >= 3

    @property
    def split_add(self) -> bool:
        """``pipeline`` = 2 splits the output unit's P_O add over two cycles."""
        return self.pipeline >= 2

    @property
    def psum_skew(self) -> int:
        """Cycles the column's partial sum arrives late at the bottom beyond the PE pipeline:
        INT's pipeline 3 (its PEs add the sum in two halves a cycle apart, the low half
        re-aligned at the bottom); 0 for the other schemes."""
        return 0

    @property
    def latency(self) -> int:
        """Cycles from a vector on ``a_data`` to its outputs on ``y_data``:
        R + C + edge_stages + pe_pipeline + psum_skew + split_add (the pipelined output unit
        reads its memory one cycle ahead, two with the read register, so that adds none)."""
        return (self.rows + self.cols + self.edge_stages + self.pe_pipeline + self.psum_skew
                + int(self.split_add))  # fmt: skip

    def _decode(self, m: Module, code, which: str, name: str):
        """Operand decoder at the array edge (``which`` is "w" or "a"): INT uses the code."""
        return code

    def _decode_w(self, m: Module, w_data) -> list[list]:
        """Decoded operands of one weight load: ``rows_per_code`` K rows of C operands."""
        return [[self._decode(m, w_data[c], "w", f"wdec_{c}") for c in range(self.cols)]]

    def _decode_a(self, m: Module, a_data) -> list:
        """Decoded operands of one activation vector: R operands, row 0 first."""
        return [self._decode(m, a_data[r], "a", f"adec_{r}") for r in range(self.rows)]

    def _make_pe(self) -> wiring.Component:
        raise NotImplementedError

    def _weights(self, m: Module) -> list[list]:
        """The loaded weight registers (the shadow rows with ``double_buffer``), a row (or a
        group of rows_per_code rows) per load."""
        w_in = self._decode_w(m, self.w_data)
        per, name = self.rows_per_code, "wsh" if self.double_buffer else "w"
        regs = [
            [Signal(w_in[r % per][c].shape(), name=f"{name}_{r}_{c}") for c in range(self.cols)]
            for r in range(self.rows)
        ]
        for j in range(self.rows // per):
            with m.If(self.w_load & (self.w_row == j)):
                m.d.sync += [
                    regs[j * per + k][c].eq(w_in[k][c])
                    for k in range(per)
                    for c in range(self.cols)
                ]
        return regs

    def elaborate(self, platform):
        m = Module()
        R, C, e = self.rows, self.cols, self.edge_stages
        loaded = self._weights(m)
        psum_top = [Signal(signed(self.acc_bits), name=f"psum_top_{c}") for c in range(C)]
        ovf_top = [Signal(name=f"ovf_top_{c}") for c in range(C)]
        psum, ovf = list(psum_top), list(ovf_top)
        acts = [_delay(m, a, e, f"edge_{r}") for r, a in enumerate(self._decode_a(m, self.a_data))]
        # The swap token runs one cycle ahead of its vector (e = 1): PE (r, c) copies its shadow
        # weight at the edge before the vector reaches it.
        swap = self.a_valid & self.a_swap if self.double_buffer else None
        for r in range(R):
            act = _delay(m, acts[r], r, f"skew_{r}")  # row r sees the vector r cycles later
            tok = _delay(m, swap, r, f"swap_skew_{r}") if swap is not None else None
            for c in range(C):
                pe = m.submodules[f"pe_{r}_{c}"] = self._make_pe()
                weight = loaded[r][c]
                if tok is not None:
                    weight = Signal(loaded[r][c].shape(), name=f"w_{r}_{c}")
                    with m.If(tok):
                        m.d.sync += weight.eq(loaded[r][c])
                    tok = _delay(m, tok, 1, f"swap_{r}_{c}")
                m.d.comb += [
                    pe.w.eq(weight),
                    pe.a.eq(act),
                    pe.psum_in.eq(psum[c]),
                    pe.ovf_in.eq(ovf[c]),
                ]
                psum[c], ovf[c] = pe.psum_out, pe.ovf_out
                act = _delay(m, act, 1, f"act_{r}_{c}")  # moves right one PE per cycle

        valid = self.a_valid
        if self.tile > R:
            self._chain_tiles(m, psum_top, ovf_top, psum, ovf)
            valid = self.a_valid & self.a_tlast  # only a T tile's last K tile reaches P_O
        if self.psum_skew:
            psum, ovf = self._align_skewed(m, psum, ovf)
        # De-skew: column c's tile sum leaves the grid R + c (+ stages) cycles after the vector
        # entered; all columns are aligned at latency - 1.
        tile = [_delay(m, psum[c], C - 1 - c, f"deskew_{c}") for c in range(C)]
        tile_ovf = [_delay(m, ovf[c], C - 1 - c, f"deskew_ovf_{c}") for c in range(C)]
        ctrl = [valid, self.a_first, self.a_last, self.a_addr]
        output_unit(m, self, tile, tile_ovf, *ctrl)
        return m

    def _align_skewed(self, m: Module, psum, ovf):
        """``psum_skew``: the bottom's low half a cycle later, beside its high half (PEs
        that add in skewed halves), or the whole sum and flag a cycle later (PEs that cannot:
        saturation, wide products), so every INT pipeline-3 array has the same latency."""
        if self.skewed_pes:
            h = self.acc_bits // 2
            aligned = []
            for c, p in enumerate(psum):
                lo = _delay(m, p[:h], 1, f"skew_lo_{c}")
                aligned.append(Cat(lo, p[h:]).as_signed())
            return aligned, ovf  # the flag stays a cycle behind the (now whole) sum
        return (
            [_delay(m, p, 1, f"skew_sum_{c}") for c, p in enumerate(psum)],
            [_delay(m, o, 1, f"skew_ovf_{c}") for c, o in enumerate(ovf)],
        )

    def _chain_tiles(self, m: Module, psum_top, ovf_top, psum_bottom, ovf_bottom) -> None:
        """``tile`` = T > R: the column chain is the inner accumulator of T rows. The sum and
        the sticky flag leaving the bottom of column c are kept per accumulator entry and enter
        the top of column c again with the entry's next K tile (0 on ``a_tfirst``), so the
        P_I-bit register runs on over T / R K tiles in input order. Column c's top sees a
        vector top = edge_stages + pe_pipeline + c cycles after it entered, its bottom R cycles
        later: an entry's next K tile may enter R + 1 cycles after its last one at the
        earliest (the schedule's rule, ``StreamingArray.period``)."""
        R, C, D = self.rows, len(psum_top), self.acc_depth
        first_top = self.edge_stages + self.pe_pipeline
        addr = _taps(m, self.a_addr, first_top + C - 1 + R, "tile_addr")
        tfirst = _taps(m, self.a_tfirst, first_top + C - 1, "tile_first")
        valid = _taps(m, self.a_valid, first_top + C - 1 + R, "tile_valid")
        for c in range(C):
            top, bottom = first_top + c, first_top + c + R
            sums = Array(Signal(signed(self.acc_bits), name=f"chain_{c}_{i}") for i in range(D))
            flags = Array(Signal(name=f"chain_ovf_{c}_{i}") for i in range(D))
            m.d.comb += [
                psum_top[c].eq(Mux(tfirst[top], 0, sums[addr[top]])),
                ovf_top[c].eq(~tfirst[top] & flags[addr[top]]),
            ]
            with m.If(valid[bottom]):
                m.d.sync += [
                    sums[addr[bottom]].eq(psum_bottom[c]),
                    flags[addr[bottom]].eq(ovf_bottom[c]),
                ]


def check_tile(tile, *, rows: int, pipeline: int, acc_depth: int) -> int:
    """The inner accumulator's tile T (None: the rows): a multiple of ``rows``; T > R keeps
    each entry's column sums in flip-flops (acc_depth <= 256) and takes pipeline <= 2 (pipeline
    3's flags run a cycle behind the sums)."""
    if tile is None:
        return rows
    check_int("tile", tile, rows, 1 << 20)
    if tile % rows:
        raise ValueError(f"tile must be a multiple of rows ({rows}), not {tile}")
    if tile > rows and pipeline > 2:
        raise ValueError(f"tile > rows takes pipeline 0..2, not pipeline={pipeline}")
    if tile > rows and acc_depth > 256:
        raise ValueError(
            f"tile > rows keeps each entry's column sums in flip-flops: acc_depth must be at "
            f"most 256, not {acc_depth}"
        )
    return tile


def check_acc_depth(acc_depth, pipeline: int) -> int:
    """Entries per output column: a power of two, 2..256 as flip-flops (``pipeline`` = 0, a
    one-cycle read-modify-write), up to 4,096 as a memory with a registered read."""
    check_int("acc_depth", acc_depth, 2, 4096)
    if acc_depth & (acc_depth - 1):
        raise ValueError(f"acc_depth must be a power of two, not {acc_depth}")
    if acc_depth > 256 and pipeline == 0:
        raise ValueError(
            f"acc_depth above 256 needs pipeline >= 1 (a memory with a registered read), "
            f"not acc_depth={acc_depth} with pipeline=0"
        )
    return acc_depth


def output_unit(m: Module, arr, tile, tile_ovf, a_valid, a_first, a_last, a_addr) -> None:
    """The outer accumulators of an array: ``acc_depth`` entries of ``out_bits`` (P_O) per
    column: entry ``addr`` += ``tile[c]`` (restarting at 0 on ``first``), with the policy and
    sticky inner / outer flags; registered outputs, ``y_valid`` on ``last``. ``tile`` /
    ``tile_ovf`` arrive ``arr.latency - 1`` cycles after the vector's control inputs
    ``a_*``, which this unit delays to match; one accumulator column per entry of ``tile`` (an
    array's columns, or MicroScopiQ b = 2's lanes). ``arr`` supplies out_bits, policy,
    acc_depth, latency, pipeline (0: flip-flop entries, read-modify-write in one cycle;
    >= 1: one memory, read a cycle ahead through a port transparent to the write, so a vector
    may update the entry the previous vector wrote), split_add (the add over two cycles, low
    half then high half with the carry: an entry may then be updated every other cycle) and the
    y_* ports."""
    if getattr(arr, "read_register", False):
        _split_output_unit_reg(m, arr, tile, tile_ovf, a_valid, a_first, a_last, a_addr)
        return
    if getattr(arr, "split_add", False):
        _split_output_unit(m, arr, tile, tile_ovf, a_valid, a_first, a_last, a_addr)
        return
    stage = arr.latency - 1
    valid, first, last = (
        _delay(m, s, stage, f"ctrl{i}") for i, s in enumerate((a_valid, a_first, a_last))
    )
    addr_early = _delay(m, a_addr, stage - 1, "ctrl_addr")
    addr = _delay(m, addr_early, 1, "ctrl_addr_s")
    C, P = len(tile), arr.out_bits
    piped = getattr(arr, "pipeline", 0) >= 1
    if not piped:
        prev = [Array(Signal(signed(P), name=f"acc_{c}_{i}") for i in range(arr.acc_depth))
                for c in range(C)]  # fmt: skip
        p_oi = [Array(Signal(name=f"acc_ovfi_{c}_{i}") for i in range(arr.acc_depth))
                for c in range(C)]  # fmt: skip
        p_oo = [Array(Signal(name=f"acc_ovfo_{c}_{i}") for i in range(arr.acc_depth))
                for c in range(C)]  # fmt: skip
        read = [(prev[c][addr], p_oi[c][addr], p_oo[c][addr]) for c in range(C)]
    else:
        wp, rp = _acc_memory(m, arr, C, addr_early, addr, valid)
        read = [(rp.data[c].sum, rp.data[c].oi, rp.data[c].oo) for c in range(C)]
    for c in range(C):
        old, old_oi, old_oo = read[c]
        base = Signal(signed(P), name=f"prev_{c}")
        m.d.comb += base.eq(Mux(first, 0, old))
        total, o_ovf = add_with_policy(m, base, tile[c], P, arr.policy, carries=piped)
        new_oi = Mux(first, 0, old_oi) | tile_ovf[c]
        new_oo = Mux(first, 0, old_oo) | o_ovf
        if not piped:
            with m.If(valid):
                m.d.sync += [prev[c][addr].eq(total), p_oi[c][addr].eq(new_oi),
                             p_oo[c][addr].eq(new_oo)]  # fmt: skip
        else:
            m.d.comb += [
                wp.data[c].sum.eq(total),
                wp.data[c].oi.eq(new_oi),
                wp.data[c].oo.eq(new_oo),
            ]
        m.d.sync += [
            arr.y_data[c].eq(total),
            arr.y_ovf_inner[c].eq(new_oi),
            arr.y_ovf_outer[c].eq(new_oo),
        ]
    m.d.sync += [arr.y_valid.eq(valid & last), arr.y_addr.eq(addr)]


def _acc_memory(m: Module, arr, cols: int, read_addr, write_addr, write_en, transparent=True):
    """The accumulator entries as one memory, C x (P_O sum, inner flag, outer flag) wide: a
    registered read port (address ``read_addr``), transparent to the write port unless
    ``transparent`` is False (the caller then forwards the write of the read's cycle)."""
    entry = data.StructLayout({"sum": signed(arr.out_bits), "oi": 1, "oo": 1})
    mem = m.submodules.acc_mem = Memory(
        shape=data.ArrayLayout(entry, cols), depth=arr.acc_depth, init=[]
    )
    wp = mem.write_port()
    rp = mem.read_port(transparent_for=(wp,) if transparent else ())
    m.d.comb += [rp.addr.eq(read_addr), wp.addr.eq(write_addr), wp.en.eq(write_en)]
    return wp, rp


def _apply_policy(m: Module, policy: str, exact, bits: int, c: int):
    """The outer add's overflow (from the bits above P - 1: the exact sum fits iff they are
    all equal) and its P-bit result under ``policy``: ``(ovf, total)`` signals."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    top = exact[bits - 1 :]
    ovf = Signal(name=f"ovf_o_{c}")
    m.d.comb += ovf.eq((top != 0) & (top != (1 << len(top)) - 1))
    total = Signal(signed(bits), name=f"total_{c}")
    if policy == "wrap":
        m.d.comb += total.eq(exact[:bits])  # keep the low P bits: two's complement wrap
    else:
        m.d.comb += total.eq(Mux(ovf, Mux(exact[-1], lo, hi), exact[:bits]))
    return ovf, total


def _split_output_unit(m: Module, arr, tile, tile_ovf, a_valid, a_first, a_last, a_addr):
    """``output_unit`` with the P_O add in two stages: A (``latency`` - 2 after the vector) adds
    the low halves of the entry (read a cycle ahead) and the tile sum and registers the carry;
    B adds the high halves and the carry, applies the policy (overflow from the bits above
    P - 1), writes the entry and the outputs. The same entry may be updated every other cycle:
    B writes at the end of the cycle in which the next vector's A would need it."""
    C, P = len(tile), arr.out_bits
    H = P // 2
    stage = arr.latency - 2  # stage A
    valid, first, last = (
        _delay(m, s, stage, f"ctrl{i}") for i, s in enumerate((a_valid, a_first, a_last))
    )
    addr_early = _delay(m, a_addr, stage - 1, "ctrl_addr")
    addr = _delay(m, addr_early, 1, "ctrl_addr_s")
    v_b, f_b, l_b, a_b = (
        _delay(m, s, 1, f"stage_b{i}") for i, s in enumerate((valid, first, last, addr))
    )
    wp, rp = _acc_memory(m, arr, C, addr_early, a_b, v_b)
    for c in range(C):
        width = max(P, len(tile[c]))
        t_x = Signal(signed(width), name=f"tile_x_{c}")
        p_x = Signal(signed(width), name=f"prev_x_{c}")
        m.d.comb += [t_x.eq(tile[c]), p_x.eq(Mux(first, 0, rp.data[c].sum))]
        # stage A: low halves (unsigned) and their carry
        lo_sum = Signal(H + 1, name=f"lo_sum_{c}")
        m.d.comb += lo_sum.eq(p_x[:H] + t_x[:H])
        lo_q = Signal(H, name=f"lo_q_{c}")
        carry_q = Signal(name=f"carry_q_{c}")
        t_hi = Signal(signed(width - H), name=f"tile_hi_q_{c}")
        p_hi = Signal(signed(width - H), name=f"prev_hi_q_{c}")
        oi_q, oo_q = Signal(name=f"oi_q_{c}"), Signal(name=f"oo_q_{c}")
        m.d.sync += [
            lo_q.eq(lo_sum[:H]),
            carry_q.eq(lo_sum[H]),
            t_hi.eq(t_x[H:].as_signed()),
            p_hi.eq(p_x[H:].as_signed()),
            oi_q.eq(Mux(first, 0, rp.data[c].oi) | tile_ovf[c]),
            oo_q.eq(Mux(first, 0, rp.data[c].oo)),
        ]
        # stage B: high halves with the carry; the exact sum is {hi, lo}
        hi_sum = Signal(signed(width - H + 2), name=f"hi_sum_{c}")
        m.d.comb += hi_sum.eq(p_hi + t_hi + carry_q)
        exact = Signal(signed(width + 2), name=f"exact_{c}")
        m.d.comb += exact.eq(Cat(lo_q, hi_sum).as_signed())
        ovf, total = _apply_policy(m, arr.policy, exact, P, c)
        new_oo = oo_q | ovf
        m.d.comb += [wp.data[c].sum.eq(total), wp.data[c].oi.eq(oi_q), wp.data[c].oo.eq(new_oo)]
        m.d.sync += [
            arr.y_data[c].eq(total),
            arr.y_ovf_inner[c].eq(oi_q),
            arr.y_ovf_outer[c].eq(new_oo),
        ]
    m.d.sync += [arr.y_valid.eq(v_b & l_b), arr.y_addr.eq(a_b)]


def _split_output_unit_reg(m: Module, arr, tile, tile_ovf, a_valid, a_first, a_last, a_addr):
    """The pipeline-3 output unit (``arr.read_register``; :func:`_split_output_unit` keeps
    pipeline 2's netlist as committed). Stage A (``latency`` - 2 after the vector) adds the
    entry and the tile sum as a three-segment carry-select adder (:func:`_carry_select_add`),
    stage B picks the segments, applies the policy, gives the outputs and registers the
    entry, stage C writes it. The entry's old value comes from the memory read two cycles
    ahead of A into a register, with ``first`` and the forwarding applied before that
    register, so that stage A starts from a flip-flop. An update must see the one of the
    vector 2, 3 or 4 ahead of it (an entry every other cycle at most): 4 ahead from a copy of
    stage C's register (its write shares the read's cycle; the read port is not transparent,
    which would put yosys's bypass mux behind the block RAM's slow clock-to-out), 3 ahead from
    stage C's register, 2 ahead from stage B's sum. The memory's data passes one mux before
    its register. The tile's inner flag arrives with stage B (the pipeline-3 PEs' flags run a
    cycle behind their sums)."""
    C, P = len(tile), arr.out_bits
    stage = arr.latency - 2  # stage A
    valid, last = (_delay(m, s, stage, f"ctrl{i}") for i, s in ((0, a_valid), (2, a_last)))
    addr_early = _delay(m, a_addr, stage - 2, "ctrl_addr")
    addr = _delay(m, addr_early, 2, "ctrl_addr_s")
    v_b, l_b, a_b = (_delay(m, s, 1, f"stage_b{i}") for i, s in enumerate((valid, last, addr)))
    v_c, a_c = _delay(m, v_b, 1, "stage_c0"), _delay(m, a_b, 1, "stage_c1")
    wp, rp = _acc_memory(m, arr, C, addr_early, a_c, v_c, transparent=False)
    # the selects for the cycle before stage A, compared a cycle earlier still and registered:
    # they fan out to every bit of every column
    first_early = _delay(m, a_first, stage - 2, "ctrl_first_early")
    names = ("acc_clear", "acc_fwd2", "acc_fwd3", "acc_raw")
    clear, fwd2, fwd3, use_raw = (Signal(name=n) for n in names)
    hit2 = valid & (addr == addr_early) & ~first_early
    hit3 = v_b & (a_b == addr_early)
    hit4 = v_c & (a_c == addr_early)
    m.d.sync += [
        clear.eq(first_early),
        fwd2.eq(hit2),
        fwd3.eq(hit3),
        use_raw.eq(~(first_early | hit2 | hit3 | hit4)),
    ]
    fwd2_a = _delay(m, fwd2, 1, "acc_fwd2_a")  # stage A of the update forwarded 2 ahead
    for c in range(C):
        c_reg = Signal.like(wp.data[c], name=f"acc_wr_q_{c}")
        c_reg2 = Signal.like(wp.data[c], name=f"acc_wr_qq_{c}")
        rq = Signal.like(rp.data[c], name=f"acc_rd_q_{c}")
        m.d.comb += wp.data[c].eq(c_reg)
        m.d.sync += c_reg2.eq(c_reg)
        width = max(P, len(tile[c]))
        t_x = Signal(signed(width), name=f"tile_x_{c}")
        p_x = Signal(signed(width), name=f"prev_x_{c}")
        m.d.comb += [t_x.eq(tile[c]), p_x.eq(rq.sum)]
        oi_q, oo_q = Signal(name=f"oi_q_{c}"), Signal(name=f"oo_q_{c}")
        ovf_q = Signal(name=f"ovf_o_q_{c}")
        # the outer flag forwarded 2 ahead is the entry's before this update; its own overflow
        # joins a cycle later, in stage A of the update it was forwarded to (no overflow test
        # on the forwarding path into the read register)
        m.d.sync += [oi_q.eq(rq.oi), oo_q.eq(rq.oo | (fwd2_a & ovf_q))]
        oi_b = oi_q | tile_ovf[c]
        exact = Signal(signed(width + 2), name=f"exact_{c}")
        m.d.comb += exact.eq(_carry_select_add(m, p_x, t_x, P, f"_{c}"))
        ovf, total = _apply_policy(m, arr.policy, exact, P, c)
        new_oo = oo_q | ovf
        m.d.sync += [c_reg.sum.eq(total), c_reg.oi.eq(oi_b), c_reg.oo.eq(new_oo), ovf_q.eq(ovf)]
        # 4 ahead is the default: the memory's data is taken only when no write is in flight.
        # fwd2 excludes the others (use_raw is 0 with it), so the 2-ahead sum, the latest
        # arrival, passes one mux and the rest is selected beside it
        older = Mux(clear, 0, Mux(fwd3, c_reg.as_value(), c_reg2.as_value()))
        other = Mux(use_raw, rp.data[c].as_value(), older)
        m.d.sync += [
            rq.eq(Mux(fwd2, Cat(total, oi_b, oo_q), other)),
            arr.y_data[c].eq(total),
            arr.y_ovf_inner[c].eq(oi_b),
            arr.y_ovf_outer[c].eq(new_oo),
        ]
    m.d.sync += [arr.y_valid.eq(v_b & l_b), arr.y_addr.eq(a_b)]


def _carry_select_add(m: Module, x, y, bits: int, name: str):
    """``x + y`` (signed, equal widths >= ``bits``) over two cycles as a carry-select adder in
    three segments of about ``bits`` / 3: the first cycle adds each segment (the upper two for
    a carry in of 0 and of 1) and registers the sums with their carries; the second picks each
    upper segment by the carry out of the one below (two muxes, no carry chain). Returns the
    exact sum (two bits wider), valid in the second cycle."""
    width = len(x)
    b1, b2 = bits // 3, 2 * bits // 3
    s0 = Signal(b1 + 1, name=f"seg0_q{name}")
    m.d.sync += s0.eq(x[:b1] + y[:b1])
    mid = [Signal(b2 - b1 + 1, name=f"seg1_{k}_q{name}") for k in (0, 1)]
    top = [Signal(signed(width - b2 + 2), name=f"seg2_{k}_q{name}") for k in (0, 1)]
    xt, yt = x[b2:].as_signed(), y[b2:].as_signed()
    m.d.sync += [
        mid[0].eq(x[b1:b2] + y[b1:b2]),
        mid[1].eq(x[b1:b2] + y[b1:b2] + 1),
        top[0].eq(xt + yt),
        top[1].eq(xt + yt + 1),
    ]
    m1 = Mux(s0[-1], mid[1], mid[0])
    m2 = Mux(m1[-1], top[1], top[0])
    return Cat(s0[:b1], m1[: b2 - b1], m2).as_signed()


class IntArray(SystolicArray):
    """The INT systolic array (int.md "Array"): operands are the two's complement or unsigned
    codes themselves, PEs are :class:`hdl.int_pe.IntPE`.

    Parameters (keyword only): rows, cols (1..64); w_bits/a_bits/w_signed/a_signed: operand
    formats; acc_bits: P_I; out_bits: P_O (>= P_I); policy: ``wrap`` / ``saturate`` (both
    stages); acc_depth: output-accumulator entries per column (power of two); double_buffer,
    pipeline: see :class:`SystolicArray`. Ports and timing: see :class:`SystolicArray`.
    """

    def __init__(
        self,
        *,
        rows: int = 4,
        cols: int = 4,
        w_bits: int = 4,
        a_bits: int = 8,
        w_signed: bool = True,
        a_signed: bool = True,
        acc_bits: int = 32,
        out_bits: int = 32,
        policy: str = "wrap",
        acc_depth: int = 4,
        double_buffer: bool = False,
        pipeline: int = 0,
        tile: int | None = None,
    ) -> None:
        self._pe_params = check_pe_params(
            w_bits=w_bits,
            a_bits=a_bits,
            w_signed=w_signed,
            a_signed=a_signed,
            acc_bits=acc_bits,
            policy=policy,
        )
        self.w_bits, self.a_bits = w_bits, a_bits
        self.w_signed, self.a_signed = w_signed, a_signed
        super().__init__(
            rows=rows,
            cols=cols,
            acc_bits=acc_bits,
            out_bits=out_bits,
            policy=policy,
            acc_depth=acc_depth,
            double_buffer=double_buffer,
            pipeline=pipeline,
            tile=tile,
            w_code=signed(w_bits) if w_signed else unsigned(w_bits),
            a_code=signed(a_bits) if a_signed else unsigned(a_bits),
        )

    @property
    def psum_skew(self) -> int:
        return int(self.pipeline >= 3)

    @property
    def skewed_pes(self) -> bool:
        """Pipeline 3 with PEs that add in skewed halves (:func:`hdl.int_pe.skew_capable`)."""
        p = self._pe_params
        return self.pipeline >= 3 and skew_capable(
            p["w_bits"], p["a_bits"], p["acc_bits"], p["policy"]
        )

    def _make_pe(self) -> wiring.Component:
        return IntPE(**self._pe_params, pipeline=3 if self.skewed_pes else self.pe_pipeline)
