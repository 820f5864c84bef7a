"""The rules a parameter's value must follow, as dataclass fields for ``pipeline.config``.

Each constructor returns a ``dataclasses.field`` whose ``metadata["rule"]`` says the value's type,
what is allowed (the words after "must be" in the error line) and the check itself. A field given a
``default`` is optional: params.yaml may leave it out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rule:
    """How one scalar value is checked: its Python type and the allowed range."""

    kind: type
    allowed: str  # completes "must be ...", e.g. "an integer >= 0"
    ok: Callable[[Any], bool] = lambda value: True


def integer(low: int | None = None, high: int | None = None, default: int | None = None) -> Any:
    parts = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
    allowed = "an integer " + " and ".join(p for p in parts if p)
    rule = Rule(int, allowed.strip(), lambda v: (low is None or v >= low) and (high is None or v <= high))
    return field(metadata={"rule": rule}, **_optional(default))


def number(
    above: float | None = None, below: float | None = None, at_most: float | None = None, at_least: float | None = None
) -> Any:
    parts = [
        f">= {at_least:g}" if at_least is not None else "",
        f"> {above:g}" if above is not None else "",
        f"< {below:g}" if below is not None else "",
        f"<= {at_most:g}" if at_most is not None else "",
    ]
    allowed = "a number " + " and ".join(p for p in parts if p)

    def ok(v: float) -> bool:
        return (
            math.isfinite(v)
            and (at_least is None or v >= at_least)
            and (above is None or v > above)
            and (below is None or v < below)
            and (at_most is None or v <= at_most)
        )

    return field(metadata={"rule": Rule(float, allowed.strip(), ok)})


def text(pattern: str, allowed: str) -> Any:
    compiled = re.compile(pattern)
    return field(metadata={"rule": Rule(str, allowed, lambda v: bool(compiled.fullmatch(v)))})


def _optional(default: Any) -> dict:
    return {} if default is None else {"default": default}


def choice(*options: str, default: str | None = None) -> Any:
    rule = Rule(str, "one of " + ", ".join(options), lambda v: v in options)
    return field(metadata={"rule": rule}, **_optional(default))


def flag(default: bool | None = None) -> Any:
    return field(metadata={"rule": Rule(bool, "true or false")}, **_optional(default))


def scalars(allowed: str) -> Any:
    """An optional non-empty list of distinct scalars (each checked where it is used)."""

    def ok(items: tuple) -> bool:
        return bool(items) and len({repr(v) for v in items}) == len(items) and all(
            isinstance(v, bool | int | float | str) for v in items)

    return field(metadata={"rule": Rule(list, allowed, ok)}, default=())


def optional_number() -> Any:
    """An optional finite number (``None`` when left out)."""
    return field(metadata={"rule": Rule(float, "a number", lambda v: math.isfinite(v))}, default=None)


def names(pattern: str, allowed: str) -> Any:
    """A non-empty list of distinct names, each matching ``pattern``."""
    compiled = re.compile(pattern)

    def ok(values: list) -> bool:
        return bool(values) and len(set(values)) == len(values) and all(
            isinstance(v, str) and compiled.fullmatch(v) for v in values
        )

    return field(metadata={"rule": Rule(list, allowed, ok)})


def integers(low: int, high: int, allowed: str) -> Any:
    """A non-empty list of distinct integers, each in ``low..high``."""

    def ok(values: tuple) -> bool:
        return bool(values) and len(set(values)) == len(values) and all(
            isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values
        )

    return field(metadata={"rule": Rule(list, allowed, ok)})


def mapping(of: type, key_pattern: str, key_allowed: str) -> Any:
    """A section of user-named entries (e.g. experiments), each parsed as ``of``."""
    return field(metadata={"mapping": (of, re.compile(key_pattern), key_allowed)})
