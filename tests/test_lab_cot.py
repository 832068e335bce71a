"""Chapter 4's chain-of-thought browser (analysis.cot.chapter.cot_browser, lab/cot.js): its data
against the stored run (fast, no browser), then the widget in the rendered book in a real browser
(skipped, saying why, without Quarto or Chromium; renders the book once per test session)."""

import json
import re
from collections import Counter

import pytest

from analysis.cot import chapter as ch
from analysis.cot.extract import INVALID
from analysis.cot.scoring import FLIPS

PAGE = "chapters/04-chain-of-thought.html"
WIDGET = 'div.lab[data-lab="cot"]'


@pytest.fixture(scope="module")
def run(stored_offline, offline_unchanged):
    """The stored offline CoT run (read only: ``offline_unchanged`` checks nothing was written)."""
    return stored_offline("cot_scienceqa")


@pytest.fixture(scope="module")
def data(run):
    return ch.cot_browser_data(run)


def test_browser_data_counts_equal_the_run(run, data):
    m = run.metrics
    assert len(data["rows"]) == data["n"] == m["n"]
    counts = Counter(r["flip"] for r in data["rows"])
    assert {c["key"]: c["n"] for c in data["categories"]} == {k: m[f"n_{k}"] for k in FLIPS} == \
        {k: counts[k] for k in FLIPS}
    # INVALID is a row like any other: counted, marked not valid and wrong, never dropped
    invalid = [r for r in data["rows"] if r["cot"] == INVALID]
    assert len(invalid) == data["n_invalid"] == m["n_invalid"] == sum(not r["valid"] for r in data["rows"])
    assert not any(r["cot_ok"] for r in invalid)


def test_browser_rows_equal_the_stored_records(run, data):
    records = run.rows("records")
    assert [r["id"] for r in data["rows"]] == [str(r["id"]) for r in records]
    k_max = run.config["probe_steps"]
    for row, rec in zip(data["rows"], records):
        assert (row["gold"], row["direct"], row["cot"], row["flip"], row["rule"]) == \
            (rec["gold"], rec["direct_letter"], rec["cot_letter"], rec["flip"], rec["cot_rule"])
        assert (row["direct_ok"], row["cot_ok"]) == (rec["direct_correct"], rec["cot_correct"])
        assert (row["question"], row["choices"], row["raw"]) == (rec["question"], rec["choices"], rec["cot_text"])
        stored_steps = [s for s in (rec["step1"], rec["step2"], rec["step3"]) if s is not None]
        assert row["steps"][:3] == stored_steps and len(row["steps"]) == rec["n_steps"] == row["n_steps"]
        assert row["early"] == [rec[f"probe_k{k}"] for k in range(k_max + 1)]
        assert row["early_agree"] == [rec[f"probe_agree_k{k}"] for k in range(k_max + 1)]
    ann = ch.annotations(run)
    labelled = {i: lab for i, lab in zip(ann["id"], ann["label"]) if isinstance(lab, str)}
    assert {r["id"]: r["label"] for r in data["rows"] if r["label"]} == labelled
    assert sum(r["sampled"] for r in data["rows"]) == len(ann)


def test_browser_markdown_is_html_only_and_small(run, data):
    md = ch.cot_browser(run)
    assert md.startswith('::: {.content-visible when-format="html"}')  # the PDF has no widget
    embedded = re.search(r'<script type="application/json" class="lab-data">(.*?)</script>', md, re.S).group(1)
    assert json.loads(embedded.replace("<\\/", "</")) == json.loads(json.dumps(data))
    assert len(md.encode()) < 500_000  # the page weight the widget adds
    assert f"all {data['n']} questions" in md


# ----------------------------------------------------------------------------- in the browser
def _open(browser, site_url):
    import browser as b

    browser.get(site_url + PAGE)
    return b.wait_ready(browser, WIDGET)


def _rows(widget):
    from selenium.webdriver.common.by import By

    return widget.find_elements(By.CSS_SELECTOR, '[data-testid="row"]')


def _select(widget, testid, value):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(widget.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')).select_by_value(value)


def _count(widget):
    from selenium.webdriver.common.by import By

    return widget.find_element(By.CSS_SELECTOR, '[data-testid="count"]').text


def test_browser_rows_per_flip_category_and_validity(browser, site_url, run):
    m = run.metrics
    widget = _open(browser, site_url)
    assert len(_rows(widget)) == m["n"] and _count(widget) == f"{m['n']} of {m['n']} questions"
    for cat in FLIPS:
        _select(widget, "filter-flip", cat)
        rows = _rows(widget)
        assert len(rows) == m[f"n_{cat}"], cat
        assert {r.get_attribute("data-flip") for r in rows} == {cat}
        assert _count(widget) == f"{m[f'n_{cat}']} of {m['n']} questions"
    _select(widget, "filter-flip", "")
    _select(widget, "filter-valid", "invalid")
    rows = _rows(widget)
    assert len(rows) == m["n_invalid"] and {r.get_attribute("data-valid") for r in rows} == {"0"}
    _select(widget, "filter-valid", "valid")
    assert len(_rows(widget)) == m["n"] - m["n_invalid"]
    # the text search finds a question by a phrase of its own
    from selenium.webdriver.common.by import By

    _select(widget, "filter-valid", "")
    rec = run.rows("records")[0]
    widget.find_element(By.CSS_SELECTOR, '[data-testid="search"]').send_keys(rec["question"].splitlines()[-1])
    assert rec["id"] in [r.get_attribute("data-id") for r in _rows(widget)]


def test_browser_row_expands_to_its_chain(browser, site_url, run):
    from selenium.webdriver.common.by import By

    import browser as b

    widget = _open(browser, site_url)
    records = run.rows("records")
    # a chain with several steps and a letter, and an INVALID one
    for rec in (next(r for r in records if r["n_steps"] >= 2 and r["cot_letter"] != INVALID),
                next(r for r in records if r["cot_letter"] == INVALID)):
        row = widget.find_element(By.CSS_SELECTOR, f'[data-testid="row"][data-id="{rec["id"]}"]')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
        row.click()
        detail = widget.find_element(By.CSS_SELECTOR, f'[data-testid="detail"][data-id="{rec["id"]}"]')
        steps = [li.text for li in detail.find_elements(By.CSS_SELECTOR, '[data-testid="steps"] li')]
        def words(text):  # a step keeps its line breaks on screen; compare its words
            return " ".join(text.split())

        assert [words(s) for s in steps[:3]] == [words(s) for s in (rec["step1"], rec["step2"], rec["step3"])
                                                 if s is not None]
        assert len(steps) == rec["n_steps"]
        extracted = detail.find_element(By.CSS_SELECTOR, '[data-testid="extracted-letter"]').text
        assert extracted.startswith(rec["cot_letter"])
        early = detail.find_element(By.CSS_SELECTOR, '[data-testid="early"]').text
        assert (rec["probe_k0"] or "–") in early
        button = row.find_element(By.CSS_SELECTOR, "button.cot-expand")
        assert button.get_attribute("aria-expanded") == "true"
        assert button.get_attribute("aria-controls") == detail.get_attribute("id")
    assert not [e for e in b.console(browser) if "SEVERE" in e and "lab/" in e]
