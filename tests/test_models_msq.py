"""MicroScopiQ on a real layer: SmolLM2 q_proj of block 10 with its real activations."""

import pytest
import torch

from golden.microscopiq import KIND_HI, MsqParams, quantize_msq
from qarch.models import layer_sample
from qarch.report import _out_err, _split


@pytest.mark.parametrize("b", [2, 4])
def test_gptq_compensation_beats_rtn_on_a_real_layer(b):
    w, x = layer_sample("model.layers.10.self_attn.q_proj")
    w = w[:128]  # two MaB row groups, every input column
    x_cal, x_eval = _split(x)
    p = MsqParams(b=b)
    rtn = quantize_msq(w, p)
    gq = quantize_msq(w, p, inputs=x_cal)
    assert _out_err(w, gq.dequant, x_eval) < _out_err(w, rtn.dequant, x_eval)
    for q in (rtn, gq):
        assert q.n_outliers > 0 and b < q.ebw < b + 0.6
    # pruning never removes a kept outlier: partners are smaller in magnitude (RTN sees the
    # original weights; GPTQ's are the compensated ones)
    for r, c in torch.nonzero(rtn.kind == KIND_HI).tolist():
        assert abs(float(w[int(rtn.partner[r, c]), c])) <= abs(float(w[r, c]))


def test_exponent_search_lowers_the_error_on_a_real_layer():
    # the model-level default (docs/evaluation.md): on a real layer the searched MaB exponent
    # moves some blocks off the MX value and lowers the output error, RTN and GPTQ alike
    w, x = layer_sample("model.layers.10.mlp.up_proj")
    w = w[:128]
    x_cal, x_eval = _split(x)
    mx, se = MsqParams(b=4), MsqParams(b=4, e_search=True)
    for kw in ({}, {"inputs": x_cal}):
        a, b = quantize_msq(w, mx, **kw), quantize_msq(w, se, **kw)
        assert bool((a.exp != b.exp).any()) and int((a.exp - b.exp).abs().max()) <= 1
        assert _out_err(w, b.dequant, x_eval) < _out_err(w, a.dequant, x_eval)
        assert a.ebw == pytest.approx(b.ebw, abs=0.01)  # same metadata format
