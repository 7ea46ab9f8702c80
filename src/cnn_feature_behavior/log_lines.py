"""A run's log one record a line where it goes to a file or a pipe; Rich's layout on a terminal.

Kedro's default logging goes through Rich (`kedro.logging.RichHandler`), which lays each record
out for a console: time, level and source columns, the message wrapped to the console's width.
On a terminal that reads well; redirected (`kedro run > run.log`, CI, a scheduler), Rich assumes
80 columns and wraps every long record over several lines (1,937 lines for one EfficientNet-Lite0
study). Kedro's logging configuration may name classes of `logging` and `kedro.logging` only and
cannot ask whether its output is a terminal, so:

- `conf/logging.yml` logs plain lines to stdout, `<time> <level> <logger>: <message>`, one per
  record (a traceback follows its record), from Kedro's first record on;
- `LogLinesHooks` (settings.py), when a run's context is created, hands that `console` handler
  over to Kedro's Rich handler where stdout is a terminal;
- `progress` is tqdm's bar where stderr is a terminal, and elsewhere an INFO record at every
  tenth of the work (tqdm's redirected bar is one line of hundreds of carriage-return updates).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from kedro.framework.hooks import hook_impl
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

CONSOLE_HANDLER = "console"  # conf/logging.yml's handler


def rich_on_a_terminal(root: logging.Logger | None = None) -> bool:
    """Replace `root`'s (default: the root logger's) plain `console` stream handler by Kedro's
    Rich handler where its stream is a terminal; whether it did."""
    root = logging.getLogger() if root is None else root
    for handler in list(root.handlers):
        if handler.name != CONSOLE_HANDLER or type(handler) is not logging.StreamHandler:
            continue
        isatty = getattr(handler.stream, "isatty", None)
        if not (isatty and isatty()):
            return False
        from kedro.logging import RichHandler
        from rich.console import Console

        rich = RichHandler(console=Console(file=handler.stream), rich_tracebacks=True)
        rich.setLevel(handler.level)
        for log_filter in handler.filters:
            rich.addFilter(log_filter)
        root.removeHandler(handler)
        root.addHandler(rich)
        return True
    return False


class LogLinesHooks:
    """Rich's layout for a run's log on a terminal; plain lines elsewhere (module doc)."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        rich_on_a_terminal()


def progress(total: int, desc: str, unit: str = "img", disable: bool = False) -> Any:
    """A progress counter (`update(n)`, a context manager): tqdm's bar where stderr is a terminal
    (or in Jupyter), else `LoggedProgress`."""
    if disable or _stderr_is_interactive():
        return tqdm(total=total, unit=unit, desc=desc, smoothing=0.1, disable=disable)
    return LoggedProgress(total, desc, unit)


def _stderr_is_interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class LoggedProgress:
    """Progress as INFO records, at every `step` of the total and at the end, with the rate and
    the time left: `feature extraction: 120 of 600 img (20%), 3.1 img/s, 2 min 35 s left`."""

    def __init__(self, total: int, desc: str, unit: str = "img", step: float = 0.1):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self._every = max(1, int(total * step))
        self._next = self._every
        self._start = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self._next and self.n < self.total:
            self._next = (self.n // self._every + 1) * self._every
            self._log()

    def close(self) -> None:
        if self.total:
            self._log()
            self.total = 0  # logged once

    def __enter__(self) -> LoggedProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _log(self) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.n / elapsed
        done = self.n >= self.total
        left = "" if done or rate == 0 else f", {_duration((self.total - self.n) / rate)} left"
        logger.info(
            "%s: %d of %d %s (%d%%), %.3g %s/s%s%s",
            self.desc,
            self.n,
            self.total,
            self.unit,
            round(100 * self.n / self.total),
            rate,
            self.unit,
            left,
            f", in {_duration(elapsed)}" if done else "",
        )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
