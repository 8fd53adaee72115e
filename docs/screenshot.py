"""Remake docs/report.png: the README's first command, and its report.html in headless Chromium.

    python docs/screenshot.py

Runs `batchcall run sample_data/contacts.csv --sandbox` in a temporary directory, then opens
the report it names in Debian's /usr/bin/chromium (through Playwright, JavaScript and network
off, as the tests do) and saves the page as docs/report.png.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import opened  # noqa: E402


def main() -> None:
    batchcall = str(Path(sys.executable).with_name("batchcall"))
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run(
            [batchcall, "run", str(ROOT / "sample_data" / "contacts.csv"), "--sandbox"],
            cwd=work, capture_output=True, text=True, check=False,
        )  # fmt: skip
        found = re.search(r"report: (\S+)\s*$", done.stdout)
        if found is None:
            sys.exit(f"the run named no report:\n{done.stdout}{done.stderr}")
        with opened(Path(work) / found.group(1), width=1000) as (page, attempted):
            page.screenshot(path=str(ROOT / "docs" / "report.png"), full_page=True)
        if attempted:
            sys.exit(f"the page asked the network for {attempted}")
    print(ROOT / "docs" / "report.png")


if __name__ == "__main__":
    main()
