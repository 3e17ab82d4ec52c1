"""Operands of the model-to-hardware link, without a simulator (pure Python + golden).

One real SmolLM2 tile per scheme: the weights of ``down_proj`` in block 10 (output channels x
input columns that include the layer's two largest activation channels) and its real input
activations on held-out text, quantized exactly as ``qarch eval`` quantizes the model (the
activation type, scale or alpha calibrated on other held-out rows). Shared by the cocotb link
bench (tb/cocotb_model_link.py, which checks the array's outputs) and the power flow
(qarch/stimulus.py, which drives the same codes into the mapped netlist). ``random_operands``
gives the same formats with uniformly random codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from qarch.configs import AntArrayConfig, IntArrayConfig, MsqArrayConfig, OliveArrayConfig
from qarch.models import layer_sample

__all__ = ["LAYER", "Operands", "tile", "token_ints", "link_operands", "random_operands"]

LAYER = "model.layers.10.mlp.down_proj"


@dataclass
class Operands:
    """Integer operands of ``Y = W @ A`` for one array config: ``w`` [N, K] and ``a`` [K, M]
    values, the codes the array's edge decoders take (None: the values are the codes), the
    per-tensor type ports to hold, and what a dequantizing check needs (``extra``)."""

    w: torch.Tensor
    a: torch.Tensor
    w_codes: torch.Tensor | None = None
    a_codes: torch.Tensor | None = None
    ports: dict[str, int] = field(default_factory=dict)
    label: str = ""
    extra: dict = field(default_factory=dict)
    msq: object = None  # MicroScopiQ: the MsqQuant (its schedule needs slots and exponents)

    def gemm_kwargs(self) -> dict:
        return {"w_codes": self.w_codes, "a_codes": self.a_codes}


def tile(n: int, k: int, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights [n, k], driven activations [m, k], calibration activations [256, k])."""
    w, x = layer_sample(LAYER)
    top = torch.argsort(x.abs().amax(0), descending=True)[:2].tolist()
    rest = [c for c in range(x.shape[1]) if c not in top]
    chans = torch.tensor((rest[:3] + top + rest[3:])[:k])  # k >= 5 holds both top channels
    rows = torch.argsort(w[:, chans].abs().amax(1), descending=True)[:n]  # outlier weights too
    return w[rows][:, chans], x[512 : 512 + m][:, chans], x[:256][:, chans]


def token_ints(x: torch.Tensor, a_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed a_bits integer activations [m, k] with per-token scales [m, 1], as the eval's
    ``AxeLinear`` forms them (golden.axe.quantize_inputs, round half to even)."""
    from golden.axe import quantize_inputs, token_scales

    s_a = token_scales(x.to(torch.float64), a_bits, True)
    q = quantize_inputs(x.to(torch.float64), a_bits, True, s_a)
    return torch.round(q / s_a).to(torch.int64), s_a


def _int(cfg, w, x, cal, axe: bool) -> Operands:
    from golden.axe import AxeLinear, quantize_layer, token_scales
    from golden.int_quant import quantize_int

    a, s_a = token_ints(x, cfg.a_bits)
    if axe:
        q, s_w = quantize_layer(
            w, cal, weight_bits=cfg.w_bits, input_bits=cfg.a_bits, input_signed=True,
            acc_bits=cfg.acc_bits, tile=cfg.t,
            input_scale=token_scales(cal.to(torch.float64), cfg.a_bits, True),
        )  # fmt: skip
        y_fq = AxeLinear(q, s_w, None, cfg.a_bits, True, None, cfg.acc_bits, cfg.t)(x)
    else:
        res = quantize_int(w, cfg.w_bits, granularity="channel")
        q, s_w = res.values, res.scales.reshape(-1).to(torch.float64)
        y_fq = (a.to(torch.float64) * s_a) @ (q.to(torch.float64) * s_w[:, None]).T
    return Operands(
        q, a.T.contiguous(), label="axe" if axe else "int",
        extra={"s_w": s_w, "s_a": s_a, "y_fq": y_fq},
    )  # fmt: skip


def _ant(cfg, w, x, cal) -> Operands:
    from golden.ant import ANT_KINDS
    from golden.ant_quant import quantize_ant, quantize_to_grid
    from qarch.schemes import AntConfig

    # the eval's clip range (ratios of max |w| from AntConfig's clip_min), at the golden step
    wq = quantize_ant(w, cfg.bits, role="weight", ratios=AntConfig(ratio_step=0.01).ratios())
    t = quantize_ant(cal, cfg.bits, role="activation")  # calibrated type and scale
    s_a = float(t.scales[0])
    a_vals = quantize_to_grid(x.to(torch.float64) / s_a, t.type.grid())  # the eval's hook
    ports = {
        "w_type": ANT_KINDS.index(wq.type.kind) | (int(wq.type.signed) << 2),
        "a_type": ANT_KINDS.index(t.type.kind) | (int(t.type.signed) << 2),
    }
    y_fq = (a_vals.to(torch.float64) * s_a) @ wq.dequant.to(torch.float64).T
    return Operands(
        wq.values, a_vals.T.contiguous(), wq.codes, t.type.encode(a_vals).T.contiguous(), ports,
        f"ant W:{wq.type.name} A:{t.type.name}",
        {"s_w": wq.scales, "s_a": s_a, "y_fq": y_fq, "w_type": wq.type, "a_type": t.type},
    )  # fmt: skip


def _olive(cfg, w, x, cal) -> Operands:
    from golden.olive import decode_pairs, quantize_olive

    wq = quantize_olive(w, cfg.bits)
    c = quantize_olive(cal, cfg.bits, role="activation")  # calibrated type and alpha
    aq = quantize_olive(
        x, cfg.bits, role="activation", normal=c.fmt.normal,
        alpha=float(c.scale[0]) * c.fmt.normal_max,
    )  # fmt: skip  # what the eval's activation hook does on every forward
    ports = {}
    if cfg.bits == 4:
        ports = {f"{r}_normal": int(q.fmt.normal == "flint4") for r, q in (("w", wq), ("a", aq))}
    wv, av = decode_pairs(wq.codes, wq.fmt), decode_pairs(aq.codes, aq.fmt)
    y_fq = aq.dequant.to(torch.float64) @ wq.dequant.to(torch.float64).T
    return Operands(
        wv, av.T.contiguous(), wq.codes, aq.codes.T.contiguous(), ports,
        f"olive W:{wq.fmt.normal} A:{aq.fmt.normal}",
        {"s_w": wq.scale, "s_a": float(aq.scale[0]), "y_fq": y_fq, "w_fmt": wq.fmt,
         "a_fmt": aq.fmt, "outlier_pairs": aq.stats.outlier_pairs},
    )  # fmt: skip


def _msq(cfg, w, x, cal) -> Operands:
    from golden.microscopiq import MsqParams, quantize_msq
    from qarch.schemes import MicroScopiQConfig

    # the eval's default: GPTQ path, searched MaB exponents
    search = MicroScopiQConfig().exponent == "search"
    params = MsqParams(b=cfg.b, m=cfg.m, M=2 * cfg.lanes, T=cfg.rows, e_search=search)
    quant = quantize_msq(w, params, inputs=cal)
    a, s_a = token_ints(x, 8)
    return Operands(
        quant.coefficients(), a.T.contiguous(), label="microscopiq", msq=quant,
        extra={"s_a": s_a, "params": params},
    )  # fmt: skip


# One link per registered scheme with hardware (registry name -> operands, array family)
_LINKS = {
    "int": (lambda cfg, w, x, cal: _int(cfg, w, x, cal, axe=False), IntArrayConfig),
    "axe-gptq": (lambda cfg, w, x, cal: _int(cfg, w, x, cal, axe=True), IntArrayConfig),
    "ant": (_ant, AntArrayConfig),
    "olive": (_olive, OliveArrayConfig),
    "microscopiq": (_msq, MsqArrayConfig),
}


def link_operands(cfg, scheme: str, n: int, k: int, m: int) -> Operands:
    """The real tile's operands for ``scheme`` (a registry name: int, axe-gptq, ant, olive,
    microscopiq) on array ``cfg``."""
    make, family = _LINKS.get(scheme, (None, None))
    if make is None or not isinstance(cfg, family):
        raise ValueError(f"scheme {scheme!r} has no link onto a {type(cfg).__name__}")
    w, x, cal = tile(n, k, m)
    return make(cfg, w, x, cal)


def scheme_of(cfg) -> str:
    """The link scheme an array config runs (INT arrays: plain INT, the first of the family)."""
    for name, (_, family) in _LINKS.items():
        if isinstance(cfg, family):
            return name
    raise TypeError(f"no model link for {type(cfg).__name__}")


def random_operands(real: Operands, cfg, seed: int) -> Operands:
    """``real``'s formats (types, normal types, MicroScopiQ slots) with uniformly random codes
    in place of the real ones: every code of the format equally likely."""
    g = torch.Generator().manual_seed(seed)

    def uniform(lo: int, hi: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randint(lo, hi + 1, like.shape, generator=g, dtype=torch.int64)

    if isinstance(cfg, IntArrayConfig):
        w = uniform(-(2 ** (cfg.w_bits - 1)), 2 ** (cfg.w_bits - 1) - 1, real.w)
        a = uniform(-(2 ** (cfg.a_bits - 1)), 2 ** (cfg.a_bits - 1) - 1, real.a)
        return Operands(w, a, label="int random")
    if isinstance(cfg, AntArrayConfig):
        wt, at = real.extra["w_type"], real.extra["a_type"]
        wc, ac = uniform(0, 2**cfg.bits - 1, real.w), uniform(0, 2**cfg.bits - 1, real.a)
        return Operands(
            wt.decode(wc).value(), at.decode(ac).value(), wc, ac, real.ports, "ant random"
        )
    if isinstance(cfg, OliveArrayConfig):
        from golden.olive import decode_pairs

        wf, af = real.extra["w_fmt"], real.extra["a_fmt"]
        wc, ac = uniform(0, 2**cfg.bits - 1, real.w), uniform(0, 2**cfg.bits - 1, real.a.T)
        return Operands(
            decode_pairs(wc, wf), decode_pairs(ac, af).T.contiguous(), wc, ac.T.contiguous(),
            real.ports, "olive random",
        )  # fmt: skip
    if isinstance(cfg, MsqArrayConfig):
        # the real tile's slots, outlier positions and exponents, random inlier codes
        q = real.msq
        codes = torch.where(q.kind == 0, uniform(0, 2**q.params.b - 1, q.codes), q.codes)
        quant = q._replace(codes=codes)
        a = uniform(-128, 127, real.a)
        return Operands(quant.coefficients(), a, label="microscopiq random", msq=quant)
    raise TypeError(f"no random operands for {type(cfg).__name__}")
