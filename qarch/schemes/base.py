"""The scheme interface: a frozen config dataclass per scheme, one registered handler per config
type, and what a handler returns.

A scheme is one unit of code: its module defines its config (only its own options, each
validated on construction and documented by :func:`option`), its model-level handler, its
report label and the hardware presets that execute it, and calls :func:`register` once. Nothing
outside the registry and the scheme's own module names a scheme: ``qarch eval`` builds its
options from the config fields, the report and the model link iterate over :data:`REGISTRY`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # torch loads only when a handler runs: `qarch --help` stays fast
    import torch

__all__ = [
    "SchemeConfig",
    "option",
    "QuantInfo",
    "Context",
    "Scheme",
    "REGISTRY",
    "register",
    "scheme_named",
    "scheme_of",
    "check_bits",
    "check_positive",
    "check_choice",
]

SCALE_BITS = 16  # an fp16 scale per channel (or group) in the EBW


def option(default: Any, help: str, *, flag: str | None = None, choices=None) -> Any:
    """A config field that is also a ``qarch eval`` option: ``help`` is its help text, ``flag``
    its command-line name when not ``--field-name`` (kept for the established flags)."""
    meta = {"help": help, "flag": flag, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SchemeConfig:
    """Base of every scheme config. Subclasses are frozen dataclasses whose ``__post_init__``
    validates every field (raising ``ValueError`` / ``TypeError`` naming it)."""

    scheme: ClassVar[str] = ""  # set by register()

    def options(self) -> dict[str, Any]:
        """The options as applied: field name -> value (what ``qarch eval --json`` records)."""
        return dataclasses.asdict(self)

    @property
    def weight_bits(self) -> float:
        """Bits per weight code (EBW before scales and metadata)."""
        return float(getattr(self, "bits", 32))

    @property
    def act_bits(self) -> int | None:
        """Activation bits in the quantized model (None: float activations)."""
        return None


@dataclass
class QuantInfo:
    """What :func:`qarch.quantize` reports: effective bits per weight (element bits, scales and
    metadata), per-layer details (type, outlier fractions, ...) and, with ``keep_codes``, each
    layer's integer codes and scales where the scheme produces them."""

    ebw: float
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, torch.Tensor] = field(default_factory=dict)
    scales: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Context:
    """What a handler gets besides the model and its config.

    ``calib``: held-out token windows ``[n, seq]`` of a causal LM, or ``calibrate(model)``
    running any model's calibration forwards, or None. ``include(name, module)`` selects layers
    (the tied LM head is never quantized). ``calib_cache``: a dict kept across calls on the same
    model and ``calib`` (GPTQ and AXE share calibration through it)."""

    calib: torch.Tensor | Callable[[torch.nn.Module], object] | None = None
    include: Callable[[str, torch.nn.Module], bool] | None = None
    progress: Callable | None = None
    calib_cache: dict | None = None
    keep_codes: bool = False
    inplace: bool = False  # quantize ``model`` itself: no copy (large models)

    def select(self, name: str, module: torch.nn.Module) -> bool:
        return not name.endswith("lm_head") and (self.include is None or self.include(name, module))

    def calibrate(self, model: torch.nn.Module) -> None:
        """Run the calibration forwards on ``model`` (token windows go to the model's device:
        a model is quantized where it lives)."""
        if callable(self.calib):
            self.calib(model)
            return
        device = next(model.parameters()).device
        for row in self.calib:
            model(row[None].to(device))

    def layers(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        """The Linear layers this run quantizes, in model order."""
        from golden.calib import linear_names

        mods = dict(model.named_modules())
        return [(n, mods[n]) for n in linear_names(model, self.select)]

    def sink_rows(self, sink_weight: float):
        """GPTQ on LM token windows: a row weight that counts the first token of each window
        (the attention sink) ``sink_weight`` times in the Hessian; None where it does not apply
        (a calibrate callable, or weight 1)."""
        if self.calib is None or callable(self.calib) or sink_weight == 1:
            return None
        import torch

        def rows(x: torch.Tensor) -> torch.Tensor:  # x [batch, seq, in]
            a = torch.ones(x.shape[:-1], dtype=torch.float64, device=x.device)
            a[..., 0] = sink_weight
            return a

        return rows


def ebw(layers: Iterable[tuple[str, torch.nn.Module]], elem_bits: float, group=None) -> float:
    """Element bits plus one fp16 scale per output row (or per ``group`` weights of a row), per
    weight, over every quantized layer ``(name, module)``, weighted by size."""
    layers = list(layers)
    w = sum(m.weight.numel() for _, m in layers)
    scales = sum(m.weight.numel() // group if group else m.weight.shape[0] for _, m in layers)
    return elem_bits + SCALE_BITS * scales / w


Handler = Callable[["torch.nn.Module", SchemeConfig, Context], "tuple[torch.nn.Module, QuantInfo]"]


@dataclass(frozen=True)
class Scheme:
    """A registered scheme.

    ``handler(model, config, ctx)`` returns the quantized copy and its :class:`QuantInfo`;
    ``needs_calib(config)`` whether it must be given calibration data; ``label(config)`` its row
    label in reports; ``hardware(config)`` the (PE preset, 8x8 array preset) that execute it, or
    None; ``family`` the hardware family (``qarch.configs`` module) of those presets."""

    name: str
    config: type[SchemeConfig]
    handler: Handler
    needs_calib: Callable[[SchemeConfig], bool]
    label: Callable[[SchemeConfig], str]
    hardware: Callable[[SchemeConfig], tuple[str, str] | None] = lambda cfg: None
    family: str | None = None
    summary: str = ""


REGISTRY: dict[str, Scheme] = {}


def register(scheme: Scheme) -> Scheme:
    """Add ``scheme`` to the registry (its name and config type must be new)."""
    if scheme.name in REGISTRY:
        raise ValueError(f"a scheme named {scheme.name!r} is already registered")
    if any(s.config is scheme.config for s in REGISTRY.values()):
        raise ValueError(f"{scheme.config.__name__} already belongs to another scheme")
    if not (dataclasses.is_dataclass(scheme.config) and issubclass(scheme.config, SchemeConfig)):
        raise TypeError("a scheme's config must be a SchemeConfig dataclass")
    scheme.config.scheme = scheme.name
    REGISTRY[scheme.name] = scheme
    return scheme


def scheme_named(name: str) -> Scheme:
    if name not in REGISTRY:
        raise ValueError(f"scheme must be one of {', '.join(REGISTRY)}, not {name!r}")
    return REGISTRY[name]


def scheme_of(config: SchemeConfig) -> Scheme:
    for s in REGISTRY.values():
        if type(config) is s.config:
            return s
    raise TypeError(f"{type(config).__name__} is not the config of a registered scheme")


# -- field checks shared by the configs ----------------------------------------------------------


def check_bits(name: str, value: Any, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in {lo}..{hi}, not {value}")


def check_positive(name: str, value: Any, *, lo: float = 0.0, hi: float = math.inf,
                   closed: bool = False) -> None:  # fmt: skip
    """A finite number in (lo, hi] (``closed``: [lo, hi])."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    ok = math.isfinite(value) and (lo <= value if closed else lo < value) and value <= hi
    if not ok:
        left = "[" if closed else "("
        right = "]" if math.isfinite(hi) else ")"
        raise ValueError(f"{name} must be in {left}{lo:g}, {hi:g}{right}, not {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")
