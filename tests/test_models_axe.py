"""AXE on a real model: SmolLM2-135M layers with their real activations on held-out text.

The first run builds the fp32 cache of the packaged GGUF (~1 min); later runs load the cached
layer samples in milliseconds.
"""

import itertools
import math

import pytest
import torch

from golden.axe import (
    AxeLinear,
    guarantee_holds,
    input_range,
    naive_weight_bits,
    quantize_layer,
    quantize_model,
    worst_case,
)
from qarch.models import (
    ModelUnavailable,
    calibration_ids,
    layer_sample,
    load_causal_lm,
    wiki_tokens,
)
from qarch.report import _rel_err, _split

Q_PROJ = "model.layers.10.self_attn.q_proj"
DOWN = "model.layers.10.mlp.down_proj"


@pytest.fixture(scope="module")
def q_proj():
    w, x = layer_sample(Q_PROJ)
    return w, x


def test_real_layer_sample_is_real(q_proj):
    w, x = q_proj
    assert w.shape == (576, 576) and x.shape == (1024, 576)
    assert torch.isfinite(x).all() and (x < 0).any()
    # SmolLM2's activation outliers: the largest input is far above the median magnitude.
    assert x.abs().max() > 20 * x.abs().median()


# The spec's sweep on a real layer: 32 output channels x 256 inputs of q_proj, 256 real input
# rows. The unsigned case feeds |x| (same layer, inputs folded into [0, nu]).
SWEEP = list(
    itertools.product((True, False), (4, 8), (3, 4, 8), ((12, 32), (14, 64), (16, 128), (20, None)))
)


@pytest.mark.parametrize("algorithm", ["gptq", "gpfq"])
@pytest.mark.parametrize("act_order", [False, True])
def test_guarantee_holds_on_real_layer_sweep(q_proj, algorithm, act_order):
    w, x = q_proj
    w, x = w[:32, :256], x[:256, :256]  # a real slice: 32 channels x 256 inputs
    checked = 0
    for signed, n, m, (p, t) in SWEEP:
        xs = x if signed else x.abs()
        q, _ = quantize_layer(
            w, xs, weight_bits=m, input_bits=n, input_signed=signed, acc_bits=p, tile=t,
            algorithm=algorithm, act_order=act_order,
        )  # fmt: skip
        assert guarantee_holds(q, n, signed, p, t), (signed, n, m, p, t)
        assert int(worst_case(q, n, signed, t).max()) <= 2 ** (p - 1) - 1
        checked += 1
    assert checked == 48


@pytest.mark.parametrize("algorithm", ["gptq", "gpfq"])
def test_inactive_constraints_equal_plain_on_real_layer(q_proj, algorithm):
    w, x = q_proj
    w, x = w[:64], x[:256]
    kw = dict(weight_bits=4, input_bits=8, input_signed=True, algorithm=algorithm)
    plain, s0 = quantize_layer(w, x, acc_bits=None, **kw)
    axe, s1 = quantize_layer(w, x, acc_bits=40, tile=64, **kw)
    assert torch.equal(plain, axe) and torch.equal(s0, s1)


@pytest.mark.parametrize("layer", [Q_PROJ, DOWN])
def test_axe_below_naive_and_smooth_on_real_layer(layer):
    """At each P_I the best AXE M beats the naive bit width (or runs where naive cannot), and
    AXE's error grows as P_I shrinks (128 output channels of the layer, all its inputs)."""
    w, x = layer_sample(layer)
    w = w[:128]
    x_cal, x_eval = _split(x)
    best = {}
    for p in (12, 14, 16, 18):
        errs = []
        for m in (3, 4, 5, 6):
            q, s = quantize_layer(
                w, x_cal, weight_bits=m, input_bits=8, input_signed=True, acc_bits=p, tile=64
            )
            errs.append(_rel_err(w, q, s, x_eval))
        best[p] = min(errs)
        nm = naive_weight_bits(p, 64, 8, True)
        if nm is not None and nm >= 2:
            q, s = quantize_layer(w, x_cal, weight_bits=nm, input_bits=8, input_signed=True,
                                  acc_bits=None)  # fmt: skip
            assert best[p] < _rel_err(w, q, s, x_eval), (p, nm)
    assert best[12] > best[14] > best[16] > best[18]
    assert best[16] < 0.1


def test_quantize_model_first_block_guarantee_and_integer_forward():
    model, tok = load_causal_lm()
    ids = wiki_tokens(tok)
    cal = calibration_ids(ids, 2, 256)
    evl = ids[:256][None]

    def calibrate(m):
        for i in range(cal.shape[0]):
            m(cal[i : i + 1])

    q = quantize_model(
        model, calibrate, weight_bits=4, input_bits=8, acc_bits=16, tile=64,
        include=lambda n, _m: n.startswith("model.layers.0."), max_rows=256,
    )  # fmt: skip
    layers = {n: m for n, m in q.named_modules() if isinstance(m, AxeLinear)}
    assert len(layers) == 7 and "lm_head" not in layers
    for name, lin in layers.items():
        assert guarantee_holds(lin.q_int, 8, lin.input_signed, 16, 64), name
    # The forward pass is the integer GEMM, rescaled: check one layer against int64 arithmetic.
    lin = layers["model.layers.0.mlp.down_proj"]
    x = torch.randn(5, lin.in_features) * 0.3
    mu, nu = input_range(8, lin.input_signed)
    xi = torch.round(x / lin.in_scale).clamp(mu, nu).to(torch.int64)
    exact = (xi @ lin.q_int.T).to(torch.float64) * lin.in_scale * lin.w_scale.double()
    torch.testing.assert_close(lin(x).double(), exact, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        ref = model(evl, labels=evl).loss.item()
        got = q(evl, labels=evl).loss.item()
    assert math.isfinite(got) and abs(got - ref) < 0.5  # one quantized block: a small change
    assert dict(model.named_modules())[Q_PROJ].__class__ is torch.nn.Linear  # original intact


def test_quantize_model_errors():
    lin = torch.nn.Sequential(torch.nn.Linear(8, 4))
    with pytest.raises(ValueError, match="no Linear layer selected"):
        quantize_model(lin, lambda m: None, weight_bits=4, input_bits=8, acc_bits=16,
                       include=lambda n, m: False)  # fmt: skip
    with pytest.raises(ValueError, match="calibration never reached layer '0'"):
        quantize_model(lin, lambda m: None, weight_bits=4, input_bits=8, acc_bits=16)
    with pytest.raises(ValueError, match="calibration input of 0"):
        quantize_model(lin, lambda m: m(torch.full((2, 8), float("nan"))), weight_bits=4,
                       input_bits=8, acc_bits=16)  # fmt: skip


def test_missing_model_path_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_causal_lm(str(tmp_path / "no-such-model"))
    with pytest.raises(KeyError, match="not a Linear layer"):
        layer_sample("model.layers.99.nothing")
