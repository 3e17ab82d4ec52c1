"""qarch: an open generator and verification suite for low-bit quantization accelerators.

``qarch.quantize(model, config)`` quantizes a model by a scheme (``qarch.schemes``); the import
is lazy so that ``qarch --help`` and the hardware commands do not load torch's model stack.
"""

__all__ = ["quantize", "QuantInfo"]


def __getattr__(name: str):
    if name in __all__:
        from . import schemes

        return getattr(schemes, name)
    raise AttributeError(f"module 'qarch' has no attribute {name!r}")
