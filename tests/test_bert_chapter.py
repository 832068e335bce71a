"""BERT chapter helpers read stored runs only: numbers and words that follow them, profile blocks that
match the models' capabilities, figures at >= 7 pt with token labels."""

import re
import types
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

CHAPTER = Path(__file__).resolve().parent.parent / "chapters" / "03-bert-attention.qmd"
REGISTRY_IDS = ("minilm_l6", "bert_base_uncased", "smollm2_135m", "gpt2")


@pytest.fixture(scope="module")
def runs(stored_offline):
    return {k: stored_offline(e) for k, e in (("stats", "agnews_stats"), ("finetune", "bert_finetune"),
                                       ("attention", "bert_attention"), ("fewshot", "bert_fewshot"))}


def test_small_text_helpers():
    from analysis.bert import chapter as ch

    assert ch.epochs_text(1.0) == "1 epoch" and ch.epochs_text(2.0) == "2 epochs" and ch.epochs_text(0.5) == "0.5 epochs"
    assert ch.model_name("bert_base_uncased") == "bert-base-uncased" and ch.model_name("minilm_l6") == "all-MiniLM-L6-v2"
    assert ch.gap(0.9, 0.85) == "5.0 points above" and ch.gap(0.25, 0.255) == "0.5 points below"
    assert ch.gap(0.25, 0.2501) == "level with"
    # the verb compares the printed values: 0.0841 -> 0.0839 prints as 0.084 twice
    assert ch.change(0.0841, 0.0839) == "stayed at 0.084"
    assert ch.change(0.225, 0.128) == "fell from 0.225 to 0.128"
    assert ch.quoted([" World", " Sci"]) == '"World", "Sci"'


def _spans(text: str, kind: str) -> list[str]:
    """Citation keys of inline spans ``[[@a; @b]...]{.content-<kind> when-profile="full"}``."""
    pat = r"\[\[([^\]]*)\](?:[^\[\]]|\[[^\]]*\])*\]\{\.content-" + kind + r' when-profile="full"\}'
    return re.findall(pat, text)


def test_profile_blocks_match_the_models_capabilities():
    """The chapter's full/non-full blocks state model facts; they must hold for each profile's configs."""
    from analysis.bert import chapter as ch
    from analysis.bert.experiments import DATA, FEWSHOT, FINETUNE
    from analysis.models import spec

    text = CHAPTER.read_text()
    cites_hidden, cites_visible = _spans(text, "hidden"), _spans(text, "visible")
    for profile, cfg in FINETUNE.items():
        full = profile == "full"
        # stand-in sentences and the mean-pooling caveat are hidden under full only
        assert ch.is_assignment_model(cfg.model) == full
        assert ch.mean_pooled(cfg.model) == (not full)
        assert ch.is_assignment_model(FEWSHOT[profile].model) == full
        # the statistics count with the fine-tuned model's own tokenizer ("the model fine-tuned below")
        assert DATA[profile].tokenizer == cfg.model
        # each profile's citations are the registry's
        for model in (cfg.model, FEWSHOT[profile].model):
            keys = spec(model).cite
            assert keys in (cites_visible if full else cites_hidden), (profile, keys)


def test_no_hand_typed_verdicts_left():
    text = CHAPTER.read_text()
    for phrase in ("so the two nearly agree", "no match for", "calibration removes", "Sentence 5",
                   "mostly words of the headline", "was not stored", "effects of fine-tuning"):
        assert phrase not in text


def test_encoder_macro_f1_is_computed_from_the_stored_predictions(runs):
    from sklearn.metrics import f1_score

    from analysis.bert import chapter as ch

    fs = runs["fewshot"]
    rec = fs.table("records")
    expect = f1_score(rec["label"], rec["pred_encoder"], average="macro", labels=range(4), zero_division=0)
    assert ch.encoder_macro_f1(fs) == pytest.approx(expect)
    assert ch.fewshot_table(fs)["Macro-F1"].notna().all()
    assert (rec["label"] == rec["pred_encoder"]).mean() == pytest.approx(fs.metrics["accuracy_encoder_same_items"])


def _fake_attention(pre_cls: list[float], ft_cls: list[float]):
    """A stand-in attention run with one 3-token sentence ([CLS] w [SEP]), one head; the [CLS] rows are
    given (each sums to 1)."""
    pre = np.zeros((1, 1, 3, 3), np.float32)
    ft = np.zeros_like(pre)
    pre[0, 0, 0], ft[0, 0, 0] = pre_cls, ft_cls
    rows = [{"tokens": ["[CLS]", "w", "[SEP]"], "label": 0, "pred": 1, "role": "misclassified", "text": "w"}]
    return types.SimpleNamespace(rows=lambda name: rows, arrays={"chosen_pre_last": pre, "chosen_ft_last": ft})


def test_cls_counts_compare_at_the_printed_precision():
    from analysis.bert import chapter as ch

    same = ch.cls_counts(_fake_attention([0.04, 0.9, 0.06], [0.04, 0.90001, 0.05999]), k=1)
    assert (same["fell"], same["rose"], same["same"], same["n"]) == (0, 0, 1, 1)
    fell = ch.cls_counts(_fake_attention([0.5, 0.2, 0.3], [0.1, 0.8, 0.1]), k=1)
    assert (fell["fell"], fell["special_top_pre"], fell["special_top_ft"], fell["n_top"]) == (1, 1, 0, 1)


def test_cls_counts_match_the_table(runs):
    from analysis.bert import chapter as ch

    att = runs["attention"]
    c, t = ch.cls_counts(att), ch.cls_table(att)
    assert c["n"] == len(t) == len(att.rows("chosen")) and c["fell"] + c["rose"] + c["same"] == c["n"]
    assert c["fell"] == int((t["special, ft"].round(3) < t["special, pre"].round(3)).sum())
    assert c["special_top_ft"] == sum(tok in ("[CLS]", "[SEP]") for cell in t["fine-tuned: top tokens"]
                                      for tok in cell.split(", "))


def test_bench_names_what_differs_from_the_run(runs):
    from analysis.bert import chapter as ch

    ft = runs["finetune"]
    bench = ch.bench_result()
    assert bench is not None and ch.bench_profile(bench) == "offline"
    diff = ch.bench_differences(bench, ft)
    if bench["variants"]["project"]["batch_size"] != ft.config["batch_size"]:
        assert f"batch size ({bench['variants']['project']['batch_size']} there, {ft.config['batch_size']} here)" in diff
    assert "model" not in diff  # the offline run trains the benchmarked model
    same = dict(bench, variants={"project": dict(bench["variants"]["project"], batch_size=ft.config["batch_size"],
                                                 precision=ch.precision(ft))}, device=ft.env["device"])
    assert ch.bench_differences(same, ft).startswith("nothing")
    other = dict(same, model="bert_base_uncased", random_weights=True)
    assert ch.bench_differences(other, ft).startswith("the model (bert-base-uncased with random weights there")
    assert ch.bench_profile(other) == ""


def test_label_shares_and_confusion_facts(runs):
    from analysis.bert import chapter as ch

    fs, ft = runs["fewshot"], runs["finetune"]
    s = ch.label_shares(fs)
    assert sum(s["true"]) == pytest.approx(1) and 0 <= s["tv_calibrated"] <= 1 and 0 <= s["tv_raw"] <= 1
    assert s["tv_raw"] == pytest.approx(sum(abs(a - b) for a, b in zip(s["raw"], s["true"])) / 2)
    assert s["top_raw_share"] == max(s["raw"])
    c = ch.confusion_facts(ft)
    cm = np.asarray(ft.arrays["confusion"])
    assert c["errors"] == cm.sum() - np.trace(cm) and c["best_f1"] >= c["worst_f1"]
    assert c["ij"] + c["ji"] <= c["errors"]


def test_tables_have_no_python_reprs(runs):
    from analysis.bert import chapter as ch
    from analysis.report import md_table_text

    for df in (ch.counts_table(runs["stats"]), ch.lengths_table(runs["stats"]), ch.curve_table(runs["finetune"]),
               ch.per_class_table(runs["finetune"]), ch.chosen_table(runs["attention"]),
               ch.layer_table(runs["attention"]), ch.top_heads(runs["attention"]), ch.cls_table(runs["attention"]),
               ch.fewshot_table(runs["fewshot"])):
        text = md_table_text(df)
        assert not re.search(r"\bnan\b", text.lower()) and "np." not in text and "None" not in text
        assert "—" not in text  # nothing missing


def _texts(fig) -> list:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def test_figures_fit_the_text_width_with_legible_fonts(runs):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from analysis.bert import chapter as ch
    from analysis.bert import figures as F

    att = runs["attention"]
    figs = [ch.fig_lengths(runs["stats"]), ch.fig_learning_curve(runs["finetune"]),
            ch.fig_confusion(runs["finetune"].arrays["confusion"]), ch.fig_attention_heads(att, 0),
            ch.fig_chosen_overview(att, 0), *ch.fig_chosen_overview_more(att), ch.fig_attention_pair(att),
            ch.fig_attention_change(att), ch.fig_fewshot(runs["fewshot"])]
    for fig in figs:
        FigureCanvasAgg(fig)
        box = fig.get_tightbbox()  # what the PDF prints (saved with bbox "tight")
        assert box.width <= F.TEXT_WIDTH, box.width  # else the PDF scales it down, fonts below 7 pt
        assert box.height <= 8.5  # fits an A4 page with its caption
        texts = _texts(fig)
        assert min(t.get_fontsize() for t in texts) >= 7
        assert not any(i in t.get_text() for t in texts for i in REGISTRY_IDS)


def test_every_chosen_sentence_gets_a_labelled_map_with_one_colour_bar(runs):
    from analysis.bert import chapter as ch

    att = runs["attention"]
    chosen = att.rows("chosen")
    parts = ch.overview_parts(att)
    assert sorted(i for p in parts for i in p) == list(range(len(chosen))) and max(map(len, parts)) <= 2
    assert len(ch.fig_chosen_overview_more(att)) == len(parts) - 1
    for part, which in enumerate(parts):
        fig = ch.fig_chosen_overview(att, part)
        bars = [ax for ax in fig.axes if "attention (mean over heads)" in (ax.get_xlabel(), ax.get_ylabel())]
        assert len(bars) == 1
        maps = [ax for ax in fig.axes if ax.images]
        assert len(maps) == 2 * len(which)
        for k, i in enumerate(which):
            tokens = list(chosen[i]["tokens"])
            for ax in maps[2 * k: 2 * k + 2]:
                assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    heads = ch.fig_attention_heads(att, 0)
    assert sum(1 for ax in heads.axes if ax.get_ylabel() == "attention from [CLS]") == 1
    assert [t.get_text() for t in heads.axes[0].get_xticklabels()] == list(chosen[0]["tokens"])


def test_gpu_benchmark_is_read_for_the_full_profile(tmp_path, monkeypatch):
    """Under full the chapter quotes the GPU benchmark of that profile's configuration; without one it
    prints dashes, not a typed number."""
    import math

    from analysis.bert import chapter as ch
    from analysis.paths import PROJECT_ROOT

    g = ch.gpu_bench()
    if (PROJECT_ROOT / "bench" / "results" / "gpu.json").exists():
        assert g["batch_size"] == 32 and g["project_s"] > 0 and g["speedup"] == g["speedup"]
    monkeypatch.setattr("analysis.paths.PROJECT_ROOT", tmp_path)
    empty = ch.gpu_bench()
    assert math.isnan(empty["project_s"]) and empty["device"] == "no GPU benchmark yet"
