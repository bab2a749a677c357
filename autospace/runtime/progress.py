"""Progress bars that read well both on a terminal and in a log file.

On a terminal: tqdm, with the remaining time from the average rate since the bar opened
(`smoothing=0`), so a pause between epochs (evaluation, checkpoints) does not make it jump.
Elsewhere (output redirected to a file, a pipe, CI): one plain line every `LINE_EVERY` of the
total, never a carriage return, so a log holds a few dozen lines rather than thousands of updates.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

LINE_EVERY = 0.05  # a log line every 5% of the total


def open_progress(total: int, initial: int = 0, desc: str | None = None, show: bool = True,
                  file: TextIO | None = None, **options):
    """A progress bar for `total` steps, `initial` of them done: tqdm on a terminal, `LineProgress`
    otherwise, a silent tqdm when not `show`. Both take update, set_postfix(_str), write, close."""
    from tqdm import tqdm

    file = sys.stderr if file is None else file
    if not show:
        return tqdm(total=total, initial=initial, desc=desc, disable=True, **options)
    if _is_terminal(file):
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=file, smoothing=0, **options)
    return LineProgress(total, initial, desc, file, unit=options.get("unit", "it"))


def _is_terminal(file) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def _interval(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class LineProgress:
    """Plain-line progress for logs: "DESC  35% 350/1000 steps [01:10 elapsed, 02:10 left] POSTFIX"."""

    def __init__(self, total: int, initial: int, desc: str | None, file: TextIO, unit: str = "it",
                 clock=time.monotonic):
        self.total, self.n, self.initial = max(int(total), 0), int(initial), int(initial)
        self.desc, self.file, self.unit, self.clock = desc, file, unit, clock
        self.started = clock()
        self.postfix = ""
        self.next_line = self._mark_after(self.n)
        self.closed = False

    def _mark_after(self, count: int) -> int:
        """The first step count past `count` at a LINE_EVERY boundary."""
        step = max(1, round(self.total * LINE_EVERY))
        return (count // step + 1) * step

    def update(self, count: int = 1) -> None:
        self.n += count
        if self.n >= self.next_line or self.n >= self.total:
            self._line()
            self.next_line = self._mark_after(self.n)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values) -> None:
        values = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = str(text)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc

    def write(self, text: str, file=None, end: str = "\n", nolock: bool = False) -> None:
        print(text, end=end, file=self.file if file is None else file, flush=True)

    def close(self) -> None:
        if not self.closed and self.n < self.total and self.n > self.initial:
            self._line()  # where it stopped
        self.closed = True

    def _line(self) -> None:
        elapsed = self.clock() - self.started
        done = self.n - self.initial
        left = (self.total - self.n) * elapsed / done if done > 0 else None
        percent = 100 * self.n / self.total if self.total else 100.0
        timing = f"{_interval(elapsed)} elapsed" + ("" if left is None else f", {_interval(left)} left")
        text = f"{self.desc + ' ' if self.desc else ''}{percent:3.0f}% {self.n}/{self.total} {self.unit}s [{timing}]"
        self.write(text + (f" {self.postfix}" if self.postfix else ""))
