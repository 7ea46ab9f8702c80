"""The load-average line every benchmark prints, so that a figure says how shared the machine was."""

from __future__ import annotations

import os
from collections.abc import Sequence


def load_average_line(before: Sequence[float], after: Sequence[float], note: str = "") -> str:
    """`load average (1, 5, 15 min) before: ...; after: ... on N CPUs` and an optional note."""
    line = (
        "load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in before)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in after)
        + f" on {os.cpu_count()} CPUs"
    )
    return f"{line} {note}" if note else line
