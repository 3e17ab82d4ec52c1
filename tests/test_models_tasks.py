"""MiniLM, the Fashion-MNIST CNN and EfficientNet-Lite0: real models, real data, every scheme
family through `qarch eval`'s tasks. The CNN trains once (about a minute) and is cached."""

import json

import pytest
import torch

from golden.axe import AxeLinear, guarantee_holds
from qarch import quantize
from qarch.cli import main
from qarch.evaluate import task_for
from qarch.models import Im2colConv, convs_as_linear, fashion_mnist, word_pairs
from qarch.schemes import AntConfig, AxeConfig, GptqConfig, IntConfig, MicroScopiQConfig


def test_im2col_conv_is_the_convolution():
    torch.manual_seed(0)
    for conv in (
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.Conv2d(4, 6, (3, 5), stride=2, padding=(0, 2), dilation=(1, 2), bias=False),
        torch.nn.Conv2d(5, 7, 1),
    ):
        x = torch.randn(2, conv.in_channels, 13, 11)
        with torch.no_grad():
            torch.testing.assert_close(Im2colConv(conv)(x), conv(x), rtol=1e-5, atol=1e-5)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=4), torch.nn.Conv2d(4, 2, 1))
    convs_as_linear(model)
    assert isinstance(model[0], torch.nn.Conv2d) and isinstance(model[1], Im2colConv)
    with pytest.raises(ValueError, match="depthwise"):
        Im2colConv(torch.nn.Conv2d(4, 4, 3, groups=4))
    with pytest.raises(ValueError, match="padding 'same' is not supported"):
        Im2colConv(torch.nn.Conv2d(4, 4, 3, padding="same"))


def test_datasets():
    x, y = fashion_mnist("test")
    assert x.shape == (10_000, 1, 28, 28) and y.shape == (10_000,)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(y.unique().tolist()) == set(range(10))
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        fashion_mnist("val")
    pairs, human = word_pairs("wordsim353")
    assert len(pairs) == 353 and pairs[0] == ("love", "sex") and float(human[0]) == 6.77
    assert len(word_pairs("simlex999")[0]) == 999
    with pytest.raises(ValueError, match="wordsim353, simlex999"):
        word_pairs("men")


def test_fashion_cnn_training_does_not_depend_on_the_callers_random_state(tmp_path, monkeypatch):
    """Seeded from its own seed: the initial weights (0 epochs) are the same after any global
    seed (they once came from the caller's random state, and each report trained another CNN)."""
    from qarch.models import load_fashion_cnn

    states = []
    for seed in (1, 2):
        monkeypatch.setenv("QARCH_CACHE", str(tmp_path / str(seed)))
        torch.manual_seed(seed)
        states.append(load_fashion_cnn(epochs=0).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.fixture(scope="module")
def cnn():
    return task_for("fashion-cnn")


def test_fashion_cnn_schemes(cnn):
    fp = cnn.metrics(cnn.model)
    assert fp["agreement"] == 1.0 and fp["accuracy"] > 0.87  # spec: ~89 %
    int4 = cnn.metrics(quantize(cnn.model, IntConfig(bits=4))[0])
    assert int4["accuracy"] > fp["accuracy"] - 0.05 and int4["agreement"] < 1.0
    q, _ = quantize(cnn.model, AxeConfig(bits=4, acc_bits=16), calib=cnn.calibrate)
    layers = [m for m in q.modules() if isinstance(m, AxeLinear)]
    assert len(layers) == 4 and not layers[0].input_signed  # pixels in [0, 1], post-ReLU GEMMs
    assert all(not m.input_signed for m in layers)
    assert all(guarantee_holds(m.q_int, 8, False, 16, 64) for m in layers)
    assert cnn.metrics(q)["accuracy"] > fp["accuracy"] - 0.05


def test_minilm_and_efficientnet_through_the_cli(capsys):
    assert main(["eval", "--model", "minilm-l6", "--scheme", "int", "--bits", "8", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["cosine"] > 0.99 and 0.5 < res["spearman_wordsim353"] < 0.95
    assert 0.3 < res["spearman_simlex999"] < 0.9
    args = ["eval", "--model", "efficientnet-lite0", "--scheme", "fp32", "--json"]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["agreement"] == 1.0 and res["top5_agreement"] == 1.0 and res["ebw"] == 32.0
    assert main(["eval", "--model", "minilm:/no/such/path"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_scheme_option_errors():
    tiny = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"sink_weight must be in \[0, inf\), not -1"):
        GptqConfig(sink_weight=-1)
    with pytest.raises(ValueError, match="gptq needs calibration data"):
        quantize(tiny, GptqConfig())
    with pytest.raises(ValueError, match=r"clip_min must be in \(0, 1.49\], not 0"):
        AntConfig(clip_min=0)
    with pytest.raises(ValueError, match="exponent must be one of search, mx, not 'max'"):
        MicroScopiQConfig(exponent="max")
    with pytest.raises(ValueError, match="no evaluation task for model 'resnet'"):
        task_for("resnet")
