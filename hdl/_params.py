"""Keyword-parameter validation shared by every component (messages pinned by tests)."""

from __future__ import annotations

__all__ = ["check_int", "check_bool", "check_choice"]


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Wrong type -> TypeError, wrong value -> ValueError ("acc_bits must be at least 2, not 1")."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, not {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def check_choice(name: str, value: object, choices: tuple) -> object:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")
    return value  # type: ignore[return-value]
