"""``make gpu-check``: the golden quantizers on a GPU against the CPU, on real layers.

For each layer of the sample (SmolLM2-135M's seven Linears of its first and last blocks, with
their calibration inputs from held-out text) every quantizer runs once on the CPU and once on
the device, and the integer codes are compared:

- round-to-nearest schemes (INT per channel, ANT, OliVe, MicroScopiQ RTN) must give **identical**
  codes: their rules are exact or IEEE-identical on any device;
- GPTQ-based ones (GPTQ W4, AXE-GPTQ W4A8 with P_I = 16 over T = 64, MicroScopiQ GPTQ) run a
  Cholesky factorisation and thousands of rank-1 updates whose float rounding differs between
  devices, and one code that rounds the other way is then compensated differently: their
  difference is **bounded** (at most ``GPTQ_MAX_DIFF`` of the codes differ, and the layer's output
  error on its calibration inputs within ``GPTQ_MAX_ERR_REL`` of the CPU's). AXE's overflow
  guarantee must hold on the device's codes, exactly.

It prints a table (codes that differ, time on each, speedup) and exits 1 on any failure.
Without a GPU, ``--device cuda`` (the default) is a clear error; ``--device cpu`` compares the
CPU with itself, MicroScopiQ's numpy column rules with the torch ones a GPU runs (the check's
own smoke test). ``--model tiny``: a randomly initialised
Llama-architecture model instead of SmolLM2 (nothing to download).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch

GPTQ_MAX_DIFF = 0.02  # fraction of a layer's codes that may differ between devices (GPTQ-based)
GPTQ_MAX_ERR_REL = 0.02  # |err_dev - err_cpu| / err_cpu of a layer's output error


def _sample(model: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer: (weight [out, in] float32, calibration inputs [rows, in] float32)}."""
    from golden.calib import capture_linear_inputs

    if model == "tiny":
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256,
                          num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=2,
                          max_position_embeddings=256, tie_word_embeddings=True)  # fmt: skip
        lm = LlamaForCausalLM(cfg).eval()
        ids = torch.randint(0, 512, (2, 64), generator=torch.Generator().manual_seed(1))
    else:
        from .models import calibration_ids, load_causal_lm, wiki_tokens

        lm, tok = load_causal_lm(model)
        ids = calibration_ids(wiki_tokens(tok, model), 2)
    last = lm.config.num_hidden_layers - 1
    names = [f"model.layers.{i}.{p}" for i in sorted({0, last}) for p in
             ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]  # fmt: skip
    mods = dict(lm.named_modules())
    caps = capture_linear_inputs(lm, lambda m: m(ids), names, max_rows=1024)
    return {n: (mods[n].weight.detach().float().clone(), caps[n].rows) for n in names}


def _quantizers() -> dict[str, tuple[bool, Callable]]:
    """name -> (exact?, f(weight, inputs) -> (codes int64, dequantized weight))."""
    from golden.ant_quant import quantize_ant
    from golden.axe import guarantee_holds, quantize_layer
    from golden.int_quant import quantize_int
    from golden.microscopiq import MsqParams, quantize_msq
    from golden.olive import quantize_olive

    def int_rtn(w, x):
        q = quantize_int(w, 4, granularity="channel")
        return q.codes, q.dequant

    def ant(w, x):
        q = quantize_ant(w, 4)
        return q.codes, q.dequant

    def olive(w, x):
        q = quantize_olive(w, 4)
        return q.codes, q.dequant.to(w.dtype)

    def msq_rtn(w, x):
        q = quantize_msq(w, MsqParams(e_search=True))
        return torch.stack([q.codes, q.kind]), q.dequant.to(w.dtype)

    def gptq(w, x):
        q, s = quantize_layer(w, x, weight_bits=4, input_bits=None, input_signed=True,
                              acc_bits=None, act_order=True)  # fmt: skip
        return q, (q * s[:, None]).to(w.dtype)

    def axe(w, x):
        q, s = quantize_layer(w, x, weight_bits=4, input_bits=8, input_signed=True,
                              acc_bits=16, tile=64, act_order=True)  # fmt: skip
        if not guarantee_holds(q, 8, True, 16, 64):
            raise AssertionError("AXE's accumulator guarantee fails on these codes")
        return q, (q * s[:, None]).to(w.dtype)

    def msq_gptq(w, x):
        q = quantize_msq(w, MsqParams(e_search=True), inputs=x, act_order=True)
        return torch.stack([q.codes, q.kind]), q.dequant.to(w.dtype)

    return {
        "int-rtn": (True, int_rtn), "ant": (True, ant), "olive": (True, olive),
        "microscopiq-rtn": (True, msq_rtn), "gptq": (False, gptq), "axe-gptq": (False, axe),
        "microscopiq-gptq": (False, msq_gptq),
    }  # fmt: skip


def _timed(f, w, x, device: torch.device, torch_rules: bool = False):
    import golden.microscopiq as msq

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    w, x = w.to(device), x.to(device)
    numpy_rules = msq._NUMPY_ON_CPU
    msq._NUMPY_ON_CPU = not torch_rules
    sync()
    t = time.perf_counter()
    try:
        codes, deq = f(w, x)
        sync()
    finally:
        msq._NUMPY_ON_CPU = numpy_rules
    return codes.cpu(), deq.cpu(), time.perf_counter() - t


def check(device: torch.device, model: str = "smollm2-135m", progress=None) -> dict:
    """Every quantizer on every sample layer, on the CPU and on ``device``: per scheme the
    codes that differ, the worst output-error drift, the times and whether it passes."""
    layers = _sample(model)
    refs = {n: x @ w.T for n, (w, x) in layers.items()}  # each layer's float output
    rows = {}
    for name, (exact, f) in _quantizers().items():
        diff = total = 0
        drift = 0.0
        t_cpu = t_dev = 0.0
        items = progress(layers.items(), name) if progress else layers.items()
        for layer, (w, x) in items:
            c_cpu, d_cpu, t1 = _timed(f, w, x, torch.device("cpu"))
            c_dev, d_dev, t2 = _timed(f, w, x, device, torch_rules=True)
            t_cpu, t_dev = t_cpu + t1, t_dev + t2
            diff += int((c_cpu != c_dev).sum())
            total += c_cpu.numel()
            ref = refs[layer]
            e_cpu = float((x @ d_cpu.T - ref).norm())
            e_dev = float((x @ d_dev.T - ref).norm())
            drift = max(drift, abs(e_dev - e_cpu) / max(e_cpu, 1e-30))
        frac = diff / total
        ok = diff == 0 if exact else (frac <= GPTQ_MAX_DIFF and drift <= GPTQ_MAX_ERR_REL)
        rows[name] = {"exact": exact, "codes_differ": diff, "codes": total,
                      "fraction_differ": frac, "output_error_drift": drift,
                      "cpu_s": round(t_cpu, 3), "device_s": round(t_dev, 3),
                      "speedup": round(t_cpu / t_dev, 2) if t_dev > 0 else None,
                      "ok": ok}  # fmt: skip
    return {"device": str(device), "model": model, "layers": list(layers), "schemes": rows,
            "ok": all(r["ok"] for r in rows.values())}  # fmt: skip


def render(res: dict) -> str:
    head = (f"gpu-check: {res['device']} against the CPU, {res['model']}, "
            f"{len(res['layers'])} layers")  # fmt: skip
    lines = [head, "", "| scheme | rule | codes that differ | output-error drift | CPU s | "
             "device s | speedup | |", "|---|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for name, r in res["schemes"].items():
        rule = "identical" if r["exact"] else f"<= {GPTQ_MAX_DIFF:.0%} differ"
        lines.append(
            f"| {name} | {rule} | {r['codes_differ']} / {r['codes']} "
            f"({r['fraction_differ']:.3%}) | {r['output_error_drift']:.2e} | {r['cpu_s']:.2f} | "
            f"{r['device_s']:.2f} | {r['speedup']}x | {'ok' if r['ok'] else 'FAIL'} |"
        )
    lines += ["", "gpu-check: " + ("passed" if res["ok"] else "FAILED")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from golden.device import describe_torch, resolve_device

    ap = argparse.ArgumentParser(
        prog="python -m qarch.gpu_check",
        description="The golden quantizers on a GPU against the CPU: identical codes for the "
        "round-to-nearest schemes, a bounded difference for the GPTQ-based ones, and the "
        "speedup (docs/gpu.md).",
    )
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (smoke)")
    ap.add_argument(
        "--model", default="smollm2-135m", choices=("smollm2-135m", "tiny"),
        help="the layers' source: SmolLM2 (default) or a random tiny Llama",
    )  # fmt: skip
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        print(f"gpu-check: {e}", file=sys.stderr)
        print("gpu-check: run it where a GPU exists; the project needs none", file=sys.stderr)
        return 2
    from tqdm import tqdm

    print(f"gpu-check: {describe_torch()}", file=sys.stderr)
    def bar(it, name):
        return tqdm(it, desc=name, unit="layer", file=sys.stderr)

    res = check(device, args.model, progress=bar)
    print(json.dumps(res, sort_keys=True) if args.json else render(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
