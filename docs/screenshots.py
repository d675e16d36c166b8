"""Render a screenshot of every page of the web UI from a seeded database, for the README.

    .venv/bin/python docs/screenshots.py            # writes docs/screenshots/*.png

It serves the seed's deliveries plus the browser tests' own (tests/ui/conftest.py) on a free port,
signs in with the admin token in Debian's chromium, and saves each page at 1280 px wide.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.ui.conftest import ADMIN, CHROMIUM, ORG, serving  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PAGES = {
    "login": "/ui/login",
    "apps": "/ui?q=myapp",
    "app": f"/ui/apps/{ORG}/myapp-demo",
    "envs": "/ui/envs?label_name=envType&label_value=production&label_name=region&label_value=cn-shanghai",
    "change-order": f"/ui/change-orders/{ORG}/ui-co-1",
    "history": f"/ui/history/env/{ORG}/myapp-demo/test-env",
    "as-of": f"/ui/apps/{ORG}/myapp-demo?as_of=2024-07-29T07:08:00Z",
    "journal": "/ui/journal",
    "delivery": "/ui/journal/ui-deploy",
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir, serving(Path(workdir)) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800}).new_page()
        page.goto("/ui/login")
        page.screenshot(path=str(OUT / "login.png"))
        page.get_by_label("API token").fill(ADMIN)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui")
        for name, path in PAGES.items():
            if name == "login":
                continue
            page.goto(path)
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=name != "journal")
            print(f"{name}: {path}")
        browser.close()


if __name__ == "__main__":
    main()
