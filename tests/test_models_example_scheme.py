"""A scheme added in one file (tests/example_scheme.py) runs through `qarch eval`, `quantize` and
the report machinery without an edit anywhere else."""

import json

import pytest
import torch

from qarch import quantize
from qarch.cli import main
from qarch.schemes import REGISTRY, Fp32Config, IntConfig
from tests.example_scheme import TruncIntConfig


def test_the_example_registers_itself():
    assert REGISTRY["int-trunc"].config is TruncIntConfig
    with pytest.raises(ValueError, match="already registered"):
        from qarch.schemes import register

        register(REGISTRY["int-trunc"])


def test_quantize_matches_int_rtn_at_offset_one_half():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    near, info = quantize(model, TruncIntConfig(bits=4, offset=0.5))
    rtn, _ = quantize(model, IntConfig(bits=4))
    # ties aside (none on random weights), offset 0.5 then truncation is round-half-away
    assert torch.allclose(near[0].weight, rtn[0].weight) and info.ebw > 4
    zero, _ = quantize(model, TruncIntConfig(bits=4))
    assert zero[0].weight.abs().le(model[0].weight.abs() + 1e-7).all()  # toward zero


def test_qarch_eval_takes_its_options_and_rejects_others(capsys):
    args = ["eval", "--scheme", "int-trunc", "--offset", "0.5", "--tokens", "512", "--json"]
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["scheme"] == "int-trunc" and res["offset"] == 0.5 and res["bits"] == 4
    assert res["perplexity"] > 1 and res["ebw"] > 4
    assert main(["eval", "--scheme", "int", "--offset", "0.5"]) == 2
    assert "--offset: not an option of scheme int" in capsys.readouterr().err
    assert main(["eval", "--scheme", "int-trunc", "--offset", "0.7"]) == 2
    assert "offset must be in [0, 0.5], not 0.7" in capsys.readouterr().err


def test_the_report_machinery_runs_it():
    from qarch.report import _results_markdown, results_study

    rows = results_study(
        configs=(Fp32Config(), TruncIntConfig(bits=8, offset=0.5)), tokens=(512, 1024),
        task_models=("fashion-cnn",),
    )  # fmt: skip
    lines = _results_markdown(rows, {})
    row = next(x for x in lines if x.startswith("| INT8 truncated (offset 0.5) | 8/16 |"))
    ppl = rows[1]["ppl"]
    assert f"| {ppl[512]:.2f} | {ppl[1024]:.2f} |" in row
    assert rows[1]["tasks"]["fashion-cnn"]["accuracy"] > 0.8
    assert any(x.startswith("| scheme | W/A | EBW | ppl 0.5 k | ppl 1 k |") for x in lines)
