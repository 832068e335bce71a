"""Chapter 3's attention explorer (lab/attention.js): its data against the stored offline run, and
the widget in a real browser (cells follow the layer and head selectors, hovering highlights)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from analysis.bert import chapter as ch

WIDGET = 'div.lab[data-lab="attention"]'


@pytest.fixture(scope="module")
def att_run():
    """The offline bert_attention run the chapter reads (its current key), or skip when not stored."""
    from analysis.experiments import lookup

    run = lookup("bert_attention", "offline")
    if run is None:
        pytest.skip("no stored offline bert_attention run for the current code_version")
    return run


@pytest.fixture(scope="module")
def data(att_run):
    return ch.explorer_data(att_run)


def expected(att_run, model: str, i: int, layer: int, head: int | None) -> np.ndarray:
    """What the widget must show, in units of 1/scale, straight from the stored float16 maps:
    (T, T) for a head, or the mean over heads (head None)."""
    n = len(att_run.rows("chosen")[i]["tokens"])
    maps = np.asarray(att_run.arrays[f"chosen_{model}_all"][i, layer], np.float32)[:, :n, :n]  # (H, T, T)
    m = maps.mean(0) if head is None else maps[head]
    return np.rint(m * 10 ** ch.EXPLORER_DECIMALS).astype(int)


# ---------------------------------------------------------------- data, no browser
def test_explorer_data_is_the_stored_run(att_run, data):
    pre_all = att_run.arrays["chosen_pre_all"]
    n_sent, n_layers, n_heads = pre_all.shape[:3]
    assert (data["n_layers"], data["n_heads"], len(data["sentences"])) == (n_layers, n_heads, n_sent)
    assert data["scale"] == 10 ** data["decimals"]
    for i, s in enumerate(data["sentences"]):
        row = att_run.rows("chosen")[i]
        assert s["tokens"] == row["tokens"] and s["text"] == row["text"]
        assert (s["label"], s["pred"]) == (ch.label_name(row["label"]), ch.label_name(row["pred"]))
        n = len(s["tokens"])
        for m in ("pre", "ft"):
            for layer in range(n_layers):
                shown = np.array(s["maps"][m][layer]).reshape(n_heads + 1, n, n)
                for head in range(n_heads):
                    np.testing.assert_array_equal(shown[head], expected(att_run, m, i, layer, head))
                np.testing.assert_array_equal(shown[n_heads], expected(att_run, m, i, layer, None))
                # the average is the mean of the heads shown, up to their rounding
                assert np.abs(shown[:n_heads].mean(0) - shown[n_heads]).max() <= 1


def test_explorer_last_layer_is_the_stored_last_layer(att_run, data):
    """The float16 all-layer maps agree with the float32 last-layer maps the static figures use:
    shown values differ from them by at most half a display unit plus float16 rounding."""
    tol = 0.5 / data["scale"] + 2.0 ** -12  # float16 has 11 significant bits; values are < 1
    for i, s in enumerate(data["sentences"]):
        n = len(s["tokens"])
        for m in ("pre", "ft"):
            last = np.asarray(att_run.arrays[f"chosen_{m}_last"][i], np.float32)[:, :n, :n]  # (H, T, T)
            shown = np.array(s["maps"][m][-1]).reshape(-1, n, n) / data["scale"]
            assert np.abs(shown[:-1] - last).max() <= tol
            assert np.abs(shown[-1] - last.mean(0)).max() <= tol
            assert np.isnan(att_run.arrays[f"chosen_{m}_all"][i, :, :, n:, :]).all()  # padding stays NaN


def test_explorer_markdown(att_run):
    md = ch.attention_explorer(att_run)
    assert 'data-lab="attention"' in md and 'src="../lab/attention.js"' in md
    assert md.startswith('::: {.content-visible when-format="html"}')  # the PDF gets none of it


def test_explorer_bad_input(att_run):
    with pytest.raises(ValueError, match="'pre' or 'ft'"):
        ch.explorer_maps(att_run, "post", 0)
    with pytest.raises(IndexError, match="out of range"):
        ch.explorer_maps(att_run, "pre", len(att_run.rows("chosen")))
    old = types.SimpleNamespace(key="old", arrays={"chosen_pre_last": None}, rows=att_run.rows)
    with pytest.raises(KeyError, match="code_version 2"):
        ch.explorer_maps(old, "pre", 0)


# ---------------------------------------------------------------- in the browser
def _cells(driver, root, model):
    """{(row, col): value shown} of one map, read in a single script call."""
    got = driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll('[data-testid=cell][data-model=' + arguments[1] + ']'))"
        ".map(c => [Number(c.dataset.row), Number(c.dataset.col), c.dataset.value, c.dataset.highlight]);",
        root, model)
    return {(r, c): v for r, c, v, _ in got}, {(r, c) for r, c, _, h in got if h == "1"}


def _as_array(cells, n, scale):
    out = np.full((n, n), -1)
    for (r, c), v in cells.items():
        out[r, c] = round(float(v) * scale)
    return out


def test_explorer_in_browser(browser, site_url, att_run):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from browser import console, wait_ready

    browser.get(site_url + "chapters/03-bert-attention.html")
    root = wait_ready(browser, WIDGET)
    scale = 10 ** ch.EXPLORER_DECIMALS
    n = len(att_run.rows("chosen")[0]["tokens"])
    n_layers = att_run.arrays["chosen_pre_all"].shape[1]

    def shown(model):
        return _as_array(_cells(browser, root, model)[0], n, scale)

    # defaults: sentence 1, last layer, average of heads
    for m in ("pre", "ft"):
        np.testing.assert_array_equal(shown(m), expected(att_run, m, 0, n_layers - 1, None))
    before = shown("ft")

    head = Select(root.find_element(By.CSS_SELECTOR, "[data-testid=head]"))
    head.select_by_value("2")  # head 3
    after = shown("ft")
    assert not np.array_equal(before, after), "cells did not change with the head selector"
    for m in ("pre", "ft"):
        np.testing.assert_array_equal(shown(m), expected(att_run, m, 0, n_layers - 1, 2))

    Select(root.find_element(By.CSS_SELECTOR, "[data-testid=layer]")).select_by_value("0")  # layer 1
    for m in ("pre", "ft"):
        np.testing.assert_array_equal(shown(m), expected(att_run, m, 0, 0, 2))

    # another sentence: the grid is rebuilt with its own token count
    Select(root.find_element(By.CSS_SELECTOR, "[data-testid=sentence]")).select_by_value("1")
    n1 = len(att_run.rows("chosen")[1]["tokens"])
    cells, _ = _cells(browser, root, "pre")
    np.testing.assert_array_equal(_as_array(cells, n1, scale), expected(att_run, "pre", 1, 0, 2))

    # hovering a cell of the fine-tuned map highlights that query row in both maps
    target = root.find_element(By.CSS_SELECTOR, "[data-testid=cell][data-model=ft][data-row='1'][data-col='2']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    ActionChains(browser).move_to_element(target).perform()
    for m in ("pre", "ft"):
        assert _cells(browser, root, m)[1] == {(1, c) for c in range(n1)}, f"row 2 not highlighted in {m}"
    tokens = att_run.rows("chosen")[1]["tokens"]
    readout = root.find_element(By.CSS_SELECTOR, "[data-testid=readout]").text
    assert tokens[1] in readout and "pre-trained" in readout and "fine-tuned" in readout
    value = expected(att_run, "ft", 1, 0, 2)[1, 2] / scale
    assert f"{value:.{ch.EXPLORER_DECIMALS}f}" in root.find_element(By.CSS_SELECTOR, "[data-testid=readout-cell]").text

    # keyboard: the map is one Tab stop (a roving tabindex) and the arrow keys move its cell
    from selenium.webdriver.common.keys import Keys

    stops = root.find_elements(By.CSS_SELECTOR, "[data-testid=cell][data-model=pre][tabindex='0']")
    assert len(stops) == 1, "one cell of a map takes the Tab stop"
    browser.execute_script("arguments[0].focus()", stops[0])
    start = int(stops[0].get_attribute("data-row")), int(stops[0].get_attribute("data-col"))
    ActionChains(browser).send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_RIGHT).perform()
    row, col = min(start[0] + 2, n1 - 1), min(start[1] + 1, n1 - 1)
    focused = browser.switch_to.active_element
    assert (focused.get_attribute("data-row"), focused.get_attribute("data-col")) == (str(row), str(col))
    assert focused.get_attribute("tabindex") == "0" and stops[0].get_attribute("tabindex") == "-1"
    assert _cells(browser, root, "ft")[1] == {(row, c) for c in range(n1)}
    # the widget logged no error (the theme's web font failing offline is not the widget's)
    assert not [m for m in console(browser) if m.startswith("SEVERE") and "attention" in m], console(browser)
