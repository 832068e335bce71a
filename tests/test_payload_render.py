"""Data is never markup, checked where a reader meets it: the smoke book rendered by real Quarto from
copies of the data sets whose texts carry markup payloads (tests/fixtures/payloads.py: HTML tags
with event handlers, ``</script>``, ``<!--``, ``javascript:`` links, citations, math, Quarto
shortcodes, HTML entities, Typst's ``#set``), opened page by page in Chromium and read in the PDF.

No script runs (``window.__pwned`` stays unset), no link or image points at ``javascript:``, nothing
of a payload turns into a citation, math, struck-out or superscript text, and every page that shows
data shows the payload as the text it is; the lab widgets build from JSON holding it; the PDF prints
it. Computing the smoke runs on the seeded data and rendering take about 5 minutes here (7 with cold caches).
"""

import os
import re
import shutil
import subprocess
import time

import pytest
from conftest import QUARTO, needs_quarto, quarto_render
from fixtures.payloads import NAME_PAYLOAD, PAYLOAD, seed_data


# pages that show data text, and the payload each must show in full at least once
SHOWS_PAYLOAD = {"chapters/03-bert-attention.html": PAYLOAD, "chapters/04-chain-of-thought.html": PAYLOAD,
                 "appendices/cot-outputs.html": PAYLOAD,
                 "chapters/01-segment-anything.html": NAME_PAYLOAD, "chapters/02-prompting-sam.html": NAME_PAYLOAD}


def _squash(text: str) -> str:
    """Text as compared: zero-width break opportunities dropped, whitespace runs as one space."""
    return re.sub(r"\s+", " ", text.replace("\u200b", ""))


@pytest.fixture(scope="module")
def seeded_book(tmp_path_factory, shared_data):
    if QUARTO is None:
        pytest.skip("Quarto is not on PATH (see needs_quarto)")
    tmp = tmp_path_factory.mktemp("payload")
    data = seed_data(shared_data, tmp / "data")
    out = tmp / "book"
    # the caches in force are shared: the lung pixels and the models are the data's and the book's own
    # (content-keyed entries, verified on read), so the models, embeddings and decoder other tests
    # built are reused; only the seeded texts' runs are computed afresh, in their own store
    env = dict(os.environ, ANALYSIS_DATA_DIR=str(data), ANALYSIS_RESULTS_DIR=str(tmp / "results"))
    quarto_render("smoke", out, env)  # its pre-render script computes the smoke runs on the seeded data first
    return out


@needs_quarto
def test_seeded_payloads_never_run_and_show_literally(seeded_book, browser):
    from selenium.webdriver.common.by import By

    from browser import console, serve

    pages = sorted(p.relative_to(seeded_book).as_posix() for p in seeded_book.rglob("*.html")
                   if "site_libs" not in p.parts and "lab" not in p.parts)
    assert set(SHOWS_PAYLOAD) <= set(pages), pages
    problems = []
    with serve(seeded_book) as url:
        for page in pages:
            browser.get(url + page)
            for lab in browser.find_elements(By.CSS_SELECTOR, "div.lab"):  # widgets build when near
                browser.execute_script("arguments[0].scrollIntoView()", lab)
            time.sleep(1.0)
            found = browser.execute_script("""
                const q = (s) => Array.from(document.querySelectorAll(s));
                return {
                  pwned: window.__pwned === undefined ? null : String(window.__pwned),
                  js_links: q('a[href^="javascript"], img[src^="javascript"], iframe[src^="javascript"]').map((e) => e.outerHTML.slice(0, 80)),
                  payload_elements: q('script:not([type="application/json"]), img, iframe').filter((e) => /__pwned/.test(e.outerHTML)).map((e) => e.outerHTML.slice(0, 80)),
                  citations: q('[data-cites*="pwned"], a[href*="ref-pwned"]').length,
                  parsed: q('.math, del, s, sup').filter((e) => /pwned/.test(e.textContent)).map((e) => e.outerHTML.slice(0, 80)),
                  lab_errors: q('.lab-error').map((e) => e.textContent.slice(0, 200)),
                  text: document.body.innerText,
                };""")
            text = _squash(found.pop("text"))
            for key, value in found.items():
                if value:
                    problems.append(f"{page}: {key}: {value}")
            expected = SHOWS_PAYLOAD.get(page)
            if expected and _squash(expected) not in text:
                at = text.find(expected[:12])
                problems.append(f"{page}: the payload is not shown literally; first start: {text[at:at + 300]!r}")
            if "<i>I</i><" in text:
                problems.append(f"{page}: an HTML entity in a name was decoded")
            errors = [m for m in console(browser) if m.startswith("SEVERE") and "favicon" not in m]
            if errors:
                problems.append(f"{page}: console errors: {errors[:3]}")
        browser.get("about:blank")  # nothing still loads from this server once it stops
        console(browser)
    assert problems == [], "\n".join(problems)


@needs_quarto
def test_seeded_payloads_print_literally_in_the_pdf(seeded_book):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pdf = next(seeded_book.glob("*.pdf"))
    text = _squash(subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                                  check=True).stdout)
    for fragment in ("#set text(red)", "@pwnedkey", "$pwnedmath$", "~~pwnedstrike~~", "^pwnedsup^",
                     "{{< pagebreak >}}", "</script><script>window.__pwned=2</script>", NAME_PAYLOAD):
        assert fragment in text, fragment
