"""BERT chapter helpers read stored runs only: profile-true prose, no reprs, figures at >= 7 pt."""

import re

import matplotlib
import pytest

matplotlib.use("Agg")




@pytest.fixture(scope="module")
def runs(stored_offline):
    return {k: stored_offline(e) for k, e in (("stats", "agnews_stats"), ("finetune", "bert_finetune"),
                                       ("attention", "bert_attention"), ("fewshot", "bert_fewshot"))}


def test_small_text_helpers():
    from analysis.bert import chapter as ch

    assert ch.epochs_text(1.0) == "1 epoch" and ch.epochs_text(2.0) == "2 epochs" and ch.epochs_text(0.5) == "0.5 epochs"
    assert ch.model_short("bert_base_uncased") == "bert-base-uncased"
    assert "(" not in ch.model_short("minilm_l6")


def test_setup_text_names_the_run_and_is_profile_true(runs):
    from analysis.bert import chapter as ch

    ft = runs["finetune"]
    text = ch.setup_text(ft)
    assert ch.model_short(ft.config["model"]) in text
    assert "False" not in text and "epoch(s)" not in text and " cpu " not in text
    if ft.config["model"] != "bert_base_uncased":
        assert "stands in for the assignment's bert-base-uncased" in text
    fs = runs["fewshot"]
    assert ch.model_short(fs.config["model"]) in ch.fewshot_model_text(fs)


def test_cls_claim_is_counted_from_the_table(runs):
    from analysis.bert import chapter as ch

    att = runs["attention"]
    rows = ch.cls_targets(att)
    assert len(rows) == len(att.rows("chosen")) and all(len(r["pre"]) == 3 for r in rows)
    fell = sum(r["special_ft"] < r["special_pre"] for r in rows)
    assert f"in {fell} of the {len(rows)}" in ch.cls_sentence(att)
    assert "`" not in ch.cls_sentence(att) + ch.bench_sentence()  # used inline: no markdown


def test_tables_have_no_python_reprs(runs):
    from analysis.bert import chapter as ch
    from analysis.report import md_table_text

    for df in (ch.counts_table(runs["stats"]), ch.lengths_table(runs["stats"]), ch.curve_table(runs["finetune"]),
               ch.per_class_table(runs["finetune"]), ch.chosen_table(runs["attention"]),
               ch.layer_table(runs["attention"]), ch.top_heads(runs["attention"]), ch.cls_table(runs["attention"]),
               ch.fewshot_table(runs["fewshot"])):
        text = md_table_text(df)
        assert not re.search(r"\bnan\b", text.lower()) and "np." not in text and "None" not in text


def test_figures_fit_the_text_width_with_legible_fonts(runs):
    from matplotlib.text import Text

    from analysis.bert import chapter as ch
    from analysis.bert import figures as F

    att = runs["attention"]
    figs = [ch.fig_lengths(runs["stats"]), ch.fig_learning_curve(runs["finetune"]),
            ch.fig_confusion(runs["finetune"].arrays["confusion"]), ch.fig_attention_heads(att, 0),
            ch.fig_chosen_overview(att), ch.fig_attention_pair(att), ch.fig_attention_change(att),
            ch.fig_fewshot(runs["fewshot"])]
    for fig in figs:
        assert fig.get_size_inches()[0] <= F.WIDTH + 1e-6
        assert min(t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()) >= 7
