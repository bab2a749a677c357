"""Parsing MAdds figures as people write them: 60M, 0.3G, 600000000."""

from __future__ import annotations

from autospace.errors import AutospaceError

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}


def parse_madds(text: str | int | float) -> int:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip().upper()
        suffix = raw[-1] if raw and raw[-1] in "KMG" else ""
        number = raw[: len(raw) - len(suffix)]
        try:
            value = float(number) * _SUFFIXES[suffix]
        except ValueError:
            raise AutospaceError(
                f"MAdds figure {text!r} is not a number; write it like 60M, 0.3G or 60000000") from None
    if value <= 0 or value != value:
        raise AutospaceError(f"MAdds figure {text!r} must be positive, e.g. 60M")
    return int(value)


def format_madds(value: int) -> str:
    return f"{value / 1e6:.1f}M"
