"""Models larger than memory: in-place, block-sequential quantization with weights held in
bfloat16, on randomly initialised Llama-architecture models built from a config."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from qarch import quantize
from qarch.schemes import GptqConfig, IntConfig, MicroScopiQConfig

_LLAMA = dict(
    vocab_size=512, hidden_size=256, intermediate_size=512, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=256, tie_word_embeddings=True,
)  # fmt: skip


def _llama(layers: int = 2, dtype=torch.float32, hidden: int = 256, inter: int = 512):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(**{**_LLAMA, "num_hidden_layers": layers, "hidden_size": hidden,
                         "intermediate_size": inter})  # fmt: skip
    return LlamaForCausalLM(cfg).to(dtype).eval()


CALIB = torch.randint(0, 512, (2, 64), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "cfg",
    [
        IntConfig(bits=4),
        GptqConfig(bits=4, weight_only=True, capture="block"),
        GptqConfig(bits=4, capture="block"),
        MicroScopiQConfig(bits=4, capture="block"),
    ],
    ids=["int", "gptq-w4", "gptq-w4a8", "msq"],
)
def test_inplace_gives_the_copy_path_figures(cfg):
    """In place, the model itself becomes the quantized model, with the same outputs, codes
    and EBW as the quantized copy."""
    calib = CALIB if not isinstance(cfg, IntConfig) else None
    model = _llama(hidden=128, inter=256)
    q_copy, info_copy = quantize(model, cfg, calib=calib, keep_codes=True)
    with torch.no_grad():
        ref = q_copy(CALIB[:1]).logits
    q_in, info_in = quantize(model, cfg, calib=calib, keep_codes=True, inplace=True)
    assert q_in is model
    with torch.no_grad():
        assert torch.equal(q_in(CALIB[:1]).logits, ref)
    assert info_in.ebw == info_copy.ebw
    assert info_in.codes.keys() == info_copy.codes.keys()
    for n in info_copy.codes:
        assert torch.equal(info_in.codes[n], info_copy.codes[n])


def test_bfloat16_model_keeps_its_dtype():
    """Weights in bfloat16: the quantizers compute in float32 or wider per layer and the
    quantized model (integer-input layers included) still runs in bfloat16."""
    model = _llama(dtype=torch.bfloat16, hidden=128, inter=256)
    q, info = quantize(model, GptqConfig(bits=4, capture="block"), calib=CALIB, inplace=True)
    with torch.no_grad():
        out = q(CALIB[:1]).logits
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert info.ebw == pytest.approx(4 + 16 / 128, abs=0.02)


_CAPPED = textwrap.dedent(
    """
    import resource, sys, torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from qarch import quantize
    from qarch.schemes import GptqConfig
    new, cap_mb = sys.argv[1] == "new", int(sys.argv[2])
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = LlamaConfig(**{kw}, num_hidden_layers=12)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16 if new else torch.float32).eval()
    calib = torch.randint(0, 512, (4, 128), generator=torch.Generator().manual_seed(1))
    def vmdata():
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status")
                    if l.startswith("VmData:"))
    limit = vmdata() + cap_mb * 2**20  # the model is loaded: the cap is for quantization
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        with torch.no_grad():
            if new:  # block-sequential, in place, bfloat16 weights
                quantize(model, GptqConfig(bits=4, weight_only=True, capture="block"),
                         calib=calib, inplace=True)
            else:  # the old path: a float32 copy, every Hessian from one float pass
                quantize(model, GptqConfig(bits=4, weight_only=True, capture="float"),
                         calib=calib)
    except (MemoryError, RuntimeError) as e:
        print("out of memory:", str(e)[:80])
        sys.exit(3)
    print("fits")
    """
).replace("{kw}", repr(_LLAMA).replace("{", "dict(**{").replace("}", "})"))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA and /proc: Linux")
def test_block_sequential_fits_a_memory_cap_the_old_path_does_not(tmp_path):
    """A 12-block Llama (17 M parameters) under a 100 MB cap on new data memory: the old path
    (a float32 copy, all Hessians from one float pass) runs out; the in-place block-sequential
    path with bfloat16 weights quantizes it."""
    script = tmp_path / "capped.py"
    script.write_text(_CAPPED)
    runs = {}
    for mode in ("old", "new"):
        p = subprocess.run([sys.executable, str(script), mode, "100"], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
        runs[mode] = (p.returncode, p.stdout + p.stderr[-2000:])
    assert runs["old"][0] == 3 and "out of memory" in runs["old"][1], runs["old"]
    assert runs["new"][0] == 0 and "fits" in runs["new"][1], runs["new"]


def test_eval_dtype_checks(capsys):
    from qarch.cli import main

    assert main(["eval", "--model", "fashion-cnn", "--scheme", "int", "--dtype", "bfloat16"]) == 2
    assert "--dtype applies to causal LMs" in capsys.readouterr().err
    from qarch.models import load_causal_lm

    with pytest.raises(ValueError, match="--dtype must be one of"):
        load_causal_lm(dtype="int8")
