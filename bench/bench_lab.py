"""The HTML lab in a real browser: how fast the SAM explorer page answers its first prompt, how fast
the decoder runs after that, and what the lab adds to the site's weight.

Serves a rendered book (default ``_book``, from ``make render``) on 127.0.0.1 and opens chapter 1 in
a fresh headless Chromium (empty cache) ``--runs`` times: each run measures, from the start of the
page's navigation, when the explorer is ready (onnxruntime-web, the ONNX decoder and the first
image's float16 embedding loaded) and when the first prompt's mask is on screen (the book's box
around both lungs, chosen right after ready), then the decode time of ``--prompts`` further
prompts. Target: the first answer within 2 s of navigation on this machine (2 cores).
Writes ``bench/results/lab.json``.

    python bench/bench_lab.py [--site _book] [--runs 3] [--prompts 12]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import browser as B  # noqa: E402  (tests/browser.py: the same harness as the browser tests)

SAM = 'div.lab[data-lab="sam"]'


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def one_run(url: str, n_prompts: int) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with B.chrome() as d:  # a new profile each run: nothing cached from the previous one
        d.get(url + "chapters/01-segment-anything.html")
        root = d.find_element(By.CSS_SELECTOR, SAM)
        d.execute_script("arguments[0].scrollIntoView()", root)
        root = B.wait_ready(d, SAM, timeout=120)
        refs = Select(root.find_element(By.CSS_SELECTOR, "[data-testid=refs]"))
        refs.select_by_index(1)  # the first book prompt: the box around both lungs
        deadline = time.monotonic() + 60
        while root.get_attribute("data-first-answer-at-ms") is None:
            assert time.monotonic() < deadline, B.console(d)
            time.sleep(0.02)
        out = {"ready_at_ms": float(root.get_attribute("data-ready-at-ms")),
               "load_ms": float(root.get_attribute("data-load-ms")),
               "first_answer_at_ms": float(root.get_attribute("data-first-answer-at-ms")),
               "first_decode_ms": float(root.get_attribute("data-decode-ms")),
               "phases_ms": json.loads(root.get_attribute("data-phases"))}
        decodes = []
        for k in range(n_prompts):
            refs.select_by_index(1 + (k % (len(refs.options) - 1)))
            before = root.get_attribute("data-prompt")
            t = time.monotonic()
            while root.get_attribute("data-prompt") == before and time.monotonic() - t < 0.3:
                time.sleep(0.01)  # the same prompt again leaves data-prompt as it was
            decodes.append(float(root.get_attribute("data-decode-ms")))
        out["decode_ms_median"] = statistics.median(decodes)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default=str(ROOT / "_book"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lab.json"))
    args = ap.parse_args()
    site = Path(args.site)
    if not (site / "lab" / "sam.js").exists():
        sys.exit(f"{site} has no lab/: render the book first (make render)")
    why = B.missing()
    if why:
        sys.exit(why)
    with B.serve(site) as url:
        runs = [one_run(url, args.prompts) for _ in range(args.runs)]
    lab = site / "lab"
    weight = {"onnxruntime_web": folder_bytes(lab / "ort"), "sam_runs": folder_bytes(lab / "runs"),
              "scripts_css": sum(f.stat().st_size for f in lab.glob("*.*")),
              **{f"page_{p.stem}": p.stat().st_size for p in sorted((site / "chapters").glob("*.html"))}}
    for k, v in sorted(weight.items()):
        print(f"{k:40s} {v / 1e6:8.2f} MB")
    for r in runs:
        print(f"ready {r['ready_at_ms']:.0f} ms, first answer {r['first_answer_at_ms']:.0f} ms after navigation "
              f"(decode {r['first_decode_ms']:.0f} ms), later decodes median {r['decode_ms_median']:.0f} ms; "
              f"loading (ms after it began): {r['phases_ms']}")
    result = {"runs": runs, "first_answer_at_ms_median": statistics.median(r["first_answer_at_ms"] for r in runs),
              "decode_ms_median": statistics.median(r["decode_ms_median"] for r in runs), "target_first_answer_ms": 2000,
              "bytes": weight, "cpus": os.cpu_count(), "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
              "machine": platform.processor() or platform.machine(), "browser": B.CHROMIUM}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
