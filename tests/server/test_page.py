"""The page in real headless Chromium (Debian's package, driven by playwright-python)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from liqfast.server.app import SERVICE

from .conftest import next_bars

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("LIQFAST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (make test installs Debian's chromium)")

_PIXELS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const colours = new Set();
  let h = 0;
  for (let i = 0; i < d.length; i += 4 * 7) { colours.add((d[i] << 16) | (d[i+1] << 8) | d[i+2]); h = (h * 31 + d[i] + d[i+1] * 7 + d[i+2] * 13) >>> 0; }
  return {colours: colours.size, hash: h, w: c.width, h: c.height};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _wait(page: Any, expr: str, timeout: float = 15.0) -> Any:
    # Polls with evaluate: wait_for_function would need 'unsafe-eval', which the page's CSP forbids.
    deadline = time.monotonic() + timeout
    while True:
        v = page.evaluate(expr)
        if v or time.monotonic() > deadline:
            assert v, f"timed out waiting for {expr}"
            return v
        page.wait_for_timeout(50)


def test_page_paints_controls_and_live_updates(browser: Any, threaded: Any) -> None:
    srv = threaded()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((srv.url, "data:", "ws://127.0.0.1")) else None)
    page.goto(srv.url + "/")
    _wait(page, "window.__liqfast && window.__liqfast.paints >= 1 && window.__liqfast.frames >= 1")
    heat = page.evaluate(_PIXELS, "heatmap")
    assert heat["colours"] > 50, heat  # painted, not a uniform fill
    assert page.evaluate(_PIXELS, "map")["colours"] > 3
    assert page.locator("#statustext").inner_text() == "live"
    # A stream update repaints.
    frames = page.evaluate("window.__liqfast.frames")
    before = page.evaluate(_PIXELS, "heatmap")
    svc = srv.app[SERVICE]
    for bar in srv.call(next_bars, svc, svc.engines["BTC"].price() * 1.03):
        srv.call(svc.hub.publish, bar)
    _wait(page, f"window.__liqfast.frames > {frames}")
    time.sleep(0.3)
    after = page.evaluate(_PIXELS, "heatmap")
    assert after["hash"] != before["hash"], page.evaluate("JSON.stringify({f: window.__liqfast.frames, p: window.__liqfast.paints, e: window.__liqfast.errors, r: window.__liqfast.requests.slice(-4)})")
    # A control changes the request.
    with page.expect_request(lambda r: "/api/v1/heatmap" in r.url and "window=7d" in r.url):
        page.select_option("#window", "7d")
    with page.expect_request(lambda r: "/api/v1/map" in r.url and "leverage=35-max" in r.url):
        page.select_option("#leverage", "35-max")
    with page.expect_websocket(lambda ws: "leverage=35-max" in ws.url):
        pass
    _wait(page, "window.__liqfast.requests.some(u => u.includes('window=7d') && u.includes('leverage=35-max'))")
    time.sleep(0.5)
    # Hover read-out.
    box = page.locator("#heatmap").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = page.locator("#tip")
    assert tip.is_visible() and "price" in tip.inner_text() and "$" in tip.inner_text()
    assert not errors and not outside, (errors, outside)
    page.close()


def test_page_fits_a_phone(browser: Any, threaded: Any) -> None:
    srv = threaded()
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.goto(srv.url + "/?window=12h&side=long")
    _wait(page, "window.__liqfast && window.__liqfast.paints >= 1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    assert page.locator("#window").input_value() == "12h" and page.locator("#side").input_value() == "long"
    heat = page.locator("#heatmap").bounding_box()
    m = page.locator("#map").bounding_box()
    assert heat["width"] > 300 and heat["height"] > 250 and m["y"] >= heat["y"] + heat["height"] - 1
    assert page.evaluate(_PIXELS, "heatmap")["colours"] > 30
    page.close()
