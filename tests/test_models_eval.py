"""`qarch eval`: perplexity of SmolLM2-135M on the packaged Wikipedia text."""

import json

import pytest
import torch

from qarch import quantize
from qarch.cli import main
from qarch.evaluate import perplexity
from qarch.models import load_causal_lm, wiki_tokens
from qarch.schemes import (
    AntConfig,
    AxeConfig,
    GptqConfig,
    IntConfig,
    MicroScopiQConfig,
    OliveConfig,
)


@pytest.fixture(scope="module")
def lm():
    model, tok = load_causal_lm()
    return model, wiki_tokens(tok)


def test_fp32_and_int_perplexity(lm):
    model, ids = lm
    assert ids.numel() > 700_000
    fp = perplexity(model, ids, 1024)
    w4 = perplexity(quantize(model, IntConfig(bits=4))[0], ids, 1024)
    w3g = perplexity(quantize(model, IntConfig(bits=3, group=64))[0], ids, 1024)
    assert 10 < fp < 40
    assert w4 > fp * 1.2 and w3g > fp * 1.2  # per-channel W4 RTN clearly degrades
    assert model.model.layers[0].mlp.down_proj.weight.dtype.is_floating_point  # untouched


def test_cli_json_and_errors(capsys):
    assert main(["eval", "--scheme", "fp32", "--tokens", "512", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["scheme"] == "fp32" and res["tokens"] == 512 and res["perplexity"] > 1
    assert main(["eval", "--scheme", "nope"]) == 2
    assert "--scheme must be one of fp32, int, ant, olive" in capsys.readouterr().err
    assert main(["eval", "--tokens", "100"]) == 2
    assert "positive multiple of 512" in capsys.readouterr().err
    assert main(["eval", "--model", "/no/such/model"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", "--scheme", "ant", "--ant-clip-min", "2"]) == 2
    assert "clip_min must be in (0, 1.49], not 2.0" in capsys.readouterr().err
    # an option the scheme does not take is an error, before any model loads
    assert main(["eval", "--scheme", "olive", "--group", "32"]) == 2
    err = capsys.readouterr().err
    assert "--group: not an option of scheme olive (its options: --bits" in err
    assert main(["eval", "--scheme", "int", "--calib", "8"]) == 2
    assert "--calib: int with these options does not calibrate" in capsys.readouterr().err


def test_axe_scheme_on_one_block_keeps_the_guarantee(lm):
    from golden.axe import AxeLinear, guarantee_holds
    from qarch.models import calibration_ids

    model, ids = lm
    q, info = quantize(
        model, AxeConfig(bits=4, acc_bits=16, tile=64), calib=calibration_ids(ids, 2, 256),
        include=lambda n, _m: n.startswith("model.layers.0."), keep_codes=True,
    )  # fmt: skip
    layers = [m for m in q.modules() if isinstance(m, AxeLinear)]
    assert len(layers) == 7
    assert all(guarantee_holds(m.q_int, 8, m.input_signed, 16, 64) for m in layers)
    assert set(info.codes) == {n for n, m in q.named_modules() if isinstance(m, AxeLinear)}
    fp, got = perplexity(model, ids, 512), perplexity(q, ids, 512)
    assert fp < got < 2 * fp  # one quantized block moves perplexity a little
    with pytest.raises(ValueError, match="needs calibration data"):
        quantize(model, GptqConfig())


def _block0(n, _m):
    return n.startswith("model.layers.0.")


@pytest.mark.parametrize("config", [AntConfig(), OliveConfig(), MicroScopiQConfig()])
def test_outlier_schemes_on_one_block(lm, config):
    from qarch.models import calibration_ids
    from qarch.schemes import scheme_of

    model, ids = lm
    calib = calibration_ids(ids, 2, 256) if scheme_of(config).needs_calib(config) else None
    q, info = quantize(model, config, calib=calib, include=_block0)
    ref, got = model.model.layers, q.model.layers
    assert not torch.equal(ref[0].mlp.down_proj.weight, got[0].mlp.down_proj.weight)
    assert torch.equal(ref[1].mlp.down_proj.weight, got[1].mlp.down_proj.weight)  # not selected
    assert 4.0 < info.ebw < 4.6 and len(info.layers) == 7  # scales / metadata included
    fp, got = perplexity(model, ids, 512), perplexity(q, ids, 512)
    assert fp < got < 1.5 * fp


def test_activation_variants_need_calibration(lm):
    from qarch.models import calibration_ids

    model, ids = lm
    with pytest.raises(ValueError, match="needs calibration data"):
        quantize(model, OliveConfig(activations=True))
    with pytest.raises(TypeError, match="unexpected keyword argument 'activations'"):
        IntConfig(activations=True)
    with pytest.raises(ValueError, match="olive with these options takes no calibration data"):
        quantize(model, OliveConfig(), calib=calibration_ids(ids, 1, 256))
    q, _ = quantize(
        model, OliveConfig(bits=8, activations=True), calib=calibration_ids(ids, 1, 256),
        include=_block0,
    )  # fmt: skip
    fp, got = perplexity(model, ids, 512), perplexity(q, ids, 512)
    assert fp <= got < 1.2 * fp  # W8A8 on one block: a small change


def test_token_scaled_inputs(lm):
    from golden.axe import AxeLinear
    from qarch.models import calibration_ids

    model, ids = lm
    q, _ = quantize(
        model, GptqConfig(bits=4, input_scale="token"), calib=calibration_ids(ids, 2, 256),
        include=_block0,
    )  # fmt: skip
    lin = q.model.layers[0].mlp.down_proj
    assert isinstance(lin, AxeLinear) and lin.in_scale is None
    x = torch.randn(3, lin.in_features) * torch.tensor([[1.0], [100.0], [0.0]])
    # each row on its own scale: row 1 is row 0's scale x 100 when x1 = 100 x0
    x[1] = x[0] * 100
    y = lin(x)
    assert torch.allclose(y[1], 100 * y[0], rtol=1e-5, atol=1e-4) and torch.all(y[2] == 0)
