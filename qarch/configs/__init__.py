"""Hardware design configurations: one frozen dataclass per design, one module per family
(``int``, ``ant``, ``olive``, ``microscopiq``; AXE runs on the INT arrays), the presets, and the
name / JSON resolution every command uses.

A config is the single description of a design that the RTL generator (``build()``), the golden
model (``golden``), the cocotb testbench and the synthesis sweep all read. ``slug`` names the
Verilog module, build directory, report file and pytest id. Configs round-trip through JSON.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .ant import AntArrayConfig, AntDecoderConfig, AntPEConfig
from .base import AccumulatorWidthWarning, Config
from .integer import IntArrayConfig, IntPEConfig
from .microscopiq import MsqArrayConfig, MsqPEConfig, ReconConfig
from .olive import OliveArrayConfig, OliveDecoderConfig, OlivePEConfig

__all__ = [
    "AccumulatorWidthWarning",
    "Config",
    "IntPEConfig",
    "IntArrayConfig",
    "AntDecoderConfig",
    "AntPEConfig",
    "AntArrayConfig",
    "OliveDecoderConfig",
    "OlivePEConfig",
    "OliveArrayConfig",
    "MsqPEConfig",
    "ReconConfig",
    "MsqArrayConfig",
    "COMPONENTS",
    "PRESETS",
    "AXE_SWEEP_PI",
    "AXE_T64_PI",
    "STREAM",
    "STREAM_BASES",
    "synth_targets",
    "resolve",
    "config_from_json",
]

COMPONENTS: dict[str, type[Config]] = {
    c.component: c
    for c in (
        IntPEConfig,
        IntArrayConfig,
        AntDecoderConfig,
        AntPEConfig,
        AntArrayConfig,
        OliveDecoderConfig,
        OlivePEConfig,
        OliveArrayConfig,
        MsqPEConfig,
        ReconConfig,
        MsqArrayConfig,
    )
}


AXE_SWEEP_PI = (8, 10, 12, 14, 16, 20, 24, 32)
# The sweep where AXE is needed: T = 64 on the 8x8 arrays (each column chain runs on over 8 K
# tiles), whose data-type bounds (18 bits W4/A8, 22 W8/A8) lie above the narrow P_I values
AXE_T64_PI = (12, 16, 18, 22, 32)
ABLATIONS = ("-nopot", "-noflint", "-intonly", "-nooutliers")
# ECP5 (LFE5U-85F) figures: one 8x8 array per scheme (make synth), and every other 8x8 and
# 16x16 array (make synth-ecp5: a 16x16 array's place-and-route takes 7-46 minutes here, more
# than make synth's budget). iCE40 is for the PEs and the 4x4 arrays: no 8x8 array fits
# the HX8K.
ECP5_PRESETS = (
    "int4x8-array8x8-p32", "int8x8-array8x8-p32", "int4x4-array8x8-p32", "ant4-array8x8-p32",
    "olive4-array8x8-p32", "olive8-array8x8-p32", "msq-array8x8-p32",
)  # fmt: skip


# The 8x8 arrays that run a scheme in docs/results.md (make report): its "array LUT4" column
# is their iCE40 LUT count (synth_ice40 without DSPs; they do not place on the HX8K).
ICE40_8X8 = (
    "int4x8-array8x8-p16", "int4x8-array8x8-p32", "int8x8-array8x8-p32", "ant4-array8x8-p32",
    "olive4-array8x8-p32", "olive8-array8x8-p32", "msq-array8x8-p32", "msq-b2-array8x8-p32",
)  # fmt: skip


def synth_targets(name: str, big: bool = False) -> tuple[str, ...]:
    """Targets `make synth` runs for a preset; ``big``: those `make synth-ecp5` runs (the
    ECP5 place-and-route of the 16x16 arrays and of the other 8x8 arrays)."""
    cfg = PRESETS[name]
    size = getattr(cfg, "rows", 0) * getattr(cfg, "cols", 0)
    if big:
        # the 16x16 arrays and every 8x8 array without an ECP5 run in make synth
        other8 = size == 64 and name not in ECP5_PRESETS
        return ("ecp5",) if size >= 256 or other8 else ()
    if name.endswith("-fpga"):
        return ("ice40",)  # an FPGA option: the 0.18 um flow has -stream
    if name.endswith(ABLATIONS) or size >= 64:
        # ablations: area, timing (what a feature costs the PE); 8x8 and up: iCE40 only for
        # the LUT counts docs/results.md reads, the ECP5 for one 8x8 array per scheme
        return (
            "generic",
            *(("ice40",) if name in ICE40_8X8 else ()),
            *(("ecp5",) if name in ECP5_PRESETS else ()),
        )
    return ("generic", "ice40")


# The streaming variants of the arrays (`make synth`, make bench's utilisation table):
# "-db": today's array with double-buffered weights (the area of the shadow registers and the
# swap chain); "-stream": double-buffered, fully pipelined (pipeline 2) and 512-deep
# accumulators, so a 512-token prefill streams through every K tile: the arrays that stay busy.
# "-fpga" (4x4, iCE40 only): "-stream" with pipeline 3, for LUT fabrics without DSPs (the
# multiplier over two cycles, the block RAM's output registered, a carry-select output add).
STREAM = {"-db": dict(double_buffer=True), "-stream": dict(double_buffer=True, pipeline=2,
                                                             acc_depth=512),
          "-fpga": dict(double_buffer=True, pipeline=3, acc_depth=512)}  # fmt: skip
STREAM_SUFFIXES = tuple(STREAM)
# The arrays that get streaming variants, by scheme (8x8 presets; 4x4 and 16x16 derived).
STREAM_BASES = (
    "int4x8-array8x8-p32",
    "int8x8-array8x8-p32",
    "int4x4-array8x8-p32",
    "ant4-array8x8-p32",
    "olive4-array8x8-p32",
    "olive8-array8x8-p32",
)


def _presets() -> dict[str, Config]:
    p: dict[str, Config] = {}
    # The AXE accumulator sweep: every P_I for the PEs and the 8x8 arrays (T = 8 rows).
    for wb in (4, 8):
        for acc in AXE_SWEEP_PI:
            p[f"int{wb}x8-pe-p{acc}"] = IntPEConfig(w_bits=wb, a_bits=8, acc_bits=acc)
    for wb in (4, 8):
        for n in (4, 8):
            for acc in AXE_SWEEP_PI if n == 8 else (16, 20, 32):
                p[f"int{wb}x8-array{n}x{n}-p{acc}"] = IntArrayConfig(
                    rows=n, cols=n, w_bits=wb, a_bits=8, acc_bits=acc, out_bits=32
                )
    for wb in (4, 8):
        for acc in AXE_T64_PI:
            p[f"int{wb}x8-array8x8-p{acc}-t64"] = p[f"int{wb}x8-array8x8-p32"].replace(
                acc_bits=acc, tile=64
            )
    # ANT (4-bit operands) next to an INT4 x INT4 PE of the same operand width.
    for acc in (16, 32):
        p[f"int4x4-pe-p{acc}"] = IntPEConfig(w_bits=4, a_bits=4, acc_bits=acc)
    # W4A4 array baseline of the same size as the ANT / OliVe 8x8 arrays.
    p["int4x4-array8x8-p32"] = IntArrayConfig(
        rows=8, cols=8, w_bits=4, a_bits=4, acc_bits=32, out_bits=32
    )
    p["ant4-decoder"] = AntDecoderConfig(bits=4)
    for acc in (16, 32):
        p[f"ant4-pe-p{acc}"] = AntPEConfig(bits=4, acc_bits=acc)
    for n in (4, 8):
        p[f"ant4-array{n}x{n}-p32"] = AntArrayConfig(rows=n, cols=n, bits=4, acc_bits=32)
    # ablations (synth/reports "Ablations"): what each ANT type costs the PE
    for name, types in (("nopot", "int,flint"), ("noflint", "int,pot"), ("intonly", "int")):
        p[f"ant4-pe-p32-{name}"] = AntPEConfig(bits=4, acc_bits=32, types=types)
    # OliVe, 4-bit (W4A4) and 8-bit (W8A8).
    for b in (4, 8):
        p[f"olive{b}-decoder"] = OliveDecoderConfig(bits=b)
        p[f"olive{b}-pe-p32"] = OlivePEConfig(bits=b, acc_bits=32)
        p[f"olive{b}-pe-p32-nooutliers"] = OlivePEConfig(bits=b, acc_bits=32, outliers=False)
    p["olive4-array4x4-p32"] = OliveArrayConfig(rows=4, cols=4, bits=4, acc_bits=32)
    for b in (4, 8):
        p[f"olive{b}-array8x8-p32"] = OliveArrayConfig(rows=8, cols=8, bits=b, acc_bits=32)
    # MicroScopiQ: PE, ReCoN (N = 8), 8x8 array.
    p["msq-pe"] = MsqPEConfig()
    p["msq-recon8"] = ReconConfig()
    p["msq-array8x8-p32"] = MsqArrayConfig(rows=8, cols=8, acc_bits=32, out_bits=32)
    # MicroScopiQ as its paper organises it: one ReCoN for the whole array (time-multiplexed
    # over the rows with outliers, one register stage), and streaming with deep accumulators.
    p["msq-recon8-s1"] = ReconConfig(stages=1)
    shared = dict(recon_rows=8, recon_stages=1)
    p["msq-array8x8-p32-shared"] = p["msq-array8x8-p32"].replace(**shared)
    p["msq-array8x8-p32-stream"] = p["msq-array8x8-p32"].replace(
        **shared, pipeline=2, acc_depth=512
    )
    # 16x16: one ReCoN per 4 rows. Shared by 8 rows, a 16-column block's outlier rows collide
    # so often that SmolLM2 prefill runs at 66 % MAC utilisation; by 4 rows, at 82 % (make
    # bench, docs/perf_results.md).
    p["msq-array16x16-p32-stream"] = p["msq-array8x8-p32-stream"].replace(
        rows=16, cols=16, recon_rows=4
    )
    # b = 2 (the 2-bit inlier configuration the paper is built around): the PEs in their split
    # mode, two 2-bit slots each, so an RxC array computes 2C output channels per pass.
    p["msq-b2-array8x8-p32"] = p["msq-array8x8-p32"].replace(b=2)
    for n in (8, 16):
        p[f"msq-b2-array{n}x{n}-p32-stream"] = p[f"msq-array{n}x{n}-p32-stream"].replace(b=2)
    # Streaming variants: "-db" at 8x8; "-stream" at 4x4, 8x8 and 16x16 (area vs size).
    for base in STREAM_BASES:
        cfg = p[base]
        p[f"{base}-db"] = cfg.replace(**STREAM["-db"])
        for n in (4, 8, 16):
            name = base.replace("array8x8", f"array{n}x{n}") + "-stream"
            p[name] = cfg.replace(rows=n, cols=n, **STREAM["-stream"])
        p[base.replace("array8x8", "array4x4") + "-fpga"] = cfg.replace(
            rows=4, cols=4, **STREAM["-fpga"]
        )
    # AXE's accumulator (the results' AXE-GPTQ row: P_I = 16) on the streaming arrays, so that
    # `qarch perf --scheme axe-gptq` has its area, Fmax and energy.
    for n in (8, 16):
        p[f"int4x8-array{n}x{n}-p16-stream"] = p["int4x8-array8x8-p16"].replace(
            rows=n, cols=n, **STREAM["-stream"]
        )
    return p


PRESETS: dict[str, Config] = _presets()


def _parse_value(name: str, raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"parameter {name} needs a boolean (true/false), not {raw!r}")
    if isinstance(current, int):
        try:
            return int(raw, 0)
        except ValueError:
            raise ValueError(f"parameter {name} needs an integer, not {raw!r}") from None
    return raw


def resolve(name: str, params: dict[str, str] | None = None):
    """A preset or component name plus ``key=value`` overrides -> a validated config."""
    if name in PRESETS:
        base = PRESETS[name]
    elif name in COMPONENTS:
        base = COMPONENTS[name]()  # for field names and types; rebuilt below so derived
    else:  # defaults (acc_bits = bound) follow the overrides
        import difflib

        close = difflib.get_close_matches(name, list(COMPONENTS) + list(PRESETS), n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise KeyError(
            f"unknown design {name!r}; {hint}`qarch list` shows the {len(COMPONENTS)} components "
            f"and {len(PRESETS)} presets"
        )
    params = params or {}
    fields = {f.name: f for f in dataclasses.fields(base)}
    changes = {}
    for key, raw in params.items():
        if key not in fields:
            raise ValueError(
                f"{base.component} has no parameter {key!r}; parameters: {', '.join(fields)}"
            )
        changes[key] = _parse_value(key, raw, getattr(base, key))
    if name in COMPONENTS:
        return COMPONENTS[name](**changes)
    return dataclasses.replace(base, **changes) if changes else base


def config_from_json(text: str | dict):
    """Inverse of ``to_json()``."""
    d = dict(json.loads(text) if isinstance(text, str) else text)
    comp = d.pop("component", None)
    if comp not in COMPONENTS:
        raise ValueError(f"unknown component {comp!r} in config JSON")
    return COMPONENTS[comp](**d)
