"""Render a report page to PNG with headless Chromium, to look at it as a reader would.

Usage::

    python scripts/render_report.py report.html -o report.png [--width 1280] [--height 9000]

Needs the ``chromium`` binary (Debian/Ubuntu: ``apt-get install chromium``). The page is opened from disk with the
network disabled, so the screenshot also shows that the page needs nothing from outside. Several screenshots of
``--height`` pixels each can be taken with ``--pages N`` (the page is cut by a CSS offset).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("render_report: no chromium binary on PATH (apt-get install chromium)")


def render(page: Path, out: Path, width: int = 1280, height: int = 9000, offset: int = 0) -> Path:
    """Screenshot of ``page`` (``width`` x ``height`` pixels, starting ``offset`` pixels down) into ``out``."""
    page = page.resolve()
    target = page
    with tempfile.TemporaryDirectory() as tmp:
        if offset:
            shifted = Path(tmp) / page.name
            text = page.read_text()
            shifted.write_text(text.replace("<main>", f'<main style="margin-top:-{offset}px">', 1))
            target = shifted
        profile = Path(tmp) / "profile"
        cmd = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
               f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={out.resolve()}", target.as_uri()]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page", type=Path)
    p.add_argument("-o", "--out", type=Path, default=Path("report.png"))
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=9000)
    p.add_argument(
        "--pages", type=int, default=1, help="number of screenshots, each --height pixels further down"
    )
    args = p.parse_args(argv)
    for i in range(args.pages):
        out = args.out if args.pages == 1 else args.out.with_name(f"{args.out.stem}_{i + 1}{args.out.suffix}")
        render(args.page, out, args.width, args.height, offset=i * args.height)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
