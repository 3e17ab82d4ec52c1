"""Bad inputs to the golden API are clear errors naming the argument, never wrong numbers or a
traceback from inside torch (one test per class of input found silently accepted)."""

import json
from pathlib import Path

import pytest
import torch

from golden.ant import AntType
from golden.ant_quant import quantize_to_grid
from golden.axe import input_range, quantize_layer
from golden.gptq import gptq_loop
from golden.olive import (
    OliveFormat,
    apply_pairs,
    encode_pairs,
    pack_pairs,
    quantize_olive,
    round_merged,
    unpack_pairs,
)
from qarch.cli import main


def test_abfloat_exponents_beyond_int64_are_rejected(capsys):
    with pytest.raises(ValueError, match=r"e_bits=6 gives int8 outliers up to 2\^71.*1\.\.5"):
        OliveFormat("int8", 6)
    assert OliveFormat("int8", 5).outlier_max() == 481036337152  # (2^3 - 1) << 36 fits
    assert main(["formats", "abfloat", "--bits", "8", "--e-bits", "6"]) == 2
    assert "e_bits must be in 1..5" in capsys.readouterr().err


def test_encode_pairs_checks_the_pair_invariants():
    f = OliveFormat("int4")
    vals, victim = apply_pairs(round_merged(torch.tensor([[12.0, 3.0, 1.0, -2.0]]), f), f)
    assert encode_pairs(vals, victim, f).tolist() == [[f.encode_outlier(torch.tensor(12)).item(),
                                                       8, 1, 10]]  # fmt: skip
    cases = [
        (torch.tensor([[12, 24]]), torch.tensor([[False, False]]), "holds two outliers"),
        (torch.tensor([[3, 1]]), torch.tensor([[True, False]]), "victim flag on a non-zero"),
        (torch.tensor([[0, 1]]), torch.tensor([[True, False]]), "partner is not an outlier"),
        (torch.tensor([[12, 1]]), torch.tensor([[False, False]]), "not flagged as the victim"),
        (torch.tensor([[1, 2, 3]]), torch.tensor([[False] * 3]), "even last dimension"),
    ]
    for v, m, msg in cases:
        with pytest.raises(ValueError, match=msg):
            encode_pairs(v, m, f)
    with pytest.raises(TypeError, match="victim must be a bool tensor"):
        encode_pairs(torch.tensor([[1, 2]]), torch.tensor([[0, 0]]), f)


@pytest.mark.parametrize("bits,bad", [(4, 16), (4, -1), (8, 256)])
def test_pack_pairs_rejects_codes_out_of_range(bits, bad):
    with pytest.raises(ValueError, match=f"codes must be in 0..{(1 << bits) - 1}.*not {bad}"):
        pack_pairs(torch.tensor([1, bad]), bits)
    with pytest.raises(ValueError, match=r"packed pairs are bytes \(0..255\), not 300"):
        unpack_pairs(torch.tensor([300, 1]), bits)


@pytest.mark.parametrize("kw,msg", [
    (dict(alpha=0.0), "alpha must be finite and positive, not 0.0"),
    (dict(alpha=-1.0), "alpha must be finite and positive"),
    (dict(alpha=float("nan")), "alpha must be finite and positive"),
    (dict(ratios=(0.0,)), "ratios must be non-empty, finite and positive"),
    (dict(ratios=(float("inf"),)), "ratios must be non-empty, finite and positive"),
    (dict(ratios=()), "ratios must be non-empty"),
])  # fmt: skip
def test_olive_scales_must_be_finite_and_positive(kw, msg):
    with pytest.raises(ValueError, match=msg):
        quantize_olive(torch.randn(4, 8), 4, role="activation", **kw)


def test_nan_into_a_grid_is_an_error_not_an_index():
    g = AntType("int", 4).grid()
    with pytest.raises(ValueError, match="y holds 1 NaN"):
        quantize_to_grid(torch.tensor([0.5, float("nan")]), g)


def test_gptq_loop_arguments_and_a_singular_hessian():
    w = torch.randn(4, 8, dtype=torch.float64)
    x = torch.randn(16, 8, dtype=torch.float64)

    def col(wc, c):
        return torch.round(wc)

    with pytest.raises(ValueError, match="block_size must be a positive int, not -1"):
        gptq_loop(w.clone(), x, col, block_size=-1)
    with pytest.raises(ValueError, match="damp must be finite and positive, not 0"):
        gptq_loop(w.clone(), x, col, damp=0)
    with pytest.raises(ValueError, match="the Hessian holds NaN or Inf"):
        gptq_loop(w.clone(), x * float("nan"), col)
    gram = -torch.eye(8, dtype=torch.float64)  # negative definite: no Cholesky factor
    with pytest.raises(ValueError, match="not positive definite"):
        gptq_loop(w.clone(), None, col, gram=gram)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        quantize_layer(w.float(), x.float(), weight_bits=4, input_bits=8, input_signed=True,
                       acc_bits=None,
                       block_size=0)  # fmt: skip


def test_one_bit_signed_inputs_are_rejected():
    assert input_range(1, False) == (0, 1)
    with pytest.raises(ValueError, match="signed inputs need at least 2 bits, not 1"):
        input_range(1, True)


def test_json_errors_go_to_stdout_too(capsys):
    assert main(["eval", "--scheme", "olive", "--group", "32", "--json"]) == 2
    out, err = capsys.readouterr()
    assert "not an option of scheme olive" in err
    assert "not an option of scheme olive" in json.loads(out)["error"]


def test_gemm_operands_must_keep_exact_sums_in_int64():
    from golden.accum import dot, gemm

    big = torch.tensor([[2**40, 1]])
    with pytest.raises(ValueError, match=r"operands too large for exact int64 sums.*K = 2"):
        gemm(big, torch.tensor([[2**30], [1]]), inner_bits=32)
    with pytest.raises(ValueError, match="operands too large"):
        dot(big[0], torch.tensor([2**30, 1]), 32)
    # a tile longer than K is one tile, computed without padding to the tile length
    w, a = torch.tensor([[3, -2, 1]]), torch.tensor([[1], [2], [3]])
    r = gemm(w, a, inner_bits=8, tile=2**40)
    assert r.y.tolist() == [[2]] and r.tiles.shape == (1, 1, 1)
    with pytest.raises(ValueError, match="must match"):
        gemm(w, torch.tensor([[1], [2]]), inner_bits=8)


def test_caches_are_atomic_keyed_and_checked(tmp_path, monkeypatch):
    from qarch import models

    monkeypatch.setenv("QARCH_CACHE", str(tmp_path))
    path = tmp_path / "x.pt"
    models._save_atomic(torch.arange(5), path)
    assert torch.equal(models._load_cached(path), torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]  # no temporary file left behind
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with pytest.raises(models.CacheCorrupt, match=r"x\.pt cannot be read .*delete it"):
        models._load_cached(path)

    class Interrupt(BaseException):
        pass

    def boom(obj, f):
        Path(f).write_bytes(b"partial")
        raise Interrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(Interrupt):
        models._save_atomic(torch.arange(3), tmp_path / "y.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt"]  # neither y.pt nor a temp


def test_token_cache_key_follows_the_tokenizer(tmp_path, monkeypatch):
    from qarch import models

    monkeypatch.setenv("QARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "wiki_text", lambda: "a b c")

    class Tok:  # a tokenizer whose definition (to_str) decides its ids
        def __init__(self, shift):
            self.shift = shift
            self.backend_tokenizer = type("B", (), {"to_str": lambda _s: f"shift={shift}"})()

        def __call__(self, text):
            return {"input_ids": [ord(ch) + self.shift for ch in text]}

    a = models.wiki_tokens(Tok(0), "/some/path")
    b = models.wiki_tokens(Tok(1), "/some/path")  # same path, changed tokenizer: new tokens
    assert torch.equal(b, a + 1) and len(list(tmp_path.glob("wiki-tokens-*.pt"))) == 2
    assert torch.equal(models.wiki_tokens(Tok(0), "/some/path"), a)  # cached


def test_report_and_output_paths_are_checked(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["synth-all", "--table-only", "--out", str(empty)]) == 2
    assert "holds no synthesis report" in capsys.readouterr().err
    # make synth's FPGA build report sits beside the synthesis reports: not one of them, so
    # a second `make synth` tabulates as the first did
    (empty / "fpga-icebreaker-x.json").write_text('{"board": "icebreaker"}')
    assert main(["synth-all", "--table-only", "--out", str(empty)]) == 2
    assert "holds no synthesis report" in capsys.readouterr().err
    (empty / "x.generic.json").write_text('{"design": "x", "tar')  # truncated
    assert main(["synth-all", "--table-only", "--out", str(empty)]) == 2
    assert "x.generic.json is not a synthesis report" in capsys.readouterr().err
    assert not (empty / "README.md").exists()
    f = tmp_path / "file"
    f.write_text("")
    assert main(["verilog", "int-pe", "-o", str(f)]) == 2
    assert f"-o {f} is a file" in capsys.readouterr().err


@pytest.mark.parametrize("argv,msg", [
    (["--scheme", "axe-gptq", "--tile", "0"], "tile must be in 1..1048576, not 0"),
    (["--scheme", "gptq", "--calib", "-3"], "--calib must be in 1..1024 windows, not -3"),
    (["--scheme", "gptq", "--sink-weight", "inf"], r"sink_weight must be in [0, inf), not inf"),
    (["--scheme", "ant", "--ratio-step", "1e-9"], "ratio_step must be in [0.001, 1]"),
    (["--scheme", "olive", "--group", "32"], "--group: not an option of scheme olive"),
    (["--tokens", "100"], "--tokens must be a positive multiple of 512, not 100"),
])  # fmt: skip
def test_eval_arguments_fail_before_any_model_loads(argv, msg, capsys, monkeypatch):
    import qarch.models

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(qarch.models, "load_causal_lm", no_model)
    assert main(["eval", *argv]) == 2
    assert msg in capsys.readouterr().err


def test_lm_only_options_are_errors_for_task_models(capsys):
    assert main(["eval", "--model", "fashion-cnn", "--scheme", "gptq", "--calib", "4"]) == 2
    assert "--calib counts LM windows; fashion-cnn calibrates" in capsys.readouterr().err
    assert main(["eval", "--model", "minilm-l6", "--tokens", "1024"]) == 2
    assert "--tokens counts LM evaluation tokens" in capsys.readouterr().err
    assert main(["formats", "abfloat", "--bits", "5"]) == 2
    assert "--bits must be 4 or 8 for abfloat" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_long_command_ends_in_one_line_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    # a slow command: the report section that loads SmolLM2 first (interrupted long before)
    argv = [sys.executable, "-m", "qarch.report", "--only", "olive", "--out", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until its SIGTERM handler is installed (SigCgt)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        if caught >> (signal.SIGTERM - 1) & 1:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "python -m qarch.report: interrupted" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # no partial report


def test_a_damaged_model_cache_names_the_folder(tmp_path, monkeypatch):
    from qarch import models

    monkeypatch.setenv("QARCH_CACHE", str(tmp_path))
    folder = tmp_path / "smollm2-135m-fp32"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "vocab')  # truncated
    with pytest.raises(models.CacheCorrupt, match="smollm2-135m-fp32 cannot be loaded.*delete"):
        models.load_causal_lm()
