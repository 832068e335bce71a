"""The published site works with no network: every resource the pages with lab widgets (and the
preface) load comes from the site itself, and each widget starts (tests/browser.py, Debian's
Chromium; skipped, saying why, without it)."""

import pytest

from browser import console, wait_ready

PAGES = {  # page -> the widget it must start (None: no widget)
    "index.html": None,
    "chapters/01-segment-anything.html": "sam",
    "chapters/03-bert-attention.html": "attention",
    "chapters/04-chain-of-thought.html": "cot",
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_loads_nothing_from_elsewhere(browser, site_url, page):
    from selenium.webdriver.common.by import By

    browser.get(site_url + page)
    widget = PAGES[page]
    if widget:
        selector = f'div.lab[data-lab="{widget}"]'
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.CSS_SELECTOR, selector))
        wait_ready(browser, selector, timeout=60)
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    foreign = [u for u in urls if not u.startswith(site_url) and not u.startswith(("data:", "blob:"))]
    assert foreign == [], f"{page} fetched {foreign}"
    errors = [m for m in console(browser) if m.startswith("SEVERE") and "favicon.ico" not in m]
    assert errors == [], f"{page}: {errors}"
