"""ANT hardware: the (type_sel, code) -> (sign, mag, exp) decoder and the unified PE.

Formats and hardware: docs/ant.md. The decoder is structural: int takes a two's complement
absolute value, PoT subtracts one from its exponent field, flint runs a leading-ones detector
on the bits after its MSB. No table is generated from the golden model.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from ._params import check_choice, check_int
from .array import SystolicArray
from .int_pe import POLICIES, pe_accumulate, pe_signature

__all__ = [
    "AntKind",
    "type_sel_layout",
    "operand_layout",
    "ANT_TYPES",
    "ant_widths",
    "AntDecoder",
    "AntPE",
    "AntArray",
    "sme_mac",
]


class AntKind(enum.Enum, shape=2):
    INT = 0
    POT = 1
    FLINT = 2


type_sel_layout = data.StructLayout({"kind": AntKind, "signed": 1})


ANT_TYPES = ("int", "flint", "pot")


def ant_widths(bits: int, types: tuple[str, ...] = ANT_TYPES) -> tuple[int, int]:
    """(mag_bits, exp_bits) that hold the decoded operand of every type in ``types`` at
    ``bits`` (all three unless an ablation leaves some out).

    mag: int's |v| reaches 2^(b-1) signed / 2^b - 1 unsigned (b bits); flint's 2^r + m stays
    below 2^(b-1). exp: unsigned PoT reaches 2^b - 2, flint 2b - 2, int 0 (no shifter).
    """
    bad = [t for t in types if t not in ANT_TYPES]
    if bad or "int" not in types:
        raise ValueError(f"types must include int, among {', '.join(ANT_TYPES)}; not {types}")
    max_exp = max({"int": 0, "flint": 2 * bits - 2, "pot": 2**bits - 2}[t] for t in types)
    return bits, max_exp.bit_length()


def operand_layout(bits: int, types: tuple[str, ...] = ANT_TYPES) -> data.StructLayout:
    """Decoded operand, fields LSB first: mag, exp, sign; value = (-1)^sign * mag << exp."""
    mag_bits, exp_bits = ant_widths(bits, types)
    return data.StructLayout({"mag": unsigned(mag_bits), "exp": unsigned(exp_bits), "sign": 1})


def _flint_decode(m: Module, field, n: int, mag, exp, name: str) -> None:
    """Structural unsigned flint-n decode of ``field`` into ``mag`` / ``exp`` (comb)."""
    msb = field[n - 1]
    # Leading-ones detector on field[n-2:0]: k = number of 1s before the first 0.
    ones = Signal(range(n), name=f"{name}_k")
    with m.Switch(field[: n - 1]):
        for k in range(n - 1, -1, -1):
            # pattern: k ones, then a 0 (if k < n-1), then don't-cares
            pattern = "1" * k + ("0" + "-" * (n - 2 - k) if k < n - 1 else "")
            with m.Case(pattern):
                m.d.comb += ones.eq(k)
    with m.If(~msb):
        m.d.comb += [mag.eq(field), exp.eq(0)]  # plain integer 0 .. 2^(n-1) - 1
    with m.Elif(ones == n - 1):
        m.d.comb += [mag.eq(1), exp.eq(2 * n - 2)]  # all ones: 2^(2n-2)
    with m.Else():
        # r = n-2-k mantissa bits follow the terminating 0 (at bit r): mag = 2^r + m, and
        # exp = n-1+k-r = 2k+1.
        with m.Switch(ones):
            for k in range(n - 1):
                r = n - 2 - k
                with m.Case(k):
                    m.d.comb += [
                        mag.eq(Cat(field[:r], 1) if r else 1),
                        exp.eq(2 * k + 1),
                    ]


class AntDecoder(wiring.Component):
    """Combinational ANT decoder for ``bits``-bit codes with a runtime type select.

    Members
    -------
    code: In(bits). type_sel: In(type_sel_layout) — kind (INT/POT/FLINT) and signed, a
    per-tensor register held by the host. operand: Out(operand_layout(bits)), combinational
    (``latency`` = 0). Golden model: ``golden.ant.AntType(kind, bits, signed).decode``.
    """

    latency = 0

    def __init__(self, *, bits: int = 4) -> None:
        self.bits = check_int("bits", bits, 3, 6)  # ANT uses int above 6 bits
        super().__init__(
            {
                "code": In(bits),
                "type_sel": In(type_sel_layout),
                "operand": Out(operand_layout(bits)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        b = self.bits
        code, sel, op = self.code, self.type_sel, self.operand
        is_signed = sel.signed
        sign_bit = code[b - 1]
        # int: two's complement absolute value. Deliberate truncation: -code is b+1 bits wide,
        # its low b bits are |v| (2^(b-1) for the most negative code still fits).
        int_mag = Signal(b)
        m.d.comb += int_mag.eq(Mux(is_signed & sign_bit, -code, code))
        # pot: exponent field k (b-1 bits signed, b bits unsigned); 2^(k-1) for k > 0.
        pot_field = Signal(b)
        m.d.comb += pot_field.eq(Mux(is_signed, code[: b - 1], code))
        # flint: unsigned n = b, or sign + (b-1)-bit magnitude.
        fu_mag, fu_exp = Signal(b), Signal(len(op.exp))
        fs_mag, fs_exp = Signal(b), Signal(len(op.exp))
        _flint_decode(m, code, b, fu_mag, fu_exp, "flint_u")
        _flint_decode(m, code[: b - 1], b - 1, fs_mag, fs_exp, "flint_s")

        with m.Switch(sel.kind):
            with m.Case(AntKind.INT):
                m.d.comb += [op.sign.eq(is_signed & sign_bit), op.mag.eq(int_mag), op.exp.eq(0)]
            with m.Case(AntKind.POT):
                m.d.comb += [
                    op.sign.eq(is_signed & sign_bit & (pot_field != 0)),
                    op.mag.eq(pot_field != 0),
                    op.exp.eq(Mux(pot_field != 0, pot_field - 1, 0)),
                ]
            with m.Case(AntKind.FLINT):
                m.d.comb += [
                    op.sign.eq(is_signed & sign_bit & (fs_mag != 0)),
                    op.mag.eq(Mux(is_signed, fs_mag, fu_mag)),
                    op.exp.eq(Mux(is_signed, fs_exp, fu_exp)),
                ]
        return m


class AntPE(wiring.Component):
    """Unified ANT PE: ``psum_out <= psum_in ± (mag_w * mag_a) << (exp_w + exp_a)``.

    One small unsigned multiplier, a shifter and a conditional negate serve every type pair.
    Operands are decoded (``operand_layout(bits)``), from decoders at the array edges.

    Members: w, a: In(operand_layout(bits, types)); psum_in In(signed(acc_bits)), ovf_in In(1);
    psum_out, ovf_out registered (``latency`` = 1), overflow as ``hdl.int_pe.IntPE``.
    ``types`` (an ablation; default all): the ANT types the PE must multiply; without PoT the
    exponent (and so the shifter and the shifted product) shrinks, with int alone it goes.
    Golden model: one step of ``golden.accum.accumulate`` on the decoded integer values.
    """

    latency = 1

    def __init__(
        self,
        *,
        bits: int = 4,
        acc_bits: int = 32,
        policy: str = "wrap",
        pipeline: int = 0,
        types: tuple[str, ...] = ANT_TYPES,
    ) -> None:
        self.pipeline = check_int("pipeline", pipeline, 0, 2)
        # pipeline 1: the shifted product is registered first; 2: the magnitude product before
        # the shifter as well (sme_mac)
        self.latency = 1 + pipeline
        self.bits = check_int("bits", bits, 3, 6)
        self.acc_bits = check_int("acc_bits", acc_bits, 2, 62)
        self.policy = check_choice("policy", policy, POLICIES)
        self.types = tuple(types)
        layout = operand_layout(bits, self.types)
        super().__init__(pe_signature(layout, layout, acc_bits))

    def elaborate(self, platform):
        m = Module()
        sme_mac(m, self, self.w, self.a)
        return m


def sme_mac(m: Module, pe, w, a) -> None:
    """``psum_out <= psum_in ± (mag_w * mag_a) << (exp_w + exp_a)``: one unsigned multiplier,
    an exact shifter (never truncated) and a conditional negate, then the PE's adder (the
    sign-magnitude-exponent MAC that ANT's and OliVe's PEs share).

    Pipelined (``pe.pipeline`` >= 1) the negate comes before the shifter, on the
    2 mag_bits-bit product rather than the shifted one ((-p) << s = -(p << s), exact), and the
    adder takes the registered product split (:func:`hdl.int_pe.pe_accumulate`): the product
    stage loses a full-width negate and the add stage is one P-bit carry-select add (the
    shifted products are as wide as the partial sum, where INT's are narrow). ``pe.pipeline``
    = 2 registers the magnitude product, its sign and the shift amount (the multiplier alone
    in the first cycle); the second cycle shifts the magnitude and inverts it for a negative
    product, the add takes the + 1 as its carry in (-x = ~x + 1): no stage holds a negate."""
    mag_bits, exp_bits = len(w.mag), len(w.exp)
    prod = Signal(2 * mag_bits, name="mag_product")
    shift = Signal(exp_bits + 1)
    m.d.comb += [prod.eq(w.mag * a.mag), shift.eq(w.exp + a.exp)]
    width = 2 * mag_bits + 2 ** (exp_bits + 1) - 1
    value = Signal(signed(width + 1))
    if pe.pipeline >= 2:
        # the multiplier alone in the first cycle; the shifter in the second, where a negative
        # product is inverted (-x = ~x + 1) and its + 1 becomes the add stage's carry in
        sh_q, neg_q = Signal.like(shift, name="shift_q"), Signal(name="negate_q")
        if mag_bits >= 6:
            # wide magnitudes (OliVe-8's 7 x 7): two partial products in the first cycle, their
            # sum (exact) in the second, before the shifter
            cut = (mag_bits + 1) // 2
            pp_lo = Signal(cut + mag_bits, name="mag_pp_lo_q")
            pp_hi = Signal(2 * mag_bits - cut, name="mag_pp_hi_q")
            m.d.sync += [pp_lo.eq(w.mag[:cut] * a.mag), pp_hi.eq(w.mag[cut:] * a.mag)]
            m.d.sync += [sh_q.eq(shift), neg_q.eq(w.sign ^ a.sign)]
            prod_q = Signal.like(prod, name="mag_product_s")
            m.d.comb += prod_q.eq(pp_lo + (pp_hi << cut))
        else:
            prod_q = Signal.like(prod, name="mag_product_q")
            m.d.sync += [prod_q.eq(prod), sh_q.eq(shift), neg_q.eq(w.sign ^ a.sign)]
        shifted = Signal(width, name="shifted")
        m.d.comb += shifted.eq(prod_q << sh_q)  # exact: never truncated
        m.d.comb += value.eq(Cat(shifted, 0).as_signed() ^ neg_q.replicate(width + 1).as_signed())
        pe_accumulate(m, pe, value, split=True, carry_in=neg_q)
        return
    if pe.pipeline:
        signed_prod = Signal(signed(2 * mag_bits + 1), name="signed_product")
        m.d.comb += signed_prod.eq(Mux(w.sign ^ a.sign, -prod, prod))
        m.d.comb += value.eq(signed_prod << shift)  # exact: never truncated
    else:
        shifted = Signal(width)
        m.d.comb += shifted.eq(prod << shift)  # exact: never truncated
        m.d.comb += value.eq(Mux(w.sign ^ a.sign, -shifted, shifted))
    pe_accumulate(m, pe, value, split=True)


class AntArray(SystolicArray):
    """The ANT array: the foundation systolic array with ANT decoders at its edges.

    One :class:`AntDecoder` per loaded weight word (C) and per activation row (R) turns codes
    into (sign, mag, exp) operands for :class:`AntPE`. ``w_type`` / ``a_type``
    (``type_sel_layout``) are the per-tensor type registers, held by the host: ``w_type`` is
    sampled while weights load, ``a_type`` while activations stream.

    Parameters (keyword only): rows, cols; bits (3..6, both operands); acc_bits (P_I);
    out_bits (P_O); policy; acc_depth; double_buffer; pipeline. Other
    ports and timing: see :class:`SystolicArray`.
    Golden model: ``golden.accum.gemm`` on ``golden.ant.AntType(...).values`` of the codes.
    """

    def __init__(
        self,
        *,
        rows: int = 4,
        cols: int = 4,
        bits: int = 4,
        acc_bits: int = 32,
        out_bits: int = 32,
        policy: str = "wrap",
        acc_depth: int = 4,
        double_buffer: bool = False,
        pipeline: int = 0,
    ) -> None:
        self.bits = self.w_bits = self.a_bits = check_int("bits", bits, 3, 6)
        super().__init__(
            rows=rows,
            cols=cols,
            acc_bits=acc_bits,
            out_bits=out_bits,
            policy=policy,
            acc_depth=acc_depth,
            double_buffer=double_buffer,
            pipeline=pipeline,
            w_code=unsigned(bits),
            a_code=unsigned(bits),
            extra_ports={"w_type": In(type_sel_layout), "a_type": In(type_sel_layout)},
        )

    def _decode(self, m: Module, code, which: str, name: str):
        dec = m.submodules[name] = AntDecoder(bits=self.bits)
        sel = self.w_type if which == "w" else self.a_type
        m.d.comb += [dec.code.eq(code), dec.type_sel.eq(sel)]
        return dec.operand

    def _make_pe(self) -> wiring.Component:
        return AntPE(
            bits=self.bits, acc_bits=self.acc_bits, policy=self.policy, pipeline=self.pe_pipeline
        )
