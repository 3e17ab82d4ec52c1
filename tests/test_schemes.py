"""qarch.quantize and the scheme registry on a small model: every scheme, its config checks, the
QuantInfo it returns (codes kept where asked), and calibration given only where it is used."""

import dataclasses

import pytest
import torch

from qarch import quantize
from qarch.schemes import (
    REGISTRY,
    AntConfig,
    AxeConfig,
    AxeGpfqConfig,
    Fp32Config,
    GptqConfig,
    IntConfig,
    MicroScopiQConfig,
    OliveConfig,
    scheme_of,
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64))


def _calibrate(m):
    torch.manual_seed(1)
    m(torch.randn(64, 128))


CONFIGS = [
    Fp32Config(), IntConfig(), IntConfig(bits=3, group=32), AntConfig(),
    AntConfig(activations=True), OliveConfig(), OliveConfig(bits=8, activations=True),
    MicroScopiQConfig(rtn=True), MicroScopiQConfig(), GptqConfig(), AxeConfig(),
    AxeGpfqConfig(),
]  # fmt: skip


def test_every_registered_scheme_is_covered():
    assert {scheme_of(c).name for c in CONFIGS} == set(REGISTRY) - {"int-trunc"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.scheme}-{c.options()}")
def test_quantize_every_scheme(config):
    model = _model()
    scheme = scheme_of(config)
    calib = _calibrate if scheme.needs_calib(config) else None
    q, info = quantize(model, config, calib=calib, keep_codes=True)
    x = torch.randn(8, 128)
    with torch.no_grad():
        ref, got = model(x), q(x)
    if isinstance(config, Fp32Config):
        assert q is model and info.ebw == 32.0 and not info.codes
        return
    assert q is not model and torch.equal(model(x), ref)  # the original is untouched
    assert not torch.equal(got, ref)
    assert float((got - ref).norm() / ref.norm()) < 0.5
    assert config.weight_bits <= info.ebw < config.weight_bits + 1
    assert set(info.codes) == {"0", "2"}  # every quantized layer's integer codes
    assert all(c.dtype == torch.int64 for c in info.codes.values())
    assert scheme.label(config) and isinstance(scheme.label(config), str)
    with pytest.raises(ValueError, match="calib"):  # calibration exactly where it is used
        quantize(model, config, calib=None if calib else _calibrate)


def test_configs_are_frozen_and_validated():
    c = AntConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.bits = 3
    cases = [
        (lambda: IntConfig(bits=1), ValueError, "bits must be in 2..16, not 1"),
        (lambda: IntConfig(bits=4.0), TypeError, "bits must be an int"),
        (lambda: IntConfig(group=0), ValueError, "group must be in"),
        (lambda: AntConfig(ratio_step=0), ValueError, r"ratio_step must be in \[0.001, 1\]"),
        (lambda: OliveConfig(ratio_step=1e-9), ValueError, r"ratio_step must be in \[0.001, 1\]"),
        (lambda: AntConfig(clip_min=float("nan")), ValueError, "clip_min must be in"),
        (lambda: AntConfig(activations=1), TypeError, "activations must be a bool"),
        (lambda: OliveConfig(bits=6), ValueError, "bits must be one of 4, 8, not 6"),
        (lambda: MicroScopiQConfig(bits=3), ValueError, "bits must be one of 2, 4, not 3"),
        (lambda: GptqConfig(input_scale="row"), ValueError, "input_scale must be one of"),
        (lambda: GptqConfig(sink_weight=float("inf")), ValueError, "sink_weight must be in"),
        (lambda: AxeConfig(tile=0), ValueError, "tile must be in 1..1048576, not 0"),
        (lambda: AxeGpfqConfig(sink_weight=2.0), TypeError, "unexpected keyword"),
        (lambda: GptqConfig(capture="layer"), ValueError, "capture must be one of sequential"),
        (lambda: AxeConfig(act_order=1), TypeError, "act_order must be a bool"),
        (lambda: MicroScopiQConfig(capture=None), ValueError, "capture must be one of"),
        (lambda: AxeConfig(weight_only=True), TypeError, "unexpected keyword"),
        (lambda: GptqConfig(weight_only=True, input_bits=4), ValueError, "do not apply"),
        (lambda: GptqConfig(asym=-0.1), ValueError, r"asym must be in \[0, 1\]"),
        (lambda: MicroScopiQConfig(asym=2.0), ValueError, r"asym must be in \[0, 1\]"),
        (lambda: AxeConfig(gram=False), ValueError, "asym needs the Gram path"),
        (lambda: AxeGpfqConfig(asym=0.25), TypeError, "unexpected keyword"),
    ]
    for make, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            make()


def test_not_a_scheme_config():
    with pytest.raises(TypeError, match="is not the config of a registered scheme"):
        quantize(_model(), object())
