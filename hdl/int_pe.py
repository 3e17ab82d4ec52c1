"""INT processing element: one multiply-accumulate into a P-bit partial sum (int.md "PE")."""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal, signed, unsigned
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
    "check_skew",
    "skew_capable",
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


def pe_accumulate(m: Module, pe, addend, *, split: bool = False, carry_in=None) -> None:
    """Register ``psum_in + addend`` (pe.policy, pe.acc_bits) and the sticky flag. With
    ``pe.pipeline`` = 1 the addend (the product) is registered first: the multiplier and the
    adder sit in different cycles and ``psum_in`` is expected one cycle after the operands.
    ``split`` (ANT's and OliVe's shifted products, as wide as the partial sum or wider): the
    pipelined addend is registered split and added by :func:`_split_add`. ``pe.pipeline`` >= 2
    (``carry_in`` only there): :func:`_accumulate_late`."""
    if getattr(pe, "pipeline", 0) >= 2:
        _accumulate_late(m, pe, addend, carry_in)
        return
    piped = bool(getattr(pe, "pipeline", 0))
    if piped and split:
        result, overflow = _split_add(m, pe.psum_in, addend, pe.acc_bits, pe.policy)
        m.d.sync += [pe.psum_out.eq(result), pe.ovf_out.eq(pe.ovf_in | overflow)]
        return
    if piped:
        staged = Signal(addend.shape(), name="product_q")
        m.d.sync += staged.eq(addend)
        addend = staged
    result, overflow = add_with_policy(m, pe.psum_in, addend, pe.acc_bits, pe.policy, carries=piped)
    m.d.sync += [pe.psum_out.eq(result), pe.ovf_out.eq(pe.ovf_in | overflow)]


def _split_add(m: Module, acc, addend, bits: int, policy: str):
    """``acc + addend`` with the addend (ANT's and OliVe's shifted products, up to 40 bits
    against a 32-bit accumulator) registered first, split: its low P bits L and flags on its
    high part H = addend >> P (H = -2, -1, 0, 1, H < 0). The add stage is then one P-bit
    carry-select add and a few gates.

    With U the P bits of ``acc``, s its sign bit, c the carry out of U + L and r the top bit
    of R = (U + L) mod 2^P, the exact sum is (H - s + c) 2^P + R, which fits in P signed bits
    iff H = s - c - r (one of -2..1): overflow is a 3-input select of the flags, the wrapped
    result is R. Saturation picks the limit by the sign of H - s + c. The same function as
    :func:`add_with_policy`: ``tests/test_hdl_pipeline.py`` checks it against the golden
    accumulator step on every input pair at P = 5."""
    wide = Signal(signed(max(len(addend), bits + 1)), name="product")
    m.d.comb += wide.eq(addend)  # sign-extends a narrower addend: H is then -1 or 0
    high = wide[bits:].as_signed()
    low = Signal(bits, name="product_q")
    h = {k: Signal(name=f"product_h{'m' if k < 0 else ''}{abs(k)}") for k in (-2, -1, 0, 1)}
    h_neg = Signal(name="product_hneg")
    m.d.sync += [low.eq(wide[:bits]), h_neg.eq(high < 0)]
    m.d.sync += [flag.eq(high == k) for k, flag in h.items()]
    # Carry-select: the high half is added for both carries from the low half, and the
    # overflow test is made on each, in parallel with the low half, whose carry picks one.
    half = bits // 2
    x, s = acc.as_unsigned(), acc[bits - 1]
    lo = Signal(half + 1, name="sum_lo")
    m.d.comb += lo.eq(x[:half] + low[:half])
    his, ovfs = [], []
    for cin in (0, 1):
        hi = Signal(bits - half + 1, name=f"sum_hi{cin}")
        m.d.comb += hi.eq(x[half:] + low[half:] + cin)
        ovfs.append(_split_overflow(s, hi[-1], hi[-2], h))
        his.append(hi)
    total = Signal(bits + 1, name="sum")
    overflow = Signal()
    m.d.comb += [
        total.eq(Cat(lo[:half], Mux(lo[half], his[1], his[0]))),
        overflow.eq(Mux(lo[half], ovfs[1], ovfs[0])),
    ]
    return _split_result(m, total, overflow, bits, policy, s, h, h_neg), overflow


def _split_overflow(s, c, r, h: dict):
    """The split add's overflow: the exact sum fits iff H = s - c - r (see :func:`_split_add`;
    ``h``: the flags H = k for k = -2..1)."""
    k_is = {  # k = s - c - r
        1: s & ~c & ~r,
        0: (s & (c ^ r)) | (~s & ~c & ~r),
        -1: (s & c & r) | (~s & (c ^ r)),
        -2: ~s & c & r,
    }
    return ~((k_is[1] & h[1]) | (k_is[0] & h[0]) | (k_is[-1] & h[-1]) | (k_is[-2] & h[-2]))


def _split_result(m: Module, total, overflow, bits: int, policy: str, s, h: dict, h_neg):
    """The split add's P-bit result under ``policy`` (``total``: the P + 1-bit sum)."""
    lo_lim, hi_lim = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    c = total[bits]
    result = Signal(signed(bits))
    if policy == "wrap":
        m.d.comb += result.eq(total[:bits])  # keep the low P bits: two's complement wrap
    else:
        # an overflowing sum is negative iff H - s + c < 0: H <= -2 always, H = -1 unless
        # c & ~s, H >= 0 never (a non-negative addend cannot overflow below)
        neg = (h_neg & ~h[-1]) | (h[-1] & ~(c & ~s))
        m.d.comb += result.eq(Mux(overflow, Mux(neg, lo_lim, hi_lim), total[:bits]))
    return result


def _accumulate_late(m: Module, pe, addend, carry_in=None) -> None:
    """``pe_accumulate`` for ``pe.pipeline`` >= 2 (the arrays' pipeline 3): the addend
    registered split (:func:`_split_add_late`, with ``carry_in``: ``-x = ~x + 1``, so a negate
    becomes a bitwise invert before the register and a carry in the add), one carry-select
    add, and the sticky flag one cycle behind the partial sum (``ovf_in`` is expected, and
    ``ovf_out`` given, a cycle after ``psum_in`` / ``psum_out``): with wrap the overflow test
    runs a cycle later on registered carries, so no flag logic follows the carry chains."""
    result, overflow = _split_add_late(m, pe.psum_in, addend, pe.acc_bits, pe.policy, carry_in)
    m.d.sync += pe.psum_out.eq(result)
    if pe.policy != "wrap":  # saturation needs the overflow now: register it for the lag
        ov_q = Signal(name="overflow_q")
        m.d.sync += ov_q.eq(overflow)
        overflow = ov_q
    m.d.sync += pe.ovf_out.eq(pe.ovf_in | overflow)


def _split_add_late(m: Module, acc, addend, bits: int, policy: str, carry_in=None):
    """:func:`_split_add` (the same arithmetic, see there) for the pipeline-3 PEs
    (``pe.pipeline`` = 2), apart so that the netlists of pipeline 2 and below stay as
    committed. ``carry_in`` (one bit, registered with the addend) is added into U + L: c is
    then the carry out of U + L + carry_in, and the same rule holds for ``acc + addend +
    carry_in``. With wrap the overflow is returned a cycle later, from registered carries,
    sign and flags (no gate after the carry chains but the result's mux); saturation needs it
    in the same cycle."""
    late = policy == "wrap"
    wide = Signal(signed(max(len(addend), bits + 1)), name="product")
    m.d.comb += wide.eq(addend)  # sign-extends a narrower addend: H is then -1 or 0
    high = wide[bits:].as_signed()
    low = Signal(bits, name="product_q")
    m.d.sync += low.eq(wide[:bits])
    if late and len(addend) < bits:
        # a narrower addend (INT's products, and ANT's / OliVe's where the shift range is
        # short; pipeline 3 only, the committed pipeline-2 netlists stay): H = -1 or 0, told
        # by the registered low part's sign bit (the addend's own sign, extended): no flag
        # logic behind the product
        h = {-2: C(0, 1), -1: low[-1], 0: ~low[-1], 1: C(0, 1)}
        h_neg = low[-1]
    else:
        h = {k: Signal(name=f"product_h{'m' if k < 0 else ''}{abs(k)}") for k in (-2, -1, 0, 1)}
        h_neg = Signal(name="product_hneg")
        m.d.sync += h_neg.eq(high < 0)
        m.d.sync += [flag.eq(high == k) for k, flag in h.items()]
    cin = Signal(name="product_cin")
    if carry_in is not None:
        m.d.sync += cin.eq(carry_in)
    # Carry-select: the high half is added for both carries from the low half, and the
    # overflow test is made on each, in parallel with the low half, whose carry picks one.
    half = bits // 2
    x, s = acc.as_unsigned(), acc[bits - 1]
    lo = Signal(half + 1, name="sum_lo")
    m.d.comb += lo.eq(x[:half] + low[:half] + cin)
    his = []
    for cin in (0, 1):
        hi = Signal(bits - half + 1, name=f"sum_hi{cin}")
        m.d.comb += hi.eq(x[half:] + low[half:] + cin)
        his.append(hi)
    # the overflow test's inputs: s, the low half's carry, c and r of each high sum, the flags
    inputs = [s, lo[half], his[0][-1], his[0][-2], his[1][-1], his[1][-2], *h.values()]
    if late:
        staged = [Signal(name=f"ovf_in{i}_q") for i in range(len(inputs))]
        m.d.sync += [q.eq(v) for q, v in zip(staged, inputs)]
        inputs = staged
    s_, sel, c0, r0, c1, r1, *flags = inputs
    hq = dict(zip((-2, -1, 0, 1), flags))
    ovfs = [_split_overflow(s_, c, r, hq) for c, r in ((c0, r0), (c1, r1))]
    total = Signal(bits + 1, name="sum")
    overflow = Signal()
    m.d.comb += [
        total.eq(Cat(lo[:half], Mux(lo[half], his[1], his[0]))),
        overflow.eq(Mux(sel, ovfs[1], ovfs[0])),
    ]
    return _split_result(m, total, overflow, bits, policy, s, h, h_neg), overflow


def skew_capable(w_bits: int, a_bits: int, acc_bits: int, policy: str) -> bool:
    """Whether the PE can add its partial sum in skewed halves (``pipeline`` = 3): wrap (a
    clamp would need the high half's verdict in the low half's cycle) and a product of at most
    P/2 + 1 bits (so its high half is its sign)."""
    return policy == "wrap" and w_bits + a_bits + 1 <= acc_bits // 2 + 1


def check_skew(w_bits: int, a_bits: int, acc_bits: int, policy: str) -> None:
    """Raise unless :func:`skew_capable` (``pipeline`` = 3 of the PE and its config)."""
    if not skew_capable(w_bits, a_bits, acc_bits, policy):
        raise ValueError(
            f"pipeline 3 (skewed halves) takes policy wrap and products of at most "
            f"acc_bits / 2 + 1 bits, not w_bits={w_bits}, a_bits={a_bits}, "
            f"acc_bits={acc_bits}, policy={policy!r}"
        )


def _skewed_accumulate(m: Module, pe, addend) -> None:
    """``psum_out <= psum_in + addend`` (wrap) in two halves a cycle apart, the partial sum
    moving through the column as a low half and, one cycle behind it, a high half: the low
    half's carry and the product's sign are registered, and the next cycle adds the high
    half of ``psum_in`` (which arrives then) with them, U_hi + k - s_p. Each half is one
    P/2-bit carry chain between registers, no select after it. The sticky flag runs a cycle
    behind the high half (``ovf_in`` two cycles after ``psum_in``'s low half): overflow iff
    the operands' signs agree and the sum's differs."""
    bits = pe.acc_bits
    half = bits // 2  # the addend has at most half + 1 bits: above the low half, its sign
    low = Signal(signed(len(addend)), name="product_q")
    m.d.sync += low.eq(addend)
    ext = Signal(signed(bits), name="product_x")
    m.d.comb += ext.eq(low)
    x = pe.psum_in.as_unsigned()
    lo = Signal(half + 1, name="sum_lo")
    m.d.comb += lo.eq(x[:half] + ext[:half])
    k_q, sp_q = Signal(name="carry_q"), Signal(name="sign_q")
    m.d.sync += [pe.psum_out[:half].eq(lo[:half]), k_q.eq(lo[half]), sp_q.eq(low[-1])]
    hi = Signal(bits - half, name="sum_hi")  # the next cycle: psum_in's high half is here
    m.d.comb += hi.eq(x[half:] + sp_q.replicate(bits - half) + k_q)  # wrap: low P - P/2 bits
    m.d.sync += pe.psum_out[half:].eq(hi)
    sa, sp, sr = (Signal(name=f"ovf_{n}_q") for n in ("acc", "add", "sum"))
    m.d.sync += [sa.eq(x[bits - 1]), sp.eq(sp_q), sr.eq(hi[-1])]
    overflow = Signal()
    m.d.comb += overflow.eq(~(sa ^ sp) & (sr ^ sa))
    m.d.sync += pe.ovf_out.eq(pe.ovf_in | overflow)


def _tree_sum(terms: list):
    """The sum of ``terms`` as a balanced tree of adds (depth log2 n, not n - 1)."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]  # fmt: skip
    return terms[0]


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
    operands), as the arrays' ``pipeline`` = 2 uses it; 2 also splits the multiplier over two
    cycles (``latency`` = 3; ``psum_in`` two cycles after the operands): each 2-bit slice of
    ``w`` times ``a`` registered, their shifted sum registered as the product; 3 (wrap,
    products of at most P/2 + 1 bits: :func:`skew_capable`) also adds the partial sum in two
    halves a cycle apart (:func:`_skewed_accumulate`): ``psum_in``'s low half two cycles after
    the operands, its high half a cycle later, ``psum_out``'s halves likewise (``latency`` =
    4, to the high half), the flags a cycle behind the high halves.
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
        self.pipeline = check_int("pipeline", pipeline, 0, 3)
        self.latency = 1 + pipeline
        if pipeline == 3:
            check_skew(w_bits, a_bits, acc_bits, policy)
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
        if self.pipeline >= 2:
            # w = sum_j w_j 4^j over 2-bit slices (unsigned, the top one with w's signedness):
            # slice products w_j * a (two rows of a each) in the first cycle, their exact
            # shifted sum in the second
            parts = []
            for j, lo in enumerate(range(0, self.w_bits, 2)):
                sl = self.w[lo : lo + 2]
                if self.w_signed and lo + 2 >= self.w_bits:
                    sl = sl.as_signed()
                pp = Signal(signed(len(sl) + self.a_bits + 1), name=f"pp_{j}")
                m.d.sync += pp.eq(sl * self.a)
                parts.append(pp << lo)
            m.d.comb += product.eq(_tree_sum(parts))
        else:
            m.d.comb += product.eq(self.w * self.a)  # exact: the widths above always hold it
        if self.pipeline == 3:
            _skewed_accumulate(m, self, product)
        else:
            pe_accumulate(m, self, product)
        return m
