"""Readers on every device (issue #21): the rendered offline site in Debian's Chromium.

- axe-core (pinned in package.json) finds no critical or serious violation on any page, with the
  widgets scrolled into view and again after a reader used each of them (a mask drawn, a head
  changed, a row expanded); every figure has alt text;
- keyboard: a skip link first, each widget's map / table / image one Tab stop with arrow keys
  inside, and each widget driven with keys only;
- phone: at 390 px no page scrolls sideways, and the SAM explorer waits for a tap, saying its size;
- ``file://``: each widget says it needs the site served over HTTP, and how;
- conventions: a favicon, the PDF download, repository links only when the git remote names one.

Skipped, saying why, without Chromium/ChromeDriver (tests/browser.py) or axe-core (``npm ci``).
``python tests/test_a11y.py [BOOK_DIR]`` prints the measurements of issue #21 for a rendered book
(violations per page by impact, Tab counts, page widths at 390 px).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import browser as b  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# page -> the widget on it (lab/<name>.js)
WIDGETS = {
    "chapters/01-segment-anything.html": "sam",
    "chapters/03-bert-attention.html": "attention",
    "chapters/04-chain-of-thought.html": "cot",
}
PHONE = 390


def book_pages() -> list[str]:
    """The site's pages, from the book's chapter list in _quarto.yml (index.qmd -> index.html)."""
    import yaml

    book = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))["book"]
    files = []
    for entry in book.get("chapters", []) + book.get("appendices", []):
        files += entry.get("chapters", []) if isinstance(entry, dict) else [entry]
    return [str(Path(f).with_suffix(".html")) for f in files]


def selector(name: str) -> str:
    return f'div.lab[data-lab="{name}"]'


def show_widgets(driver, page: str, timeout: float = 90) -> None:
    """Scroll the page's widget into view and wait until it can be used (on a small screen the
    SAM explorer waits for a tap: the test taps its load button)."""
    from selenium.webdriver.common.by import By

    name = WIDGETS.get(page)
    if not name:
        return
    root = driver.find_element(By.CSS_SELECTOR, selector(name))
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", root)
    deadline = time.monotonic() + timeout
    while root.get_attribute("data-ready") != "1" and time.monotonic() < deadline:
        load = root.find_elements(By.CSS_SELECTOR, "[data-testid=load]")
        if load and load[0].is_displayed():
            load[0].click()
        time.sleep(0.1)
    b.wait_ready(driver, selector(name), timeout=1)


def focused_in(driver, sel: str) -> bool:
    return driver.execute_script("const a = document.activeElement; return !!(a && a.closest(arguments[0]));", sel)


def press(driver, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def tab_counts(driver, page_url: str, sel: str, limit: int = 400) -> tuple[int, int]:
    """(Tab presses from the top of a freshly loaded page until focus is inside ``sel``, further
    presses until it has left it again)."""
    from selenium.webdriver.common.keys import Keys

    driver.get(page_url)
    driver.execute_script("window.scrollTo(0, 0); document.activeElement && document.activeElement.blur()")
    reach = 0
    while not focused_in(driver, sel):
        press(driver, Keys.TAB)
        reach += 1
        assert reach < limit, f"{sel} not reached in {limit} Tab presses"
    leave = 0
    while focused_in(driver, sel):
        press(driver, Keys.TAB)
        leave += 1
        assert leave < limit, f"{sel} not left in {limit} Tab presses"
    return reach, leave


def phone(driver, width: int = PHONE, height: int = 844) -> None:
    """A phone's viewport (Chromium's device emulation: a desktop window cannot be this narrow)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})


def overflow(driver) -> dict:
    """How far the page scrolls sideways, and the elements sticking out of the viewport."""
    return driver.execute_script("""
        const w = document.documentElement.clientWidth, out = [];
        for (const e of document.body.querySelectorAll('*')) {
          const r = e.getBoundingClientRect();
          if (r.right > w + 1 && r.width > 0 && getComputedStyle(e).position !== 'fixed') {
            let p = e.parentElement, clipped = false;   // inside a scrolling or clipping box: fine
            while (p && p !== document.body) {
              const s = getComputedStyle(p);
              if (s.overflowX !== 'visible' && p.getBoundingClientRect().right <= w + 1) { clipped = true; break; }
              p = p.parentElement;
            }
            if (!clipped) out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                                   (e.className && e.className.baseVal === undefined ? '.' + String(e.className).trim().split(/\\s+/).join('.') : ''));
          }
        }
        return {client: w, scroll: document.documentElement.scrollWidth, inner: window.innerWidth, wide: out.slice(0, 8)};
    """)


def by_impact(violations: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in violations:
        for n in v["nodes"]:
            impact = n.get("impact") or v["impact"]
            counts[impact] = counts.get(impact, 0) + 1
    return counts


def blocking(violations: list[dict]) -> list[str]:
    """'rule (impact): target' for every critical or serious node."""
    return [f"{v['id']} ({n.get('impact') or v['impact']}): {n['target']}  {n.get('html', '')[:120]}"
            for v in violations for n in v["nodes"] if (n.get("impact") or v["impact"]) in b.BLOCKING]


# ------------------------------------------------------------------------ keyboard-only use of each widget
def use_sam(driver, root) -> None:
    """Keys only: focus the X-ray, move the cursor, B starts a box, arrows, B ends it: a mask and its F1."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    canvas = root.find_element(By.CSS_SELECTOR, "[data-testid=canvas]")
    driver.execute_script("arguments[0].focus()", canvas)
    press(driver, "b")
    press(driver, *([Keys.ARROW_RIGHT] * 6), *([Keys.ARROW_DOWN] * 6))
    press(driver, "b")
    _wait(lambda: root.get_attribute("data-f1") is not None, driver, "no F1 after a box drawn with keys")


def use_attention(driver, root) -> None:
    """Keys only: the head selector one down, then into the map and along a row."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    head = root.find_element(By.CSS_SELECTOR, "[data-testid=head]")
    driver.execute_script("arguments[0].focus()", head)
    press(driver, Keys.ARROW_DOWN)
    press(driver, Keys.TAB)  # the head selector is the last control: the next Tab stop is the first map
    press(driver, Keys.ARROW_DOWN, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)


def use_cot(driver, root) -> None:
    """Keys only: into the table, one row down, Enter: its chain is shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    first = root.find_element(By.CSS_SELECTOR, "[data-testid=row] button.cot-expand")
    driver.execute_script("arguments[0].focus()", first)
    press(driver, Keys.ARROW_DOWN, Keys.ENTER)
    _wait(lambda: root.find_elements(By.CSS_SELECTOR, "[data-testid=detail]"), driver, "no chain shown after Enter")


USE = {"sam": use_sam, "attention": use_attention, "cot": use_cot}


def _wait(cond, driver, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}; console: {b.console(driver)[-5:]}"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------- report
def report(book: Path) -> None:
    """The measurements of issue #21 for the book rendered in ``book``, printed as tables."""
    from selenium.webdriver.common.by import By

    rows = []
    with b.serve(book) as url, b.chrome(1300, 1000) as driver:
        for page in book_pages():
            driver.get(url + page)
            show_widgets(driver, page)
            before = b.axe(driver)
            after, tabs = None, ("", "")
            name = WIDGETS.get(page)
            if name:
                try:
                    USE[name](driver, driver.find_element(By.CSS_SELECTOR, selector(name)))
                    after = b.axe(driver)
                except Exception as exc:  # noqa: BLE001 - a widget without keyboard support (an older book)
                    print(f"{page}: the keyboard use failed: {str(exc)[:200]}")
                tabs = tab_counts(driver, url + page, selector(name))
            rows.append([page, before, after, tabs])

            def rules(found):
                return {v["id"]: len(v["nodes"]) for v in found}
            print(f"{page}: at load {by_impact(before)} {rules(before)}")
            if after is not None:
                print(f"    after use {by_impact(after)} {rules(after)}; Tab presses to reach / leave the widget: {tabs}")
    with b.serve(book) as url, b.chrome(PHONE, 844) as driver:
        phone(driver)
        for page in book_pages():
            driver.get(url + page)
            o = overflow(driver)
            print(f"{page} at {PHONE} px: content {o['scroll']} px wide in a {o['client']} px viewport; {o['wide']}")


PAGES = book_pages()
# Tab stops a widget may hold: its native controls, plus one per map / list / image (roving tabindex)
TAB_STOPS = {"sam": 7, "attention": 5, "cot": 6}


@pytest.fixture(scope="module")
def axe_ready(browser):
    why = b.axe_missing()
    if why:
        pytest.skip(why)
    return browser


@pytest.fixture(scope="module")
def phone_browser(rendered):
    """A second Chromium with a phone's viewport (390 CSS px, touch, 2x pixels)."""
    why = b.missing()
    if why:
        pytest.skip(why)
    with b.chrome(PHONE, 844) as driver:
        phone(driver)
        yield driver


def test_pages_are_the_book(rendered):
    missing = [p for p in PAGES if not (rendered / p).is_file()]
    assert PAGES and not missing, missing
    for page in WIDGETS:
        assert f'data-lab="{WIDGETS[page]}"' in (rendered / page).read_text(encoding="utf-8"), page


def _axe_page(driver, site_url, page) -> list[dict]:
    """Violations at load (widget in view), then after using the widget with keys only."""
    from selenium.webdriver.common.by import By

    driver.get(site_url + page)
    show_widgets(driver, page)
    found = b.axe(driver)
    name = WIDGETS.get(page)
    if name:
        USE[name](driver, driver.find_element(By.CSS_SELECTOR, selector(name)))
        found += [dict(v, id=v["id"] + " (after use)") for v in b.axe(driver)]
    return found


@pytest.mark.parametrize("page", PAGES)
def test_no_critical_or_serious_violation(axe_ready, site_url, page):
    """axe-core (every rule, experimental ones too) on the page with its widget in view and again
    after the widget was used; missing alt text is test_every_figure_has_alt_text's."""
    found = [v for v in _axe_page(axe_ready, site_url, page) if not v["id"].startswith("image-alt")]
    bad = blocking(found)
    assert not bad, f"{page}: {len(bad)} critical/serious axe-core violations:\n" + "\n".join(bad[:30])


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_has_alt_text(rendered, page):
    """Every image of the page has alt text (the chapters' `fig-alt`, written from what it shows);
    read from the HTML, so it runs without a browser."""
    import re

    text = (rendered / page).read_text(encoding="utf-8")
    imgs = re.findall(r"<img\b[^>]*>", text)
    bare = [tag[:160] for tag in imgs if not re.search(r'\balt="[^"]+"', tag) and 'role="presentation"' not in tag]
    assert not bare, f"{page}: {len(bare)} of {len(imgs)} images without alt text:\n" + "\n".join(bare)


def test_skip_links_come_first(browser, site_url):
    """The first Tab reaches "Skip to main content"; Enter on it, then Tab, lands in the main text.
    On a widget's page a second skip link leads into the widget."""
    from selenium.webdriver.common.keys import Keys

    for page in ["index.html", *WIDGETS]:
        browser.get(site_url + page)
        press(browser, Keys.TAB)
        first = browser.switch_to.active_element
        assert first.text == "Skip to main content" and first.is_displayed(), page
        press(browser, Keys.ENTER, Keys.TAB)
        assert focused_in(browser, "#quarto-document-content"), page
        if page in WIDGETS:
            browser.get(site_url + page)
            press(browser, Keys.TAB, Keys.TAB)
            assert browser.switch_to.active_element.text.startswith("Skip to the "), page
            press(browser, Keys.ENTER, Keys.TAB)
            assert focused_in(browser, selector(WIDGETS[page])), page


@pytest.mark.parametrize("page", sorted(WIDGETS))
def test_widget_tab_stops(browser, site_url, page):
    """Tab goes through a widget in a handful of presses, however many rows, cells or pixels it
    shows: its controls and one stop per map, list or image."""
    name = WIDGETS[page]
    browser.get(site_url + page)
    show_widgets(browser, page)
    reach, leave = tab_counts(browser, site_url + page, selector(name))
    print(f"{name}: {reach} Tab presses to reach, {leave} to leave")
    assert leave <= TAB_STOPS[name], f"{name}: {leave} Tab stops"


def test_sam_with_keys_only(browser, site_url):
    """The X-ray with keys only: P and N place points at the cross-hair, B ... B draws a box; the F1
    is said in a live region and equals the one shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    import json

    page = "chapters/01-segment-anything.html"
    browser.get(site_url + page)
    show_widgets(browser, page)
    root = browser.find_element(By.CSS_SELECTOR, selector("sam"))
    canvas = root.find_element(By.CSS_SELECTOR, "[data-testid=canvas]")
    browser.execute_script("arguments[0].focus()", canvas)
    width = int(canvas.get_attribute("width"))
    c = width // 2
    press(browser, "p")
    _wait(lambda: root.get_attribute("data-prompt"), browser, "no answer to P")
    assert json.loads(root.get_attribute("data-prompt")) == {"points": [[c, c]], "labels": [1], "box": None}
    press(browser, Keys.DELETE)
    use_sam(browser, root)  # B, 6 x right, 6 x down (4 px each), B
    assert json.loads(root.get_attribute("data-prompt"))["box"] == [c, c, c + 24, c + 24]
    f1 = float(root.get_attribute("data-f1"))
    live = root.find_element(By.CSS_SELECTOR, "[data-testid=live]")
    assert live.get_attribute("aria-live") == "polite"
    _wait(lambda: f"F1 {f1:.3f}" in live.get_attribute("textContent"), browser, "F1 not announced")
    assert root.find_element(By.CSS_SELECTOR, "[data-testid=f1]").text == f"F1 {f1:.3f}"
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ARROW_LEFT).key_up(Keys.SHIFT).send_keys("n").perform()
    _wait(lambda: json.loads(root.get_attribute("data-prompt"))["labels"] == [0], browser, "no negative point")
    assert json.loads(root.get_attribute("data-prompt"))["points"] == [[c + 24 - 16, c + 24]]
    # the mask outputs: a toolbar, one Tab stop; the arrow keys move, Enter picks
    toolbar = root.find_element(By.CSS_SELECTOR, "[role=toolbar]")
    stops = [x for x in toolbar.find_elements(By.TAG_NAME, "button") if x.get_attribute("tabindex") == "0"]
    assert len(stops) == 1
    browser.execute_script("arguments[0].focus()", stops[0])
    press(browser, Keys.END, Keys.ENTER)
    _wait(lambda: root.get_attribute("data-output") == "3", browser, "End, Enter did not pick output 3")
    pressed = {x.get_attribute("data-output"): x.get_attribute("aria-pressed") for x in toolbar.find_elements(By.TAG_NAME, "button")}
    assert pressed["3"] == "true" and pressed["auto"] == "false", pressed


def test_attention_with_keys_only(browser, site_url):
    from selenium.webdriver.common.by import By

    page = "chapters/03-bert-attention.html"
    browser.get(site_url + page)
    show_widgets(browser, page)
    root = browser.find_element(By.CSS_SELECTOR, selector("attention"))
    use_attention(browser, root)  # head: one down (head 1), Tab into the map, down, right, right
    assert root.find_element(By.CSS_SELECTOR, "[data-testid=head]").get_attribute("value") == "0"
    assert "head 1." in root.find_element(By.CSS_SELECTOR, "[data-testid=sentence-text]").text
    cell = browser.switch_to.active_element
    assert (cell.get_attribute("data-model"), cell.get_attribute("data-row"), cell.get_attribute("data-col")) == ("pre", "1", "2")
    shown = root.find_element(By.CSS_SELECTOR, "[data-testid=readout-cell]").text
    assert cell.get_attribute("data-value") in shown


def test_cot_with_keys_only(browser, site_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = "chapters/04-chain-of-thought.html"
    browser.get(site_url + page)
    root = b.wait_ready(browser, selector("cot"))
    box = root.find_element(By.CSS_SELECTOR, "[data-testid=filter-labelled]")  # the last control
    browser.execute_script("arguments[0].focus()", box)
    press(browser, Keys.TAB)
    rows = root.find_elements(By.CSS_SELECTOR, "[data-testid=row]")
    first = browser.switch_to.active_element
    assert first.get_attribute("data-id") == rows[0].get_attribute("data-id") and first.tag_name == "button"
    use_cot(browser, root)  # down, Enter
    second = browser.switch_to.active_element
    assert second.get_attribute("data-id") == rows[1].get_attribute("data-id")
    assert second.get_attribute("aria-expanded") == "true"
    detail = root.find_element(By.CSS_SELECTOR, "[data-testid=detail]")
    assert detail.get_attribute("data-id") == rows[1].get_attribute("data-id") and detail.is_displayed()
    press(browser, Keys.ENTER)
    assert not root.find_elements(By.CSS_SELECTOR, "[data-testid=detail]")
    press(browser, Keys.END)
    assert browser.switch_to.active_element.get_attribute("data-id") == rows[-1].get_attribute("data-id")


@pytest.mark.parametrize("page", PAGES)
def test_no_sideways_scrolling_on_a_phone(phone_browser, site_url, page):
    phone_browser.get(site_url + page)
    o = overflow(phone_browser)
    assert o["client"] == PHONE, o
    assert o["scroll"] <= o["client"] and o["inner"] <= PHONE, f"{page} scrolls sideways at {PHONE} px: {o}"


def test_phone_widgets(phone_browser, site_url):
    """On a phone the SAM explorer loads on a tap, saying how much it downloads, and works after
    it; the CoT list is cards whose text wraps in full lines."""
    from selenium.webdriver.common.by import By

    page = "chapters/01-segment-anything.html"
    phone_browser.get(site_url + page)
    root = phone_browser.find_element(By.CSS_SELECTOR, selector("sam"))
    phone_browser.execute_script("arguments[0].scrollIntoView()", root)
    load = root.find_element(By.CSS_SELECTOR, "[data-testid=load]")
    _wait(lambda: "MB)" in load.text, phone_browser, "the load button never said its size")
    time.sleep(1)
    assert root.get_attribute("data-ready") is None and not phone_browser.execute_script(
        "return performance.getEntriesByType('resource').some(e => /\\.(onnx|wasm)$/.test(e.name) && e.encodedBodySize > 0)")
    mb = float(load.text.split("(")[1].split(" MB")[0])
    assert mb == pytest.approx(int(root.get_attribute("data-download-bytes")) / 1e6, abs=0.06)
    load.click()
    b.wait_ready(phone_browser, selector("sam"), timeout=90)
    loaded = phone_browser.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/lab/') && !/\\.(js|css)$/.test(e.name))"
        ".reduce((a, e) => a + e.encodedBodySize, 0)")
    assert loaded == pytest.approx(mb * 1e6, rel=0.02), "the size said is what loads"

    phone_browser.get(site_url + "chapters/04-chain-of-thought.html")
    root = b.wait_ready(phone_browser, selector("cot"))
    row = root.find_element(By.CSS_SELECTOR, "[data-testid=row]")
    assert phone_browser.execute_script("return getComputedStyle(arguments[0]).display", row) == "flex"  # a card
    scroll = root.find_element(By.CSS_SELECTOR, ".cot-scroll")
    assert phone_browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", scroll)
    group = row.find_element(By.CSS_SELECTOR, ".cot-group")
    assert group.rect["width"] > 0.6 * root.rect["width"], "the topic gets the card's width"


def test_widgets_opened_from_a_file_say_how_to_serve_them(browser, rendered):
    from selenium.webdriver.common.by import By

    for page, name in WIDGETS.items():
        browser.get((rendered / page).as_uri())
        note = browser.find_element(By.CSS_SELECTOR, f"{selector(name)} [data-testid=file-note]")
        assert note.is_displayed() and "served over HTTP" in note.text, page
        assert "make preview" in note.text and f"python -m http.server -d _book" in note.text
        assert f"http://localhost:8000/{page}" in note.text
    # the browser's refusals of the module scripts from file:// are this test's, not the next one's
    refused = [m for m in b.console(browser) if "SEVERE" in m]
    assert all("file://" in m for m in refused), refused


def test_site_conventions(browser, site_url, rendered):
    """A favicon, the PDF download, and repository links exactly when the git remote names a
    GitHub repository (never a placeholder)."""
    import urllib.request

    from selenium.webdriver.common.by import By

    from analysis.repo import github_slug

    browser.get(site_url + "index.html")
    icon = browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href")
    assert urllib.request.urlopen(icon).status == 200
    pdf = browser.find_element(By.CSS_SELECTOR, "a[href$='.pdf']").get_attribute("href")
    assert urllib.request.urlopen(pdf).read(5) == b"%PDF-"
    slug = github_slug()
    repo = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='github.com']")]
    actions = browser.find_elements(By.CSS_SELECTOR, ".toc-actions a, a.quarto-navigation-tool[href*='github']")
    text = (rendered / "index.html").read_text(encoding="utf-8")
    assert "&lt;group&gt;" not in text and "<group>" not in text
    if slug is None:
        assert not actions and not [u for u in repo if "colab" not in u], repo
    else:
        assert any(f"github.com/{slug}/edit/" in a.get_attribute("href") for a in actions)
        assert any(f"github.com/{slug}/issues/new" in a.get_attribute("href") for a in actions)


def test_repo_links_follow_the_remote(tmp_path):
    """scripts/pre_render.py writes Quarto's repo-url / repo-actions for a GitHub remote, removes
    them without one, and leaves the file alone when nothing changed (quarto preview watches it)."""
    import importlib.util
    import os

    import yaml

    spec = importlib.util.spec_from_file_location("pre_render", ROOT / "scripts" / "pre_render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = mod.write_repo_links(tmp_path, repo="owner/book")
    meta = yaml.safe_load(path.read_text())["book"]
    assert meta["repo-url"] == "https://github.com/owner/book" and set(meta["repo-actions"]) == {"edit", "issue", "source"}
    os.utime(path, (1, 1))
    assert mod.write_repo_links(tmp_path, repo="owner/book") == path and path.stat().st_mtime == 1
    mod.github_slug = lambda root=None: None  # no GitHub remote
    assert mod.write_repo_links(tmp_path) is None and not path.exists()
    assert mod.repo_links_yaml(None) == ""
    quarto = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert mod.REPO_LINKS in quarto["metadata-files"]


if __name__ == "__main__":
    report(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "_book").resolve())
