"""Where the quantizers run: ``resolve_device`` turns a user's ``cpu`` / ``cuda`` / ``auto``
into a :class:`torch.device`, with a clear error where the device does not exist.

The golden quantizers follow torch's convention: they compute on the device of the tensors they
are given (a layer's weight, its calibration inputs or Gram matrix) and create every tensor of
their own there, so nothing moves between host and device per column (``docs/gpu.md``). A model
is quantized on the device it lives on.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "describe_torch"]


def describe_torch() -> str:
    """torch's version and the CUDA it was built for ("CPU-only build" where none)."""
    cuda = torch.version.cuda
    return f"torch {torch.__version__}, " + (f"built for CUDA {cuda}" if cuda else "CPU-only build")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a CUDA GPU where torch sees one, else the CPU;
    None means ``auto``) as a :class:`torch.device`. ``cuda`` without a usable GPU is a
    ``ValueError`` that says why (no GPU visible, or a CPU-only torch build)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be one of cpu, cuda, cuda:N or auto, not {device!r}"
        ) from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device must be one of cpu, cuda, cuda:N or auto, not {device!r}")
    if not torch.cuda.is_available():
        why = (
            "this torch is a CPU-only build"
            if torch.version.cuda is None
            else "torch sees no CUDA GPU (driver, CUDA_VISIBLE_DEVICES)"
        )
        raise ValueError(
            f"device {device!r}: {why} (torch {torch.__version__}); use --device cpu or auto, or "
            "install a CUDA build of torch (docs/gpu.md)"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"device {device!r}: torch sees {count} CUDA GPU(s), 0..{count - 1}")
    return dev
