"""What a config value may be: each kind checks a value (naming the key on error) and describes itself for the
docs table and the component provider's input types."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from kubernetes.utils.quantity import parse_quantity as _untyped_parse_quantity

from components import sizing
from components.config.errors import Problems

# The official client's parser (the same one the policy pack uses), given a type.
parse_quantity = cast(Callable[[str], Decimal], _untyped_parse_quantity)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Reference: [registry[:port]/]path[:tag][@sha256:<64 hex>]
IMAGE_REF = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# A label value (also a taint's value): empty, or up to 63 of these characters, alphanumeric at both ends.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes quantity grammar: signed decimal number, then a binary/decimal SI suffix or an exponent.
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
DURATION = re.compile(r"^([0-9]+(s|m|h))+$|^Never$")
# A Prometheus duration as ServiceMonitors take it (30s, 1m).
PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
HTTP_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s]*)?$")


class InvalidValueError(Exception):
    """A rule read a value that is wrong itself (:data:`INVALID`): that mistake is reported already, so the rule is
    skipped rather than run on it."""


class _Invalid:
    """Reading anything of it (an attribute, a comparison, its truth, a hash for a lookup) raises
    :class:`InvalidValueError`: a cross-field rule can run on a block whose other keys are wrong, and is skipped only
    when it needs one of them."""

    def __repr__(self) -> str:
        return "INVALID"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe dunders: keep their protocol
            raise AttributeError(name)
        raise InvalidValueError(name)

    def _used(self, *_: object) -> Any:
        raise InvalidValueError("INVALID")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = __format__ = _used
    __iter__ = __len__ = __getitem__ = __contains__ = __int__ = __float__ = _used
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _used


INVALID: Any = _Invalid()
"""What a key reads as when its value is wrong (the mistake is already recorded)."""


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def kind_of(value: object) -> str:
    """How an error message names a value's type."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__ if value is not None else "nothing"
    )


class Kind:
    """A kind of value. ``doc`` is its type column in the docs; ``py`` its provider input annotation."""

    doc = "value"
    py = "Any"

    def read(self, value: object, path: str, problems: Problems) -> Any:
        """``value`` (never None) checked; on a mistake, record it and return :data:`INVALID`."""
        raise NotImplementedError


# A check on a string that passed the type test: the error message, or None when the value is fine.
Check = Callable[[str], str | None]


class Text(Kind):
    """A non-empty string, optionally matched by a pattern or checked by a function."""

    py = "str"

    def __init__(self, doc: str = "string", *, pattern: re.Pattern[str] | None = None, check: Check | None = None):
        self.doc, self.pattern, self.check = doc, pattern, check

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, str) or not value:
            problems.add(path, f"must be a non-empty string (got {kind_of(value)})")
            return INVALID
        if self.pattern is not None and not self.pattern.match(value):
            problems.add(path, f"is not valid (got {value!r})")
            return INVALID
        message = self.check(value) if self.check is not None else None
        if message is not None:
            problems.add(path, message)
            return INVALID
        return value


def check_dns_label(value: str) -> str | None:
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        return f"must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 (got {value!r})"
    return None


def check_image(value: str) -> str | None:
    match = IMAGE_REF.match(value)
    if match is None:
        return f"is not an image reference (got {value!r})"
    if match["tag"] in (None, "latest") and not match["digest"]:
        return f"must pin a tag other than 'latest' or a digest (got {value!r})"
    return None


def check_label_key(value: str) -> str | None:
    return None if LABEL_KEY.match(value) else f"is not a Kubernetes label key (got {value!r})"


def check_label_value(value: str) -> str | None:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return (
            "is not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', "
            f"alphanumeric at both ends (got {value!r})"
        )
    return None


def check_cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return f"must be a CIDR such as 10.0.0.0/8 (got {value!r})"
    return None


def check_memory_size(value: str) -> str | None:
    try:
        sizing.parse_memory(value)
    except ValueError:
        return f"is not a memory size such as 80Gi (got {value!r})"
    return None


def one_of(choices: Sequence[str]) -> Check:
    """A list item's check (list items name no value, as the messages always have)."""
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


def DnsLabel() -> Text:  # noqa: N802 - reads as a kind
    return Text("DNS label", check=check_dns_label)


def ImageRef() -> Text:  # noqa: N802
    return Text("image ref", check=check_image)


def LabelKey(doc: str = "label key") -> Text:  # noqa: N802
    return Text(doc, check=check_label_key)


class Choice(Kind):
    py = "str"

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)
        self.doc = " / ".join(f"`{c}`" for c in self.choices)

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if value not in self.choices:
            problems.add(path, f"must be one of {', '.join(map(str, self.choices))} (got {value!r})")
            return INVALID
        return value


class Flag(Kind):
    doc, py = "bool", "bool"

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, bool):
            problems.add(path, f"must be true or false (got {value!r})")
            return INVALID
        return value


class Int(Kind):
    py = "int"

    def __init__(self, minimum: int = 0, maximum: int | None = None, doc: str | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.doc = doc or (f"int {minimum}–{maximum}" if maximum is not None else f"int ≥ {minimum}")

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.add(path, f"must be a whole number (got {value!r})")
        elif value < self.minimum:
            problems.add(path, f"must be >= {self.minimum} (got {value})")
        elif self.maximum is not None and value > self.maximum:
            problems.add(path, f"must be <= {self.maximum} (got {value})")
        else:
            return value
        return INVALID


class Number(Kind):
    """A finite number in (low, high]."""

    py = "float"

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.doc = f"number in ({low:g}, {high:g}]"

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.add(path, f"must be a number (got {value!r})")
        elif not self.low < value <= self.high:
            problems.add(path, f"must be in ({self.low}, {self.high}] (got {value})")
        else:
            return float(value)
        return INVALID


class Quantity(Kind):
    """A positive Kubernetes quantity (or, with ``zero``, one that may be 0); whole numbers are taken as their
    string."""

    py = "str"

    def __init__(self, *, zero: bool = False) -> None:
        self.zero = zero
        self.doc = "quantity ≥ 0" if zero else "quantity"

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            problems.add(path, f"must be a Kubernetes quantity such as '4' or '16Gi' (got {value!r})")
            return INVALID
        # Python's Decimal also takes 'NaN', 'Infinity' and non-ASCII digits; Kubernetes does not.
        if not QUANTITY.match(value):
            problems.add(path, f"is not a Kubernetes quantity (got {value!r})")
            return INVALID
        amount = parse_quantity(value)
        if self.zero and amount < 0:
            problems.add(path, f"must be >= 0 (got {value!r})")
            return INVALID
        if not self.zero and amount <= 0:
            problems.add(path, f"must be positive (got {value!r})")
            return INVALID
        return value


class Strings(Kind):
    """A list of non-empty strings, each optionally checked; read as a tuple."""

    py = "list[str]"

    def __init__(self, doc: str = "list", check: Check | None = None) -> None:
        self.doc, self.check = doc, check

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, list):
            problems.add(path, f"must be a list (got {kind_of(value)})")
            return INVALID
        before = len(problems)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                problems.add(f"{path}[{i}]", f"must be a non-empty string (got {item!r})")
            elif self.check is not None and (message := self.check(item)) is not None:
                problems.add(f"{path}[{i}]", message)
        return tuple(value) if len(problems) == before else INVALID


class StringMap(Kind):
    """An object of string values (numbers must be quoted), its keys matching a pattern, its values optionally
    checked."""

    py = "dict[str, str]"

    def __init__(self, key_pattern: re.Pattern[str], doc: str = "map", *, check: Check | None = None) -> None:
        self.key_pattern, self.doc, self.check = key_pattern, doc, check

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, Mapping):
            problems.add(path, f"must be an object of strings (got {kind_of(value)})")
            return INVALID
        before = len(problems)
        for k, v in value.items():
            if not self.key_pattern.match(str(k)):
                problems.add(join(path, str(k)), "is not a valid name")
            elif not isinstance(v, str):
                problems.add(join(path, str(k)), f"must be a string (got {v!r}; quote it)")
            elif self.check is not None and (message := self.check(v)) is not None:
                problems.add(join(path, str(k)), message)
        return dict(value) if len(problems) == before else INVALID


class Patch(Kind):
    """A JSON merge patch (RFC 7386) over a Kubernetes object the program builds.

    ``fixed`` keys are the program's own and cannot be patched at all; ``kept`` keys can be changed but not
    removed, in whole or in part (a null anywhere under them, or a value that is not an object).
    """

    doc, py = "object", "Any"

    def __init__(self, fixed: Sequence[str], kept: Sequence[str], kept_doc: str) -> None:
        self.fixed, self.kept, self.kept_doc = tuple(fixed), tuple(kept), kept_doc

    def read(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, Mapping):
            problems.add(path, f"must be an object (a JSON merge patch; got {kind_of(value)})")
            return INVALID
        before = len(problems)
        for name in self.fixed:
            if name in value:
                problems.add(f"{path}.{name}", "is set by the program and cannot be patched")
        for name in self.kept:
            if name in value:
                self._removals(value[name], f"{path}.{name}", problems)
        return dict(value) if len(problems) == before else INVALID

    def _removals(self, value: object, path: str, problems: Problems) -> None:
        if value is None:
            problems.add(path, f"must not be null: {self.kept_doc} (null would remove it)")
        elif not isinstance(value, Mapping):
            problems.add(path, f"must be an object (got {kind_of(value)}): {self.kept_doc}; patch its fields")
        else:
            for k, v in value.items():
                if v is None or (isinstance(v, Mapping) and v):
                    self._removals(v, f"{path}.{k}", problems)
