# amaranth: UnusedElaboratable=no
"""The pipelined ANT / OliVe PEs' split add (hdl.int_pe._split_add), exhaustively against the
golden accumulator step (the PEs themselves: cocotb on the generated Verilog, tb/)."""

import itertools

import pytest
import torch
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from golden.accum import accumulate
from hdl.int_pe import pe_accumulate


class _Acc(wiring.Component):
    """``pe_accumulate`` on a free addend: the registered, split add of a pipelined PE."""

    def __init__(self, *, addend_bits: int, acc_bits: int, policy: str, negate=False) -> None:
        # the pipeline-3 form (negate as ~x + carry in): the PE's pipeline 2, whose flag runs
        # a cycle behind the sum
        self.pipeline = 2 if negate else 1
        self.acc_bits, self.policy, self.negate = acc_bits, policy, negate
        super().__init__(
            {
                "addend": In(signed(addend_bits)),
                "neg": In(1),
                "psum_in": In(signed(acc_bits)),
                "ovf_in": In(1),
                "psum_out": Out(signed(acc_bits)),
                "ovf_out": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        if not self.negate:
            pe_accumulate(m, self, self.addend, split=True)
            return m
        # ANT's / OliVe's pipeline-3 form: a negative addend as ~x with a carry in of 1
        n = len(self.addend)
        inv = self.addend ^ self.neg.replicate(n).as_signed()
        pe_accumulate(m, self, inv.as_signed(), split=True, carry_in=self.neg)
        return m


def _stream(dut, pairs):
    """Addend i enters with psum i - 1 (the product is registered one cycle ahead); with
    ``pipeline`` 2 the flag of pair i leaves a cycle after its sum."""
    got, sums = [], []
    lag = int(dut.pipeline >= 2)

    async def bench(ctx):
        for i in range(len(pairs) + 1 + lag):
            if i < len(pairs):
                a = pairs[i][1]
                if getattr(dut, "negate", False) and a < 0:  # sent as its magnitude, negated
                    ctx.set(dut.neg, 1)
                    ctx.set(dut.addend, -a)
                else:
                    ctx.set(dut.neg, 0)
                    ctx.set(dut.addend, a)
            if 1 <= i <= len(pairs):
                ctx.set(dut.psum_in, pairs[i - 1][0])
            await ctx.tick()
            if 1 <= i <= len(pairs):
                sums.append(ctx.get(dut.psum_out))
            if i > lag:
                got.append((sums[i - 1 - lag], ctx.get(dut.ovf_out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("policy", ["wrap", "saturate"])
@pytest.mark.parametrize("addend_bits", [3, 5, 9])  # narrower, equal to and wider than P = 5
def test_split_add_every_pair(policy, addend_bits, negate):
    """Every (partial sum, addend) pair at P = 5: H runs over -8..7 with a 9-bit addend, so
    the flags H = -2..1 and 'none of them' (certain overflow) are all reached, both ways.
    ``negate``: a negative addend enters as its magnitude inverted with a carry in of 1."""
    p = 5
    dut = _Acc(addend_bits=addend_bits + negate, acc_bits=p, policy=policy, negate=negate)
    half = 1 << (addend_bits - 1)
    lo = -half + 1 if negate else -half  # the magnitude must fit the signed addend port
    pairs = list(itertools.product(range(-16, 16), range(lo, half)))
    got = _stream(dut, pairs)
    ref = accumulate(torch.tensor(pairs), p, policy)
    want = list(zip(ref.value.tolist(), ref.overflow.int().tolist()))
    bad = [(pr, g, w) for pr, g, w in zip(pairs, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(pairs)} pairs differ, e.g. {bad[:3]}"
    # the stimulus reaches both outcomes (a test that could not fail proves nothing)
    assert {w[1] for w in want} == {0, 1}
