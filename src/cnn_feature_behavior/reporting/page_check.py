"""Does a report page fit a browser window? Headless Chromium lays the page out at a given width
and says how far it reaches past the window's right edge: a table or a figure wider than the page
makes the reader scroll the whole page sideways, with the table's right-hand columns off screen.

    python -m cnn_feature_behavior.reporting.page_check data/08_reporting/*/index.html \\
        data/08_reporting/*/*/report.html [--width 1400] [--screenshots <folder>]

Exits 1 when a page overflows (`make page-check`). Needs Chromium (Debian: `apt-get install
chromium`). A copy of each page with a probe script is opened from a temporary folder, with a
fresh profile and Chromium's background networking, component updates and sync off; the reports
load nothing from the network.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WINDOW_HEIGHT = 1000
TIMEOUT_S = 120
# Written into the page's body once it is laid out: how far the page reaches past the window.
_PROBE = (
    "<script>window.addEventListener('load', () => document.body.setAttribute("
    "'data-overflow', String(document.documentElement.scrollWidth - window.innerWidth)));"
    "</script>"
)
_RESULT = re.compile(r'data-overflow="(-?\d+)"')


@dataclass(frozen=True)
class PageWidth:
    """A page laid out in a window `width` pixels wide: how many pixels it overflows."""

    page: Path
    width: int
    overflow: int

    @property
    def fits(self) -> bool:
        return self.overflow <= 0

    def __str__(self) -> str:
        if self.fits:
            return f"{self.page}: fits {self.width} px"
        return f"{self.page}: {self.overflow} px wider than {self.width} px (scrolls sideways)"


def find_chromium() -> str | None:
    """The Chromium executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def page_width(
    page: Path, width: int = 1400, chromium: str | None = None, screenshot: Path | None = None
) -> PageWidth:
    """Lay `page` out at `width` pixels in headless Chromium (and save a screenshot of the top
    of the page if asked)."""
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError(
            f"no Chromium among {CHROMIUM_NAMES} on PATH (Debian: apt-get install chromium)"
        )
    html = page.read_text(encoding="utf-8")
    if "</body>" not in html:
        raise ValueError(f"{page}: no </body>: not a report page")
    with tempfile.TemporaryDirectory(prefix="page_check_") as folder:
        probed = Path(folder) / page.name
        probed.write_text(html.replace("</body>", _PROBE + "</body>", 1), encoding="utf-8")
        run = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={Path(folder) / 'profile'}"]
        run.append(f"--window-size={width},{WINDOW_HEIGHT}")
        dom = subprocess.run(
            [*run, "--dump-dom", probed.as_uri()],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        found = _RESULT.search(dom.stdout)
        if found is None:
            raise RuntimeError(
                f"{page}: Chromium gave no layout (exit {dom.returncode}): {dom.stderr[-500:]}"
            )
        if screenshot is not None:
            subprocess.run(
                [*run, f"--screenshot={screenshot.resolve()}", probed.as_uri()],
                capture_output=True,
                timeout=TIMEOUT_S,
                check=True,
            )
    return PageWidth(page, width, int(found.group(1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path, help="report.html or index.html files")
    parser.add_argument("--width", type=int, default=1400, help="window width in pixels")
    parser.add_argument("--screenshots", type=Path, help="folder for a PNG of each page's top")
    args = parser.parse_args(argv)
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    results = []
    for number, page in enumerate(args.pages):
        shot = None
        if args.screenshots:
            shot = args.screenshots / f"{number:02d}_{page.parent.name}_{page.stem}.png"
        results.append(page_width(page, args.width, screenshot=shot))
        print(results[-1], flush=True)
    return 0 if all(result.fits for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
