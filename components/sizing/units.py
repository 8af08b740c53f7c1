"""Byte quantities: the binary units, printing a byte count (:func:`format_bytes`) and reading a memory size
(:func:`parse_memory`: ``80Gi``, ``81920Mi``, ``24G``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal
from types import MappingProxyType

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def format_bytes(value: int) -> str:
    """``value`` in binary units with two decimals, e.g. ``'14.96 GiB'``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    scaled = float(value)
    unit = units[0]
    for unit in units:
        if abs(scaled) < 1024 or unit == units[-1]:
            break
        scaled /= 1024
    if unit == "B":
        return f"{value} B"
    return f"{scaled:.2f} {unit}"


_MEMORY_PATTERN = re.compile(
    r"^\s*(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*"
    r"(?P<unit>[A-Za-z]*)\s*$"
)
_MEMORY_UNITS: Mapping[str, int] = MappingProxyType(
    {
        "": 1,
        "b": 1,
        **{p: 1000**i for i, p in enumerate("kmgtpe", start=1)},
        **{f"{p}b": 1000**i for i, p in enumerate("kmgtpe", start=1)},
        **{f"{p}i": 1024**i for i, p in enumerate("kmgtpe", start=1)},
        **{f"{p}ib": 1024**i for i, p in enumerate("kmgtpe", start=1)},
    }
)

_MEMORY_LIMIT = 2**64


def parse_memory(value: str) -> int:
    """Parse a memory size into bytes.

    Accepts plain bytes (``"85899345920"``), Kubernetes-style binary units
    (``"80Gi"``, ``"81920Mi"``), the same with ``B`` (``"80GiB"``) and decimal
    SI units (``"80G"``, ``"80GB"`` = 80 * 10**9). Units are
    case-insensitive; fractions are rounded up to a whole byte. Raises
    :class:`ValueError` naming the value when it is malformed or not positive.
    """
    match = _MEMORY_PATTERN.match(value)
    multiplier = _MEMORY_UNITS.get(match.group("unit").lower()) if match else None
    if match is None or multiplier is None:
        raise ValueError(
            f"invalid memory size {value!r}: expected a number with an optional"
            " unit such as Ki, Mi, Gi, Ti (or KiB, GiB) or K, M, G, T (or GB)"
        )
    try:
        amount = Decimal(match.group("number")) * multiplier
    except ArithmeticError as exc:  # decimal signals, e.g. Overflow
        raise ValueError(f"invalid memory size {value!r}: {exc}") from exc
    if amount > _MEMORY_LIMIT:
        raise ValueError(f"invalid memory size {value!r}: larger than 2**64 bytes")
    size = int(amount.to_integral_value(rounding=ROUND_CEILING))
    if size <= 0:
        raise ValueError(f"invalid memory size {value!r}: must be positive")
    return size
