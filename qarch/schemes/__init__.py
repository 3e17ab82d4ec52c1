"""Quantization schemes as units: ``qarch.quantize(model, config)`` and the scheme registry.

Each scheme is one module here: a frozen config dataclass carrying only that scheme's options
(validated on construction), its model-level handler, report label and hardware presets, and
one :func:`register` call. Adding a scheme means adding such a module (or registering from any
module of your own): ``qarch eval``, the report and the model-to-hardware link iterate over
:data:`REGISTRY` and name no scheme. See docs/design.md, "Adding a scheme".

    >>> from qarch import quantize
    >>> from qarch.schemes import AntConfig
    >>> qmodel, info = quantize(model, AntConfig(bits=4))          # doctest: +SKIP
    >>> info.ebw                                                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import ant as _ant  # noqa: F401  (the built-in schemes register on import)
from . import axe as _axe  # noqa: F401
from . import fp32 as _fp32  # noqa: F401
from . import integer as _integer  # noqa: F401
from . import microscopiq as _msq  # noqa: F401
from . import olive as _olive  # noqa: F401
from .ant import AntConfig
from .axe import AxeConfig, AxeGpfqConfig, GptqConfig
from .base import (
    REGISTRY,
    Context,
    QuantInfo,
    Scheme,
    SchemeConfig,
    option,
    register,
    scheme_named,
    scheme_of,
)
from .fp32 import Fp32Config
from .integer import IntConfig
from .microscopiq import MicroScopiQConfig
from .olive import OliveConfig

if TYPE_CHECKING:
    import torch

# The built-in schemes in the order listings show them; schemes registered later follow.
for _name in ("fp32", "int", "ant", "olive", "microscopiq", "gptq", "axe-gptq", "axe-gpfq"):
    REGISTRY[_name] = REGISTRY.pop(_name)

__all__ = [
    "quantize",
    "REGISTRY",
    "Scheme",
    "SchemeConfig",
    "QuantInfo",
    "Context",
    "option",
    "register",
    "scheme_named",
    "scheme_of",
    "Fp32Config",
    "IntConfig",
    "AntConfig",
    "OliveConfig",
    "MicroScopiQConfig",
    "GptqConfig",
    "AxeConfig",
    "AxeGpfqConfig",
]


def quantize(
    model: torch.nn.Module,
    config: SchemeConfig,
    *,
    calib: torch.Tensor | Callable[[torch.nn.Module], object] | None = None,
    progress: Callable | None = None,
    include: Callable[[str, torch.nn.Module], bool] | None = None,
    calib_cache: dict | None = None,
    keep_codes: bool = False,
    inplace: bool = False,
) -> tuple[torch.nn.Module, QuantInfo]:
    """Quantize a copy of ``model`` (every Linear layer but a tied LM head, or those
    ``include(name, module)`` selects) by the scheme ``config`` belongs to.

    ``calib``: held-out token windows ``[n, seq]`` of a causal LM, or ``calibrate(model)``
    running any model's held-out calibration forwards; required where the scheme calibrates
    (``REGISTRY[name].needs_calib(config)``), and an error where it does not, so that nothing
    given is silently ignored. ``progress(iterable, total=None)`` wraps the layer loop;
    ``calib_cache`` (a dict kept across calls on the same model and ``calib``) lets GPTQ and
    AXE share their calibration; ``keep_codes`` keeps each layer's integer codes and scales in
    the returned :class:`QuantInfo` where the scheme does not hold them anyway. ``inplace``
    quantizes ``model`` itself instead of a copy, so that peak memory is the model once plus
    what calibration holds (with the block capture: one block's activations), not the model
    twice; ``model`` is then the quantized model.
    Returns ``(quantized copy, QuantInfo)`` (fp32 returns ``model`` itself)."""
    scheme = scheme_of(config)
    needs = scheme.needs_calib(config)
    if needs and calib is None:
        raise ValueError(f"{scheme.name} needs calibration data (calib)")
    if not needs and calib is not None:
        raise ValueError(f"{scheme.name} with these options takes no calibration data (calib)")
    ctx = Context(calib, include, progress, calib_cache, keep_codes, inplace)
    return scheme.handler(model, config, ctx)
