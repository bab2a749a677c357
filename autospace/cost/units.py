"""Parsing MAdds figures as people write them: 60M, 0.3G, 600000000."""

from __future__ import annotations

from autospace.errors import AutospaceError

# Far above any network (GPT-3 is ~3.5e11 MAdds per token), and exact as a float and an int64.
LARGEST_MADDS = 10**15
# Below any network (a 3x3 stem of 8 channels on 4x4 images already costs ~3,000); a plain number under it
# is a figure written without its M.
SMALLEST_PLAIN_MADDS = 10**4
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
    if not isinstance(text, (int, float)) and suffix == "" and value < SMALLEST_PLAIN_MADDS:
        raise AutospaceError(f"MAdds figure {text!r} is {value:g} multiply-adds, smaller than any network; "
                             f"did you mean {number.strip()}M? (write the unit: 15M, 0.3G, or 15000000)")
    if value > LARGEST_MADDS:  # also infinity: 1e400 parses as inf
        raise AutospaceError(f"MAdds figure {text!r} is larger than any network ({LARGEST_MADDS:.0e} MAdds at "
                             f"most); write a finite figure like 60M or 0.3G")
    return int(value)


def format_madds(value: int) -> str:
    return f"{value / 1e6:.1f}M"
