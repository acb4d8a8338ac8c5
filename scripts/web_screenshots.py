#!/usr/bin/env python3
"""Screenshots of the console's pages from the demo store, for docs/ (PNG, small).

Run after ``make demo``: ``.venv-dev/bin/python scripts/web_screenshots.py``. The demo
store is copied first (a console user is added to the copy only), ``warnd web`` runs
on a free loopback port, Debian's chromium (Playwright) takes the pictures, and each
is reduced to a 256-colour palette PNG.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [
    ("web-overview.png", "/", False),
    ("web-substance.png", "/substances/kokain", True),
    ("web-alerts.png", "/alerts", False),
    ("web-alert.png", "/alerts/2", False),
    ("web-sources.png", "/sources", False),
    ("web-outbox.png", "/outbox", False),
    ("web-account.png", "/account", False),
    ("web-confirm.png", None, False),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", type=Path, default=ROOT / ".demo-state")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    if not (args.state / "warnd.sqlite").exists():
        print(f"no demo store in {args.state}: run `make demo` first", file=sys.stderr)
        return 1
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from tests.servers import free_port, wait_for
    from tests.webkit import CHROMIUM, CHROMIUM_ARGS, OPERATOR, Console, demo_config, warnd
    from warnd.alerting import links
    from warnd.store import Store

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        state = work / "state"
        src = Store(args.state / "warnd.sqlite")
        try:  # a consistent copy, as `warnd backup` makes it
            import sqlite3

            dst = sqlite3.connect(state.parent.joinpath("copy.sqlite"))
            src.db.conn.backup(dst)
            dst.close()
        finally:
            src.close()
        state.mkdir()
        shutil.move(str(work / "copy.sqlite"), state / "warnd.sqlite")
        port = free_port()
        cfg = demo_config(work, base_url=f"http://127.0.0.1:{port}")
        r = warnd(cfg, state, "user", "add", OPERATOR[0], "--role", "operator",
                  "--password-stdin", stdin=OPERATOR[1] + "\n")
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        store = Store(state / "warnd.sqlite")
        confirm = links.action_links(store, f"http://127.0.0.1:{port}", 2)["ack"]
        store.close()
        console = Console(cfg, state, port).start()
        try:
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                ctx = b.new_context(base_url=console.url, viewport={"width": 1200, "height": 760})
                page = ctx.new_page()
                page.goto("/login")
                page.fill("input[name=user]", OPERATOR[0])
                page.fill("input[name=password]", OPERATOR[1])
                page.click("form.login button")
                page.wait_for_url(console.url + "/")
                for name, path, full in PAGES:
                    page.goto(path or confirm)
                    if path and path.startswith("/substances/"):
                        total = page.locator("figure.chart").count()
                        wait_for(lambda total=total: page.locator(
                            "figure.chart.drawn, figure.chart.failed").count() == total,
                            timeout=60, what="charts")
                    out = args.out / name
                    page.screenshot(path=str(out), full_page=full,
                                    clip=None if not full else {"x": 0, "y": 0, "width": 1200,
                                                                "height": 1500})
                    img = Image.open(out).convert("RGB").quantize(256)
                    img.save(out, optimize=True)
                    print(f"{out.relative_to(ROOT)}: {out.stat().st_size // 1024} KiB")
                b.close()
        finally:
            console.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
