"""Asymmetric calibration (GPTQv2): the shifted target is the least-squares fit of the float
output, the float stream pairs every calibration call with the float model's own inputs, the
cross matrix is what the pairs give, and AXE's guarantee holds with it on."""

import copy

import pytest
import torch

from golden.axe import AxeLinear, guarantee_holds, quantize_layer, quantize_model
from golden.calib import accumulate_hessians, linear_names, quantize_sequential
from golden.gptq import asymmetric_target, gptq_loop
from golden.microscopiq import MsqParams, quantize_module_msq

from .test_golden_sequential import _Branchy, _llama_calib, _rtn_, _tiny_llama


def _pair(n=400, k=10, out=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    xq = torch.randn(n, k, generator=g, dtype=torch.float64)
    x = xq + 0.3 * torch.randn(n, k, generator=g, dtype=torch.float64)  # the float inputs
    w = torch.randn(out, k, generator=g, dtype=torch.float64)
    return w, x, xq


def test_the_full_shift_is_the_least_squares_fit_of_the_float_output():
    w, x, xq = _pair()
    gram, cross = xq.T @ xq, (x - xq).T @ xq
    v = asymmetric_target(w, gram, cross, 1.0, damp=1e-12)
    fit = torch.linalg.lstsq(xq, x @ w.T).solution.T  # argmin_V ||X W^T - X~ V^T||
    torch.testing.assert_close(v, fit, rtol=1e-8, atol=1e-8)
    # so the float-target error splits into the fit's own error and GPTQ's proxy on V
    q = torch.round(w * 2) / 2
    lhs = ((x @ w.T - xq @ q.T) ** 2).sum()
    rhs = ((x @ w.T - xq @ v.T) ** 2).sum() + ((xq @ (v - q).T) ** 2).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(asymmetric_target(w, gram, cross, 0.0), w)
    half = asymmetric_target(w, gram, cross, 0.5, damp=1e-12)
    torch.testing.assert_close(half, (w + fit) / 2, rtol=1e-8, atol=1e-8)


def test_asymmetric_target_and_loop_arguments_are_checked():
    w, x, xq = _pair()
    gram, cross = xq.T @ xq, (x - xq).T @ xq
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        asymmetric_target(w, gram, cross, -0.1)
    with pytest.raises(ValueError, match=r"gram and cross must be \[10, 10\]"):
        asymmetric_target(w, gram, cross[:3], 0.25)
    bad = cross.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="cross matrix holds NaN"):
        asymmetric_target(w, gram, bad, 0.25)
    with pytest.raises(ValueError, match="asym > 0 needs the cross matrix"):
        gptq_loop(w.float().clone(), None, lambda c, i: c, gram=gram, asym=0.25)
    with pytest.raises(ValueError, match="asym > 0 needs the Gram matrix"):
        quantize_layer(w, xq, weight_bits=4, input_bits=None, input_signed=True, acc_bits=None,
                       asym=0.25)  # fmt: skip


def test_no_float_difference_leaves_plain_gptq():
    w, _x, xq = _pair()
    gram = xq.T @ xq
    kw = dict(weight_bits=4, input_bits=None, input_signed=True, acc_bits=None, gram=gram)
    q0, _ = quantize_layer(w, None, **kw)
    q1, _ = quantize_layer(w, None, **kw, cross=torch.zeros_like(gram), asym=0.25)
    assert torch.equal(q0, q1)


def test_the_shift_lowers_the_float_target_error():
    """Float inputs a linear distortion of the quantized ones (as an upstream error that the
    layer can undo): GPTQ on the shifted target gets much closer to the float output."""
    g = torch.Generator().manual_seed(4)
    xq = torch.randn(2000, 24, generator=g, dtype=torch.float64)
    x = xq @ (torch.eye(24, dtype=torch.float64) + 0.2 * torch.randn(24, 24, generator=g,
                                                                     dtype=torch.float64))
    w = torch.randn(32, 24, generator=g, dtype=torch.float64)
    gram, cross = xq.T @ xq, (x - xq).T @ xq
    kw = dict(weight_bits=4, input_bits=None, input_signed=True, acc_bits=None, gram=gram)
    errs = {}
    for a in (0.0, 0.5, 1.0):
        q, s = quantize_layer(w, None, **kw, cross=cross, asym=a)
        errs[a] = float(((x @ w.T - xq @ (q * s[:, None]).T) ** 2).sum())
    assert errs[1.0] < errs[0.5] < errs[0.0], errs
    assert errs[1.0] < 0.5 * errs[0.0], errs


@pytest.mark.parametrize("capture", ["sequential", "block"])
@pytest.mark.parametrize("which", ["llama", "branchy"])
def test_the_float_stream_pairs_each_call_with_the_float_model(which, capture):
    """Inside the blocks each stage's float inputs are exactly the float model's inputs of the
    same layer in the same call (a full pass over an untouched copy); outside them (the
    branchy model's stem and head, full passes) there is no pair; and the cross matrix is the
    one of those pairs."""
    if which == "llama":
        model, calib = _tiny_llama(), _llama_calib()
        inside = lambda n: n.startswith("model.layers.")  # noqa: E731
    else:
        xs = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(3))
        model, calib = _Branchy().eval(), lambda m: [m(x, scale=0.5) for x in xs]
        inside = lambda n: n.startswith("blocks.")  # noqa: E731
    names = linear_names(model, lambda n, m: not n.endswith("lm_head"))
    ref = copy.deepcopy(model)  # stays float
    want: dict[str, list] = {n: [] for n in names}

    def rec(name):
        def f(_m, args, _out):
            want[name].append(args[0].detach().clone())

        return f

    mods = dict(ref.named_modules())
    hooks = [mods[n].register_forward_hook(rec(n)) for n in names]
    with torch.no_grad():
        calib(ref)
    for h in hooks:
        h.remove()
    seen: dict[str, list] = {n: [] for n in names}
    differs = []

    def stage(stage_names, run):
        pairs: dict[str, list] = {n: [] for n in stage_names}
        box: dict = {}

        def make_hook(name):
            def f(_m, args, _out):
                pairs[name].append((args[0].detach().clone(), box.get(name)))

            return f

        run(make_hook, float_inputs=box)
        for n in stage_names:
            seen[n] = [xf for _x, xf in pairs[n]]
            differs.append(any(xf is not None and not torch.equal(x, xf) for x, xf in pairs[n]))
        got = accumulate_hessians(model, None, stage_names, run=run, cross=True)
        for n in stage_names:
            h, rows, c = got[n]
            xs_ = torch.cat([x.reshape(-1, x.shape[-1]) for x, _ in pairs[n]]).double()
            xf_ = torch.cat([(xf if xf is not None else x).reshape(-1, x.shape[-1])
                             for x, xf in pairs[n]]).double()  # fmt: skip
            torch.testing.assert_close(h, xs_.T @ xs_, msg=n)
            if all(xf is None for _x, xf in pairs[n]):
                assert c is None, n  # exactly zero: not kept
            else:
                torch.testing.assert_close(c, (xf_ - xs_).T @ xs_, msg=n)
            assert rows == xs_.shape[0]
        for n in stage_names:
            _rtn_(dict(model.named_modules())[n])

    quantize_sequential(model, calib, names, stage, capture=capture, paired=True)
    for n in names:
        if inside(n):
            assert len(seen[n]) == len(want[n]), n
            for a, b in zip(seen[n], want[n]):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)
        else:
            assert all(xf is None for xf in seen[n]), n
    assert any(differs)  # the quantized stream really left the float one


@pytest.mark.parametrize("capture", ["sequential", "block", "float"])
def test_axe_guarantee_holds_with_asymmetric_calibration(capture):
    model = _tiny_llama()
    sel = lambda n, m: not n.endswith("lm_head")  # noqa: E731
    kw = dict(weight_bits=4, input_bits=8, tile=16, include=sel, gram=True,
              input_granularity="token", capture=capture, act_order=True)  # fmt: skip
    q = quantize_model(model, _llama_calib(), acc_bits=12, asym=0.25, **kw)
    lins = [m for m in q.modules() if isinstance(m, AxeLinear)]
    assert len(lins) == 21
    for lin in lins:
        assert guarantee_holds(lin.q_int, 8, lin.input_signed, 12, 16)
    plain = quantize_model(model, _llama_calib(), acc_bits=12, asym=0.0, **kw)
    assert any(not torch.equal(a.q_int, b.q_int) for a, b in
               zip(lins, [m for m in plain.modules() if isinstance(m, AxeLinear)]))  # fmt: skip
    with pytest.raises(ValueError, match="asym > 0 needs gram=True"):
        quantize_model(model, _llama_calib(), acc_bits=12, asym=0.25, **{**kw, "gram": False})


def test_microscopiq_with_asymmetric_calibration():
    model = _tiny_llama(2)
    sel = lambda n, m: not n.endswith("lm_head")  # noqa: E731
    p = MsqParams(b=4, T=16)
    outs = {}
    for asym in (0.0, 0.25):
        q, rep = quantize_module_msq(model, p, calibrate=_llama_calib(), include=sel, gram=True,
                                     capture="block", act_order=True, asym=asym)  # fmt: skip
        assert len(rep) == 4
        outs[asym] = q.model.layers[1].mlp.up_proj.weight.detach().clone()
    assert not torch.equal(outs[0.0], outs[0.25])
    with pytest.raises(ValueError, match="asym > 0 needs gram=True"):
        quantize_module_msq(model, p, calibrate=_llama_calib(), include=sel, asym=0.25)


def test_a_cross_matrix_never_mixes_paired_and_unpaired_rows():
    lin = torch.nn.Linear(4, 3)
    xs = [torch.randn(5, 4, generator=torch.Generator().manual_seed(j)) for j in range(2)]

    def run(make_hook, float_inputs=None):
        h = lin.register_forward_hook(make_hook("lin"))
        try:
            for j, x in enumerate(xs):
                float_inputs.clear()
                if j == 0:
                    float_inputs["lin"] = x + 1
                lin(x)
        finally:
            h.remove()

    with torch.no_grad(), pytest.raises(ValueError, match="only some calibration rows"):
        accumulate_hessians(lin, None, ["lin"], run=run, cross=True)
