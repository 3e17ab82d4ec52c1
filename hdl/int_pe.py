"""INT processing element: one multiply-accumulate into a P-bit partial sum (int.md "PE")."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._params import check_bool, check_choice, check_int

__all__ = [
    "POLICIES",
    "IntPE",
    "add_with_policy",
    "check_pe_params",
    "pe_signature",
    "pe_accumulate",
]

POLICIES = ("wrap", "saturate")


def add_with_policy(m: Module, acc, addend, bits: int, policy: str, *, carries: bool = False):
    """Combinational ``acc + addend`` into a ``bits``-bit signed result, plus an overflow bit.

    The sum is first formed exactly (Amaranth widens ``+`` by one bit), then either truncated to
    the low ``bits`` bits (wrap: a deliberate truncation, mirrored by ``golden.numerics.wrap``)
    or clamped to the P-bit range (saturate, mirrored by ``golden.numerics.saturate``).
    ``carries``: detect overflow from the bits above P - 1 (the exact sum fits iff they are all
    equal) instead of comparing it against both limits; the same function, which the pipelined
    datapaths use (the committed pipeline-0 reports keep the compares). Returns
    ``(result, overflow)`` signals.
    """
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    exact = Signal(signed(max(len(acc), len(addend), bits) + 2))
    result = Signal(signed(bits))
    overflow = Signal()
    m.d.comb += exact.eq(acc + addend)
    if carries:
        top = exact[bits - 1 :]
        m.d.comb += overflow.eq((top != 0) & (top != (1 << len(top)) - 1))
        # the sign of the exact sum picks the limit
        clamped = Mux(overflow, Mux(exact[-1], lo, hi), exact[:bits])
    else:
        m.d.comb += overflow.eq((exact < lo) | (exact > hi))
        clamped = Mux(exact < lo, lo, Mux(exact > hi, hi, exact))
    if policy == "wrap":
        m.d.comb += result.eq(exact[:bits])  # keep the low P bits: two's complement wrap
    else:
        m.d.comb += result.eq(clamped)
    return result, overflow


def pe_signature(w_shape, a_shape, acc_bits: int) -> dict:
    """Ports every PE shares: operands in, partial sum and sticky flag in and out."""
    return {
        "w": In(w_shape),
        "a": In(a_shape),
        "psum_in": In(signed(acc_bits)),
        "ovf_in": In(1),
        "psum_out": Out(signed(acc_bits)),
        "ovf_out": Out(1),
    }


def pe_accumulate(m: Module, pe, addend) -> None:
    """Register ``psum_in + addend`` (pe.policy, pe.acc_bits) and the sticky flag. With
    ``pe.pipeline`` = 1 the addend (the product) is registered first: the multiplier and the
    adder sit in different cycles and ``psum_in`` is expected one cycle after the operands."""
    piped = bool(getattr(pe, "pipeline", 0))
    if piped:
        staged = Signal(addend.shape(), name="product_q")
        m.d.sync += staged.eq(addend)
        addend = staged
    result, overflow = add_with_policy(
        m, pe.psum_in, addend, pe.acc_bits, pe.policy, carries=piped
    )
    m.d.sync += [pe.psum_out.eq(result), pe.ovf_out.eq(pe.ovf_in | overflow)]


def check_pe_params(
    *, w_bits: int, a_bits: int, w_signed: bool, a_signed: bool, acc_bits: int, policy: str
) -> dict:
    """Validate the operand/accumulator parameters shared by the PE and the array."""
    return dict(
        w_bits=check_int("w_bits", w_bits, 2, 16),
        a_bits=check_int("a_bits", a_bits, 2, 16),
        w_signed=check_bool("w_signed", w_signed),
        a_signed=check_bool("a_signed", a_signed),
        acc_bits=check_int("acc_bits", acc_bits, 2, 62),
        policy=check_choice("policy", policy, POLICIES),
    )


class IntPE(wiring.Component):
    """``psum_out <= psum_in + w * a`` in a ``acc_bits``-bit register, with a sticky flag.

    Parameters (keyword only)
    -------------------------
    w_bits, a_bits: operand widths (2..16); w_signed, a_signed: two's complement or unsigned.
    acc_bits: partial-sum width P_I (2..62). policy: ``"wrap"`` or ``"saturate"``.
    INT operands need no product shift (shift range 0); other schemes put a decoder in front.

    Members
    -------
    w, a: In, operand codes (signed or unsigned per parameter).
    psum_in: In(signed(acc_bits)), ovf_in: In(1): partial sum and sticky flag from above.
    psum_out: Out(signed(acc_bits)), ovf_out: Out(1): registered, ``latency`` = 1 cycle.
    pipeline: 1 registers the product first (``latency`` = 2; ``psum_in`` one cycle after the
    operands), as the arrays' ``pipeline`` = 2 uses it.
    ovf_out = ovf_in | (the exact sum left the P-bit range, or a clamp happened).

    Golden model: one step of ``golden.accum.accumulate`` (the partial sum enters as the
    register value).
    """

    latency = 1

    def __init__(
        self,
        *,
        w_bits: int = 4,
        a_bits: int = 8,
        w_signed: bool = True,
        a_signed: bool = True,
        acc_bits: int = 32,
        policy: str = "wrap",
        pipeline: int = 0,
    ) -> None:
        self.pipeline = check_int("pipeline", pipeline, 0, 1)
        self.latency = 1 + pipeline
        check_pe_params(
            w_bits=w_bits,
            a_bits=a_bits,
            w_signed=w_signed,
            a_signed=a_signed,
            acc_bits=acc_bits,
            policy=policy,
        )
        self.w_bits, self.a_bits, self.acc_bits = w_bits, a_bits, acc_bits
        self.w_signed, self.a_signed, self.policy = w_signed, a_signed, policy
        super().__init__(
            pe_signature(
                signed(w_bits) if w_signed else unsigned(w_bits),
                signed(a_bits) if a_signed else unsigned(a_bits),
                acc_bits,
            )
        )

    def elaborate(self, platform):
        m = Module()
        product = Signal(signed(self.w_bits + self.a_bits + 1))
        m.d.comb += product.eq(self.w * self.a)  # exact: the widths above always hold it
        pe_accumulate(m, self, product)
        return m
