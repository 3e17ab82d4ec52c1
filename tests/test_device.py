"""The GPU path without a GPU: device selection and its errors, quantizers that keep every tensor
on their inputs' device and wait on it nowhere per column (tests/device_guard.py finds both on
the CPU), MicroScopiQ's torch column rules (what a GPU runs) equal to its numpy ones, `--device
auto` figures equal to the CPU's, and `make gpu-check`'s own smoke run."""

from __future__ import annotations

import json

import pytest
import torch

import golden.microscopiq as gm
from golden.ant_quant import quantize_ant
from golden.axe import quantize_layer
from golden.device import resolve_device
from golden.int_quant import quantize_int
from golden.microscopiq import MsqParams, quantize_msq
from golden.olive import quantize_olive
from qarch import quantize
from qarch.schemes import (
    AntConfig,
    AxeConfig,
    AxeGpfqConfig,
    GptqConfig,
    IntConfig,
    MicroScopiQConfig,
    OliveConfig,
    scheme_of,
)

from .device_guard import DeviceGuard

NO_GPU = not torch.cuda.is_available()


@pytest.fixture
def torch_rules(monkeypatch):
    """MicroScopiQ's torch column rules on the CPU (the ones a GPU runs)."""
    monkeypatch.setattr(gm, "_NUMPY_ON_CPU", False)


def _weights(n: int, k: int, outliers: float = 0.03, seed: int = 0) -> torch.Tensor:
    """Random weights with a fraction of outliers; ``outliers`` < 0: crowded micro-blocks
    instead, 6 large lanes of 8 in some of them (more candidates than the m/2 kept)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * torch.rand(n, 1, generator=g)
    if outliers >= 0:
        w[torch.rand(n, k, generator=g) < outliers] *= 8
        return w
    w = w * 0.1
    for _ in range(24):
        mib = int(torch.randint(0, n // 8, (), generator=g))
        col = int(torch.randint(0, k, (), generator=g))
        w[mib * 8 : mib * 8 + 6, col] = 5 * torch.sign(torch.randn(6, generator=g))
    return w


def _inputs(k: int, rows: int = 300) -> torch.Tensor:
    return torch.randn(rows, k, generator=torch.Generator().manual_seed(1))


# -- device selection ---------------------------------------------------------------------------


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda': .*use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, cuda:N or auto"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="torch sees 1 CUDA GPU"):
        resolve_device("cuda:3")


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--scheme", "int", "--device", "cuda"],
        ["eval", "--model", "fashion-cnn", "--scheme", "int", "--device", "cuda:1"],
        ["perf", "--scheme", "microscopiq", "--device", "cuda"],
        ["eval", "--scheme", "int", "--device", "gpu"],
    ],
)
def test_cuda_without_a_gpu_is_a_clear_error(argv, capsys):
    from qarch.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "device" in err and "Traceback" not in err
    if argv[-1] != "gpu":
        assert "CPU-only build" in err or "no CUDA GPU" in err


# -- tensors on the inputs' device, nothing waited on per column --------------------------------

LAYER_QUANTIZERS = {
    "int": lambda w, x: quantize_int(w, 4, granularity="channel"),
    "ant": lambda w, x: quantize_ant(w, 4),
    "olive": lambda w, x: quantize_olive(w, 4),
    "gptq": lambda w, x: quantize_layer(w, x, weight_bits=4, input_bits=None, input_signed=True,
                                        acc_bits=None, act_order=True),
    "axe-gptq": lambda w, x: quantize_layer(w, x, weight_bits=4, input_bits=8, input_signed=True,
                                            acc_bits=16, tile=32),
    "axe-gpfq": lambda w, x: quantize_layer(w, x, weight_bits=4, input_bits=8, input_signed=True,
                                            acc_bits=16, tile=32, algorithm="gpfq"),
    "msq-rtn": lambda w, x: quantize_msq(w, MsqParams()),
    "msq-gptq": lambda w, x: quantize_msq(w, MsqParams(b=2), inputs=x, act_order=True),
}  # fmt: skip


@pytest.mark.parametrize("name", LAYER_QUANTIZERS)
def test_layer_quantizers_stay_on_the_device(name, torch_rules):
    """No tensor of the quantizer's own lands on the default device, and the host waits on the
    device a fixed number of times per layer (MicroScopiQ: once per T-column tile, for the
    exponent range check), not once per column."""
    f = LAYER_QUANTIZERS[name]
    syncs = {}
    for k in (64, 256):
        g = DeviceGuard()
        with g:
            f(_weights(128, k), _inputs(k))
        assert not g.factories, f"tensors created on the default device at {sorted(g.factories)}"
        syncs[k] = g.sync_count
    extra_tiles = (256 - 64) // MsqParams().T if name.startswith("msq") else 0
    assert syncs[256] - syncs[64] <= extra_tiles, syncs


MODEL_CONFIGS = [
    IntConfig(), IntConfig(bits=3, group=32), AntConfig(activations=True),
    OliveConfig(bits=8, activations=True), MicroScopiQConfig(rtn=True), MicroScopiQConfig(),
    GptqConfig(), GptqConfig(weight_only=True, capture="float", gram=False, asym=0.0),
    AxeConfig(capture="sequential"), AxeGpfqConfig(),
]  # fmt: skip


@pytest.mark.parametrize("cfg", MODEL_CONFIGS, ids=lambda c: f"{c.scheme}-{c.options()}")
def test_model_quantization_stays_on_the_device(cfg, torch_rules):
    """qarch.quantize on a Llama-architecture model: calibration capture, the Hessians, every
    handler and the quantized modules' forwards create nothing on the default device."""
    from .test_large_models import CALIB, _llama

    model = _llama(hidden=128, inter=256)
    calib = CALIB if scheme_of(cfg).needs_calib(cfg) else None
    g = DeviceGuard()
    with g, torch.no_grad():
        q, _ = quantize(model, cfg, calib=calib)
        q(CALIB[:1])
    assert not g.factories, f"tensors created on the default device at {sorted(g.factories)}"


# -- MicroScopiQ: the torch column rules are the numpy ones --------------------------------------


@pytest.mark.parametrize(
    "params, outliers, calibrated",
    [
        (MsqParams(), 0.03, False),
        (MsqParams(b=2), 0.03, False),
        (MsqParams(), -1, False),  # more candidates than m/2 in some micro-blocks
        (MsqParams(e_search=True), 0.0, False),  # no outlier at all
        (MsqParams(), 0.03, True),
        (MsqParams(b=2, e_search=True), 0.1, True),
    ],
)
def test_msq_torch_rules_equal_the_numpy_rules(params, outliers, calibrated, monkeypatch):
    w, x = _weights(192, 256, outliers), _inputs(256)
    kw = {"inputs": x, "act_order": True} if calibrated else {}
    a = quantize_msq(w, params, **kw)
    monkeypatch.setattr(gm, "_NUMPY_ON_CPU", False)
    b = quantize_msq(w, params, **kw)
    assert a.n_outliers == b.n_outliers and a.metadata_bits == b.metadata_bits
    if outliers < 0:  # the cap was exercised: micro-blocks with m/2 outliers
        per_mib = (a.kind == gm.KIND_HI).reshape(-1, params.m, w.shape[1]).sum(1)
        assert int(per_mib.max()) == params.m // 2
    for field in ("codes", "kind", "partner", "exp", "de", "dequant"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


# -- figures unchanged with --device auto on a machine without a GPU -----------------------------


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: auto picks it")
def test_device_auto_gives_the_cpu_figures(capsys):
    from qarch.cli import main

    runs = {}
    for extra in ([], ["--device", "auto"]):
        assert main(["eval", "--scheme", "int", "--tokens", "512", "--json", *extra]) == 0
        runs[f"eval{extra}"] = capsys.readouterr().out
        argv = ["perf", "--scheme", "microscopiq", "--array", "8x8", "--prefill", "64", "--json"]
        assert main([*argv, *extra]) == 0
        runs[f"perf{extra}"] = capsys.readouterr().out
    evals = {v for k, v in runs.items() if k.startswith("eval")}
    perfs = {v for k, v in runs.items() if k.startswith("perf")}
    assert len(evals) == 1 and len(perfs) == 1
    assert "device" not in json.loads(evals.pop())
    assert json.loads(perfs.pop())["total"]["cycles"] > 0


# -- make gpu-check ------------------------------------------------------------------------------


def test_gpu_check_smoke(capsys):
    """The check itself, CPU against CPU (numpy against torch column rules for MicroScopiQ), on
    a random tiny Llama: every scheme compared, every one passes."""
    from qarch.gpu_check import main

    assert main(["--device", "cpu", "--model", "tiny", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ok"] and len(res["layers"]) == 14
    assert set(res["schemes"]) == {"int-rtn", "ant", "olive", "microscopiq-rtn", "gptq",
                                   "axe-gptq", "microscopiq-gptq"}  # fmt: skip
    for r in res["schemes"].values():
        assert r["codes_differ"] == 0 and r["codes"] > 0 and r["ok"]


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present")
def test_gpu_check_without_a_gpu(capsys):
    from qarch.gpu_check import main

    assert main([]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda'" in err and "the project needs none" in err
