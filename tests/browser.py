"""A real browser for the lab widgets' tests: Debian's ``chromium`` driven through Selenium and
``chromedriver``, the rendered site served over HTTP on 127.0.0.1 (no other address is touched;
Chromium's background networking is switched off). Tests using the ``browser``/``site_url``
fixtures (tests/conftest.py) are skipped, with the reason, where either piece is missing; CI
installs both (.ci/run)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def missing() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if CHROMIUM is None or CHROMEDRIVER is None:
        return ("Chromium and ChromeDriver are not on PATH: `apt-get install chromium chromium-driver` "
                "(Debian/Ubuntu; CI installs them) to run the browser tests")
    return None


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
                      ".onnx": "application/octet-stream", ".bin": "application/octet-stream"}

    def log_message(self, *args):  # quiet: pytest shows failures, not every GET
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """``http://127.0.0.1:<port>/`` serving ``directory`` for the duration of the block."""
    handler = functools.partial(_Handler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chrome(width: int = 1400, height: int = 1000):
    """A headless Chromium session (Selenium WebDriver) with console logging on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(driver, selector: str, timeout: float = 30.0):
    """The widget element matching ``selector`` once its script has set ``data-ready="1"``; on a
    time-out, the assertion names the widget's error text and the browser console."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        if found and found[0].get_attribute("data-ready") == "1":
            return found[0]
        time.sleep(0.05)
    text = found[0].text if found else "(no such element)"
    raise AssertionError(f"{selector} not ready after {timeout:.0f} s; widget text: {text[:500]!r}; "
                         f"console: {console(driver)[-10:]}")


def console(driver) -> list[str]:
    """The browser console's messages so far (errors first in any failure message)."""
    try:
        return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser")]
    except Exception:  # noqa: BLE001 - a driver without logs: nothing to add
        return []


AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("critical", "serious")  # the impacts the site must be free of (issue #21)


def axe_missing() -> str | None:
    """Why the accessibility checks cannot run here (besides the browser), or None."""
    if not AXE.is_file():
        return f"axe-core is not installed ({AXE} is missing): run `npm ci` (package.json pins it)"
    return None


def axe(driver, context: str | None = None) -> list[dict]:
    """axe-core's violations on the current page (or inside the element ``context`` selects): every
    rule axe ships, experimental ones included, each as {id, impact, help, nodes: [target, ...]}."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    driver.set_script_timeout(120)
    result = driver.execute_async_script(
        "const [ctx, done] = arguments;"
        "const rules = Object.fromEntries(axe.getRules(['experimental']).map(r => [r.ruleId, {enabled: true}]));"
        "axe.run(ctx ? document.querySelector(ctx) : document, {resultTypes: ['violations'], rules})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        "  nodes: v.nodes.map(n => ({target: n.target.join(' '), impact: n.impact, html: n.html.slice(0, 200)}))}))),"
        "  e => done({error: String(e)}));", context)
    if isinstance(result, dict):
        raise AssertionError(f"axe-core failed: {result['error']}")
    return result
