"""The SAM prompt explorer of the HTML book (chapter 1; analysis/sam/explorer.py, lab/sam.js).

Without a browser: the ONNX export gives the package's masks (random-weight SAM architectures, so
this holds for any weights), the stored run agrees with the other SAM runs, the store keeps the
``web/`` files under checksums, and the post-render script copies what a page names. With Debian's
Chromium (tests/browser.py): the rendered page computes, in onnxruntime-web, the package's masks
for every reference prompt, and a box dragged on the X-ray gives the package's F1.
"""

import base64
import json
import shutil

import numpy as np

import pytest

from analysis.sam import explorer as X
from analysis.sam import prompts as P

SAM = 'div.lab[data-lab="sam"]'


def _square_masks(side=256):
    """Two rectangular 'lungs' as a ground truth (H, W)."""
    gt = np.zeros((side, side), bool)
    gt[40:200, 30:110] = True
    gt[50:210, 140:230] = True
    return gt


@pytest.mark.parametrize("name", ["litemedsam", "sam_vit_b"])
def test_exported_decoder_gives_the_package_masks(name):
    """``export_decoder`` + ``onnx_inputs`` in onnxruntime reproduce ``predict_batch`` (PyTorch) for
    box, point and mixed prompts, on random weights of both architectures (SAM's 1024-pixel
    encoder frame exercises the coordinate scaling)."""
    import onnxruntime as ort
    import torch

    from analysis.sam.engine import cached_predictor
    from analysis.sam.model import build_sam_arch, load_sam

    torch.manual_seed(0)
    if name == "litemedsam":
        sam = load_sam("litemedsam", random_weights=True)
    else:  # a 2-block ViT at SAM's 1024 input: the real prompt encoder/decoder, a cheap encoder
        sam = build_sam_arch(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
                             encoder_global_attn_indexes=(1,), image_size=1024)
    predictor = cached_predictor(sam, name, use_cache=False)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    predictor.set_image(image)
    gt = _square_masks()
    prompts = [p for _, p in X.reference_prompts(gt)]
    prompts.append(P.Prompt(points_xy=np.array([[60.0, 100.0]]), labels=np.array([1]), box_xyxy=np.array([30.0, 40, 110, 200])))
    masks, ious = predictor.predict_batch(prompts)
    session = ort.InferenceSession(X.export_decoder(sam), providers=["CPUExecutionProvider"])
    features = predictor.features.numpy()
    scale = (predictor.input_size[1] / 256, predictor.input_size[0] / 256)
    assert name == "litemedsam" or scale == (4.0, 4.0)
    for p, m, q in zip(prompts, masks, ious):
        got, iou = session.run(["masks", "iou_predictions"], X.onnx_inputs(p, features, scale, (256, 256)))
        assert got.shape == (1, 4, 256, 256)
        assert int(((got[0] > 0) != m).sum()) <= 2, p  # float rounding only
        np.testing.assert_allclose(iou[0], q, atol=1e-4)


def test_stored_explorer_run_agrees_with_the_other_sam_runs(stored_offline):
    """The explorer's package masks are the book's: box-around-both-lungs F1 equals sam_prompts'
    F1 for the same image, and the "everything" masks of the demo images equal sam_auto's. The
    float16 embeddings the browser gets change at most a handful of pixels."""
    run = stored_offline("sam_explorer")
    prompts_run, auto_run = stored_offline("sam_prompts"), stored_offline("sam_auto")
    records = prompts_run.table("records")
    refs = run.table("records")
    box_both = refs[refs["prompt"] == "box_both:0"]
    assert len(box_both) == run.metrics["n_images"]
    for _, r in box_both.iterrows():
        book = records[(records["image"] == r["image"]) & (records["strategy"] == "box_both")]["f1"]
        assert len(book) == 1 and r["f1"][0] == pytest.approx(float(book.iloc[0]), abs=1e-12)
    demo_auto = auto_run.arrays["demo_auto"]
    images = run.rows("images")
    demos = [im for im in images if im["demo"]]
    assert len(demos) == len(demo_auto)
    for slot, im in enumerate(demos):
        labels = np.frombuffer(run.web_file(f"{im['n']}.auto.u8"), np.uint8).reshape(im["height"], im["width"])
        assert np.array_equal(labels, demo_auto[slot]), im["id"]
    m = run.metrics
    assert m["onnx_f32_diff_pixels_max"] == 0  # the export itself: identical masks
    assert m["onnx_f16_diff_pixels_max"] <= 0.001 * m["n_pixels"] * 4  # float16 embedding: rounding at the edges
    web = [n.split("/", 1)[1] for n in run.files() if n.startswith("web/")]
    assert m["web_bytes"] == sum(len(run.web_file(f)) for f in web)
    assert X.DECODER_FILE not in web  # weights: exported again on demand, never stored (test below)


def test_decoder_is_exported_again_and_checked(stored_offline, tmp_path, monkeypatch):
    """The decoder is not in the run: ``decoder_bytes`` exports it again from the run's model, with
    the sha256 the run recorded, caches it, replaces a damaged cache file, and refuses a decoder
    that differs from the one the run was checked with."""
    import hashlib

    from analysis.errors import ModelUnavailable

    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path))
    run = stored_offline("sam_explorer")
    data = X.decoder_bytes(run)
    assert hashlib.sha256(data).hexdigest() == run.metrics["decoder_sha256"] and len(data) == run.metrics["onnx_bytes"]
    cached = X.decoder_cache(run)
    assert cached.read_bytes() == data
    cached.write_bytes(b"damaged")
    assert X.decoder_bytes(run) == data and cached.read_bytes() == data
    cached.unlink()

    class Other:  # the same run, said to have been checked with another decoder
        profile, key, config = run.profile, run.key, run.config
        metrics = dict(run.metrics, decoder_sha256="0" * 64)

    with pytest.raises(ModelUnavailable, match="differs from the one run"):
        X.decoder_bytes(Other())
    assert not cached.exists()  # nothing cached that the run did not check


def test_store_keeps_web_files_under_checksums(tmp_path):
    from analysis.store import Output, Store, StoreError

    store = Store(tmp_path)
    out = Output(metrics={"a": 1}, web={"decoder.onnx": b"\x00onnx", "0.emb.f16": b"\x01\x02"})
    run = store.save(experiment="e", profile="smoke", key="k1", config={}, output=out, code_version="1",
                     source_hash="s", data_fingerprint="d", env={}, wall_seconds=0.1)
    assert run.web_file("decoder.onnx") == b"\x00onnx"
    assert (run.path / "web" / "0.emb.f16").read_bytes() == b"\x01\x02"
    (run.path / "web" / "0.emb.f16").write_bytes(b"\x01\x03")
    with pytest.raises(StoreError, match="differs from its checksum"):
        store.load("smoke", "e", "k1").web_file("0.emb.f16")
    with pytest.raises(ValueError, match="no folders"):
        store.save(experiment="e", profile="smoke", key="k2", config={}, code_version="1", source_hash="s",
                   data_fingerprint="d", env={}, wall_seconds=0.1, output=Output(metrics={}, web={"../x": b""}))


def test_lab_assets_copies_what_a_page_names(tmp_path, monkeypatch):
    import importlib.util

    from analysis.paths import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("lab_assets", PROJECT_ROOT / "scripts" / "lab_assets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import hashlib

    results = tmp_path / "results"
    key = "0123456789abcdef"
    run = results / "offline" / "sam_explorer" / key
    (run / "web").mkdir(parents=True)
    (run / "web" / "decoder.onnx").write_bytes(b"x" * 10)
    (run / "web" / "0.emb.f16").write_bytes(b"e" * 4)
    (run / "checksums.sha256").write_text("".join(f"{hashlib.sha256(b).hexdigest()}  web/{n}\n" for n, b in
                                                  (("decoder.onnx", b"x" * 10), ("0.emb.f16", b"e" * 4))))
    monkeypatch.setenv("ANALYSIS_RESULTS_DIR", str(results))
    out = tmp_path / "site"
    (out / "chapters").mkdir(parents=True)
    (out / "chapters" / "a.html").write_text(f'<div data-lab="sam" data-lab-assets="offline/sam_explorer/{key}" data-lab-ort="1">')
    copied, problems = mod.run(out)
    assert problems == []
    assert (out / "lab" / "runs" / "offline" / "sam_explorer" / key / "decoder.onnx").read_bytes() == b"x" * 10
    assert (out / "lab" / "sam.js").exists() and (out / "lab" / "lab.css").exists()
    assert mod.run(out)[0] == 0  # nothing copied twice
    # a corrupted embedding is not published, and the problem names the file and the fix
    (run / "web" / "0.emb.f16").write_bytes(b"f" * 4)
    shutil.rmtree(out / "lab" / "runs")
    _, problems = mod.run(out)
    assert any("0.emb.f16: fails its checksum" in p and "--force" in p for p in problems)
    assert not (out / "lab" / "runs" / "offline" / "sam_explorer" / key / "0.emb.f16").exists()
    (out / "chapters" / "b.html").write_text('<div data-lab="sam" data-lab-assets="offline/sam_explorer/fedcba9876543210">'
                                             '<div data-lab="x" data-lab-assets="offline/../../etc">'
                                             f'<div data-lab="x" data-lab-assets="{tmp_path}/outside">'
                                             '<div data-lab="x" data-lab-decoder="../x/sam_explorer/0123456789abcdef">')
    outside = tmp_path / "outside" / "web"
    outside.mkdir(parents=True)
    (outside / "secret").write_text("s")
    _, problems = mod.run(out)
    assert any("fedcba9876543210/web is missing" in p and "analysis run sam_explorer --profile offline" in p
               for p in problems)
    assert sum("inside the result store" in p for p in problems) == 3
    assert not any(p.name == "secret" for p in out.rglob("*"))


def test_lab_assets_exports_the_decoder_or_warns(stored_offline, tmp_path, capsys):
    """A page's data-lab-decoder gets the run's decoder beside its files (through `python -m
    analysis lab-decoder`); a run that cannot give one is a warning, not a failed render."""
    import importlib.util

    from analysis.paths import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("lab_assets", PROJECT_ROOT / "scripts" / "lab_assets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = stored_offline("sam_explorer")
    rel = f"offline/sam_explorer/{run.key}"
    out = tmp_path / "site"
    out.mkdir()
    (out / "a.html").write_text(f'<div data-lab="sam" data-lab-decoder="{rel}"></div>'
                                '<div data-lab="sam" data-lab-decoder="offline/sam_explorer/0000000000000000"></div>')
    _, problems = mod.run(out)
    assert problems == []
    decoder = (out / "lab" / "runs" / rel / "decoder.onnx").read_bytes()
    assert len(decoder) == run.metrics["onnx_bytes"]
    err = capsys.readouterr().err
    assert "decoder for offline/sam_explorer/0000000000000000 could not be exported" in err and "no such stored run" in err


def test_widget_data_names_the_stored_run(stored_offline):
    from analysis.sam import chapter as ch

    run = stored_offline("sam_explorer")
    html = ch.explorer_widget(run)
    assert f'data-lab-assets="offline/sam_explorer/{run.key}"' in html and "data-lab-ort" in html
    assert f'data-lab-decoder="offline/sam_explorer/{run.key}"' in html
    data = ch.explorer_data(run)
    assert len(data["images"]) == run.metrics["n_images"] and len(data["refs"]) == run.metrics["n_reference_prompts"]


# --- in the browser ------------------------------------------------------------------------------------

def _open(browser, site_url):
    from selenium.webdriver.common.by import By

    from browser import wait_ready

    browser.get(site_url + "chapters/01-segment-anything.html")
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.CSS_SELECTOR, SAM))
    return wait_ready(browser, SAM, timeout=60)


def test_browser_masks_equal_the_package_masks(browser, site_url, stored_offline):
    """Every reference prompt of every image, decoded by the page's own pipeline (float16
    embeddings, onnxruntime-web), against the package's masks: at most the stored run's float16
    tolerance of differing pixels per prompt, the same predicted IoUs to 1e-3."""
    run = stored_offline("sam_explorer")
    root = _open(browser, site_url)
    packed = run.arrays["ref_masks"]
    tolerance = max(run.metrics["onnx_f16_diff_pixels_max"], 1)
    worst = 0
    for r, ref in zip(run.rows("records"), packed):
        got = browser.execute_async_script(
            "const [root, r, done] = arguments;"
            "root.samLab.decode(r.n, r.points, r.labels, r.box).then(done, e => done({error: String(e)}));",
            root, {k: r[k] for k in ("n", "points", "labels", "box")})
        assert "error" not in got, got
        masks = np.stack([np.unpackbits(np.frombuffer(base64.b64decode(m), np.uint8)) for m in got["masks"]])
        expected = np.unpackbits(ref, axis=-1).reshape(4, -1)
        diff = int((masks != expected).sum())
        worst = max(worst, diff)
        assert diff <= tolerance, (r["id"], diff)
        np.testing.assert_allclose(got["iou"], r["iou_pred"], atol=1e-3)
    print(f"browser vs package: at most {worst} differing pixels over {len(packed)} prompts x 4 outputs")


def test_dragged_box_draws_the_mask_with_the_package_f1(browser, site_url, stored_offline):
    """A reader drags the book's box around both lungs on the first X-ray: the mask is drawn, the
    F1 shown is the package's (sam_prompts) to float16 rounding, and the output buttons flip."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    run = stored_offline("sam_explorer")
    ref = next(r for r in run.rows("records") if r["n"] == 0 and r["prompt"] == "box_both:0")
    root = _open(browser, site_url)
    canvas = browser.find_element(By.CSS_SELECTOR, f"{SAM} [data-testid=canvas]")
    rect = canvas.rect
    scale = rect["width"] / 256

    def offset(x, y):  # Selenium offsets are from the element's centre
        return x * scale - rect["width"] / 2, y * scale - rect["height"] / 2

    x0, y0, x1, y1 = ref["box"]
    red_before = _red_pixels(browser, canvas)
    (ActionChains(browser).move_to_element_with_offset(canvas, *offset(x0, y0)).click_and_hold()
     .move_to_element_with_offset(canvas, *offset(x1, y1)).release().perform())
    _wait_attr(browser, root, "data-f1")
    assert json.loads(root.get_attribute("data-prompt"))["box"] == ref["box"]
    f1 = float(root.get_attribute("data-f1"))
    assert f1 == pytest.approx(ref["f1"][0], abs=2e-4)  # float16 embedding: a few edge pixels at most
    shown = root.find_element(By.CSS_SELECTOR, "[data-testid=f1]").text
    assert shown == f"F1 {f1:.3f}"
    assert root.get_attribute("data-output") == "0"  # a box: the single-mask output
    assert _red_pixels(browser, canvas) > red_before + 1000  # the mask is painted
    root.find_element(By.CSS_SELECTOR, "[data-testid=output-2]").click()
    assert root.get_attribute("data-output") == "2"
    assert float(root.get_attribute("data-f1")) == pytest.approx(ref["f1"][2], abs=2e-4)
    root.find_element(By.XPATH, ".//button[normalize-space()='Everything']").click()
    count = root.find_element(By.CSS_SELECTOR, "[data-testid=auto-count]").text
    n_auto = run.rows("images")[0]["n_auto_masks"]
    assert count.startswith(f"Everything: {n_auto} masks")
    print(f"load {root.get_attribute('data-load-ms')} ms, first answer {root.get_attribute('data-first-answer-ms')} ms "
          f"after loading began, decode {root.get_attribute('data-decode-ms')} ms")


def _wait_attr(browser, element, name, timeout=20.0):
    import time

    deadline = time.monotonic() + timeout
    while element.get_attribute(name) is None:
        assert time.monotonic() < deadline, f"{name} never set; console: {browser.get_log('browser')[-5:]}"
        time.sleep(0.05)


def _red_pixels(browser, canvas) -> int:
    """Pixels where the mask's red tint dominates (the X-ray itself is grey)."""
    return browser.execute_script(
        "const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        "for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 1] + 40 && d[i] > d[i + 2] + 40) n++; return n;", canvas)


@pytest.mark.parametrize("damage", ["truncated embedding", "damaged decoder", "truncated later image"])
def test_damaged_explorer_files_are_named_with_the_fix(browser, rendered, tmp_path, damage):
    """A site whose explorer files were damaged after the render (a truncated copy, a bad upload):
    the explorer says which file, what is wrong and how to get it back, instead of saying "Ready"
    and drawing nothing, or onnxruntime's "protobuf parsing failed"."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from browser import console, serve

    site = tmp_path / "site"
    shutil.copytree(rendered, site)
    run_dir = next((site / "lab" / "runs").glob("*/sam_explorer/*"))
    if damage == "truncated embedding":
        target = run_dir / "0.emb.f16"
        target.write_bytes(target.read_bytes()[:1000])
        expected = ("0.emb.f16 has 1000 bytes where", "truncated or damaged", "make render")
    elif damage == "damaged decoder":
        target = run_dir / "decoder.onnx"
        target.write_bytes(b"\x00not a model" * 100)
        expected = ("decoder.onnx (0.0 MB) is not a decoder onnxruntime-web can read", "the file is damaged",
                    "Delete .cache/sam_onnx/", "make render")
    else:
        target = run_dir / "1.gt.bits"
        target.write_bytes(target.read_bytes()[:-1])
        expected = ("X-ray 1 could not be shown", "1.gt.bits has", "make render")
    with serve(site) as url:
        browser.get(url + "chapters/01-segment-anything.html")
        root = browser.find_element(By.CSS_SELECTOR, SAM)
        browser.execute_script("arguments[0].scrollIntoView()", root)
        if damage == "truncated later image":
            from browser import wait_ready

            root = wait_ready(browser, SAM, timeout=60)
            Select(root.find_element(By.CSS_SELECTOR, "select[aria-label=X-ray]")).select_by_value("1")
        deadline = time.monotonic() + 60
        while root.get_attribute("data-error") is None:
            assert time.monotonic() < deadline, f"no error shown; widget text: {root.text[:300]!r}"
            time.sleep(0.05)
        shown = root.text
        browser.get("about:blank")  # nothing of this page still loads once the server stops ...
        console(browser)  # ... and its messages are not the next test's
    for part in expected:
        assert part in shown, (part, shown)
    assert "Ready" not in shown and "protobuf" not in shown.split("(")[0]
