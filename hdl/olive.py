"""OliVe hardware: the pair decoder, the (sign, mag, exp) PE and the OliVe array.

Formats and hardware: docs/olive.md. The pair decoder is structural: per lane, its own code
equal to the identifier gives 0; the partner's code equal to the identifier selects the
abfloat decode (mantissa with its hidden 1, exponent + the normal type's bias); otherwise the
normal decode (int sign-magnitude, or flint4's sign + 3-bit flint magnitude through the ANT
leading-ones decoder). No table is generated from the golden model.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ._params import check_bool, check_choice, check_int
from .ant import _flint_decode, sme_mac
from .array import SystolicArray
from .int_pe import POLICIES, pe_signature

__all__ = [
    "olive_widths",
    "olive_operand_layout",
    "OlivePairDecoder",
    "OlivePE",
    "OliveArray",
    "sme_mac",
]

NORMAL_MAX = {4: (7, 16), 8: (127,)}  # per normal_sel: int4 / flint4; int8


def _bias(m_bits: int, normal_max: int) -> int:
    """Smallest bias with (2^M + 1) << bias above the normal maximum (the spec's rule)."""
    b = 0
    while ((1 << m_bits) + 1) << b <= normal_max:
        b += 1
    return b


def _check(bits: int, e_bits: int) -> tuple[int, int]:
    bits = check_int("bits", bits, 4, 8)
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, not {bits}")
    return bits, check_int("e_bits", e_bits, 1, bits - 1)


def olive_widths(bits: int, e_bits: int = 2, outliers: bool = True) -> tuple[int, int]:
    """(mag_bits, exp_bits) of a decoded operand. mag: the normal magnitude field (bits - 1,
    flint4's magnitudes stay below 8) or the abfloat 1.m (M + 1 bits); exp: the largest
    abfloat exponent (2^E - 1 + bias) or flint4's 4. ``outliers=False`` (an ablation): the
    normal types alone (int4 / flint4, int8), no abfloat."""
    bits, e_bits = _check(bits, e_bits)
    if not outliers:
        return bits - 1, (4 if bits == 4 else 0).bit_length()
    m_bits = bits - 1 - e_bits
    max_exp = max((1 << e_bits) - 1 + _bias(m_bits, nm) for nm in NORMAL_MAX[bits])
    max_exp = max(max_exp, 4 if bits == 4 else 0)
    return max(bits - 1, m_bits + 1), max(1, max_exp.bit_length())


def olive_operand_layout(bits: int, e_bits: int = 2, outliers: bool = True) -> data.StructLayout:
    """Decoded operand, fields LSB first: mag, exp, sign; value = (-1)^sign * mag << exp."""
    mag_bits, exp_bits = olive_widths(bits, e_bits, outliers)
    return data.StructLayout({"mag": unsigned(mag_bits), "exp": unsigned(exp_bits), "sign": 1})


class OlivePairDecoder(wiring.Component):
    """Combinational OliVe pair decoder.

    Members
    -------
    pair: In(2 * bits): the even element in the low ``bits`` bits, the odd one above (the
    packed layout). normal_sel: In(1), 4-bit only: the tensor's normal type, 0 = int4,
    1 = flint4 (a per-tensor register held by the host). even, odd:
    Out(olive_operand_layout(bits, e_bits)); ``latency`` = 0.
    Golden model: ``golden.olive.decode_pair_operands``.
    """

    latency = 0

    def __init__(self, *, bits: int = 4, e_bits: int = 2) -> None:
        self.bits, self.e_bits = _check(bits, e_bits)
        layout = olive_operand_layout(bits, e_bits)
        ports = {"pair": In(2 * bits), "even": Out(layout), "odd": Out(layout)}
        if bits == 4:
            ports["normal_sel"] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        b, eb = self.bits, self.e_bits
        mb = b - 1 - eb
        ident = 1 << (b - 1)
        codes = [self.pair[:b], self.pair[b:]]
        flint = self.normal_sel if b == 4 else 0
        biases = [_bias(mb, nm) for nm in NORMAL_MAX[b]]
        for lane, out in enumerate((self.even, self.odd)):
            own, partner = codes[lane], codes[1 - lane]
            sign, field = own[b - 1], own[: b - 1]
            # normal: int sign-magnitude, or flint4 = sign + flint3 magnitude
            n_mag, n_exp = Signal(b - 1, name=f"n_mag{lane}"), Signal(len(out.exp))
            if b == 4:
                f_mag, f_exp = Signal(3, name=f"f_mag{lane}"), Signal(len(out.exp))
                _flint_decode(m, field, 3, f_mag, f_exp, f"flint{lane}")
                m.d.comb += [
                    n_mag.eq(Mux(flint, f_mag, field)),
                    n_exp.eq(Mux(flint, f_exp, 0)),
                ]
            else:
                m.d.comb += [n_mag.eq(field), n_exp.eq(0)]
            # abfloat: s | e | m -> (1.m, e + bias); the bias is the normal type's constant
            e, mant = own[mb : b - 1], own[:mb]
            bias = Mux(flint, biases[-1], biases[0]) if b == 4 else biases[0]
            with m.If(own == ident):
                m.d.comb += [out.sign.eq(0), out.mag.eq(0), out.exp.eq(0)]  # the victim
            with m.Elif(partner == ident):
                m.d.comb += [
                    out.sign.eq(sign),
                    out.mag.eq(Cat(mant, 1) if mb else 1),
                    out.exp.eq(e + bias),
                ]
            with m.Else():
                m.d.comb += [
                    out.sign.eq(sign & (n_mag != 0)),
                    out.mag.eq(n_mag),
                    out.exp.eq(n_exp),
                ]
        return m


class OlivePE(wiring.Component):
    """OliVe PE: the (sign, mag, exp) MAC of ANT on pair-decoded operands.

    Members: w, a: In(olive_operand_layout(bits)); psum_in In(signed(acc_bits)), ovf_in In(1);
    psum_out, ovf_out registered (``latency`` = 1), overflow as ``hdl.int_pe.IntPE``. Products
    reach 96 x 96 (int4 normal) or 192 x 192 (flint4) at 4 bits, 2016 x 2016 at 8 bits.
    ``outliers=False`` (an ablation): no outlier path, the normal types' operands only.
    Golden model: one step of ``golden.accum.accumulate`` on the decoded values.
    """

    latency = 1

    def __init__(
        self,
        *,
        bits: int = 4,
        e_bits: int = 2,
        acc_bits: int = 32,
        policy: str = "wrap",
        pipeline: int = 0,
        outliers: bool = True,
    ) -> None:
        self.pipeline = check_int("pipeline", pipeline, 0, 2)
        # pipeline 1: the shifted product is registered first; 2: the magnitude product before
        # the shifter as well (hdl.ant.sme_mac)
        self.latency = 1 + pipeline
        self.bits, self.e_bits = _check(bits, e_bits)
        self.acc_bits = check_int("acc_bits", acc_bits, 2, 62)
        self.policy = check_choice("policy", policy, POLICIES)
        self.outliers = check_bool("outliers", outliers)
        layout = olive_operand_layout(bits, e_bits, outliers)
        super().__init__(pe_signature(layout, layout, acc_bits))

    def elaborate(self, platform):
        m = Module()
        sme_mac(m, self, self.w, self.a)
        return m


class OliveArray(SystolicArray):
    """The OliVe array: the foundation systolic array with pair decoders at its edges.

    Codes are *pair words* (``2 * bits`` wide, even element low): one decoder per loaded weight
    word feeds two adjacent K rows of its column, one per activation pair feeds two adjacent
    rows (W4A4 / W8A8: both operands OVP-encoded). So ``w_row`` addresses a row pair
    (R / 2 of them), ``w_data`` holds C pair words and ``a_data`` R / 2 pair words; R (the K
    tile) must be even. ``w_normal`` / ``a_normal`` (4-bit only): the per-tensor normal types
    (0 int4, 1 flint4), sampled while weights load / activations stream.

    Parameters (keyword only): rows (even), cols; bits (4 or 8); e_bits (abfloat exponent
    bits, 2); acc_bits (P_I); out_bits (P_O); policy; acc_depth; double_buffer; pipeline. Other
    ports and timing: see
    :class:`SystolicArray`. Golden model: ``golden.accum.gemm`` on
    ``golden.olive.decode_pairs`` of the codes.
    """

    def __init__(
        self,
        *,
        rows: int = 4,
        cols: int = 4,
        bits: int = 4,
        e_bits: int = 2,
        acc_bits: int = 32,
        out_bits: int = 32,
        policy: str = "wrap",
        acc_depth: int = 4,
        double_buffer: bool = False,
        pipeline: int = 0,
    ) -> None:
        self.bits, self.e_bits = _check(bits, e_bits)
        self.w_bits = self.a_bits = bits
        extra = {"w_normal": In(1), "a_normal": In(1)} if bits == 4 else {}
        super().__init__(
            rows=rows,
            cols=cols,
            acc_bits=acc_bits,
            out_bits=out_bits,
            policy=policy,
            acc_depth=acc_depth,
            double_buffer=double_buffer,
            pipeline=pipeline,
            w_code=unsigned(2 * bits),
            a_code=unsigned(2 * bits),
            extra_ports=extra,
            rows_per_code=2,
        )

    def _pair(self, m: Module, word, which: str, name: str):
        dec = m.submodules[name] = OlivePairDecoder(bits=self.bits, e_bits=self.e_bits)
        m.d.comb += dec.pair.eq(word)
        if self.bits == 4:
            m.d.comb += dec.normal_sel.eq(self.w_normal if which == "w" else self.a_normal)
        return dec.even, dec.odd

    def _decode_w(self, m: Module, w_data) -> list[list]:
        pairs = [self._pair(m, w_data[c], "w", f"wdec_{c}") for c in range(self.cols)]
        return [[p[0] for p in pairs], [p[1] for p in pairs]]

    def _decode_a(self, m: Module, a_data) -> list:
        out = []
        for i in range(self.rows // 2):
            out += self._pair(m, a_data[i], "a", f"adec_{i}")
        return out

    def _make_pe(self) -> wiring.Component:
        return OlivePE(
            bits=self.bits,
            e_bits=self.e_bits,
            acc_bits=self.acc_bits,
            policy=self.policy,
            pipeline=self.pe_pipeline,
        )
