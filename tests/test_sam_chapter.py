"""SAM chapter helpers read stored runs only: prose names the model, figures print at >= 7 pt."""

import re

import matplotlib
import pytest

matplotlib.use("Agg")




@pytest.fixture(scope="module")
def runs(stored_offline):
    return stored_offline("sam_prompts"), stored_offline("sam_auto")


def _text_sizes(fig):
    from matplotlib.text import Text

    return [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]


def test_verdict_words_follow_the_numbers():
    from analysis.sam import chapter as ch

    assert ch.change(0.228, 0.223) == "lowers" and ch.change(0.003, 0.070) == "lifts"
    assert ch.change(0.5, 0.5) == "leaves unchanged" and ch.change(float("nan"), 0.5) == "changes"
    assert ch.compare(0.3, 0.1) == "more" and ch.compare(0.1, 0.3, "larger", "smaller") == "smaller"
    assert ch.meets(ch.USABLE_F1) == "clears" and ch.meets(0.225) == "misses"
    assert ch.meets(float("nan")).startswith("cannot")


def test_model_facts_come_from_the_registry(runs):
    from analysis.models import spec
    from analysis.sam import chapter as ch

    prun, _ = runs
    assert ch.model_short(prun) == spec(prun.config["model"]).display and "(" not in ch.model_short(prun)
    box_only = type("R", (), {"config": {"model": "litemedsam"}})()
    full = type("R", (), {"config": {"model": "sam_vit_h"}})()
    assert ch.prompt_kinds(box_only) == "box" and ch.prompt_kinds(full) == "point, box and mask"


def test_chapter_module_holds_no_prose_and_no_model_names():
    """The narrative lives in the chapters; helpers read model facts from the registry, never an id."""
    import inspect

    from analysis.sam import chapter as ch

    src = inspect.getsource(ch)
    assert not any(f"\"{m}\"" in src or f"'{m}'" in src for m in ("litemedsam", "sam_vit_h", "sam_vit_b"))
    assert not [n for n in dir(ch) if n.endswith(("_text", "_note", "_reminder"))]


def test_result_words_agree_with_the_stored_numbers(runs):
    from analysis.sam import chapter as ch

    prun, _ = runs
    before, after = ch.strategy_on_curve(prun, "point_per_lung"), ch.curve_value(prun, "points", 1)
    assert ch.change(before, after) == ("lifts" if after > before + 0.0005 else "lowers" if after < before - 0.0005
                                        else "leaves unchanged")
    for role in ("typical", "worst"):
        r = ch.image_result(prun, role)
        over = r["pred_frac"] - r["gt_frac"]
        assert r["area"] == ("over-segments" if over > 0.01 else "under-segments" if over < -0.01
                             else "matches the lung area")
        assert r["best_f1"] >= max(r["f1"], r["point_f1"], r["atlas_f1"])
    mm = ch.multimask_gap(prun)
    s = prun.table("summary")
    assert mm["n"] == len(s) and abs(mm["gap"] - (s["mm_oracle_mean"] - s["mm_top_mean"]).max()) < 1e-12
    assert ch.source_count(prun, "MCU") + ch.source_count(prun, "CHN") == prun.metrics["n_images"]
    assert ch.empty_masks(prun) == 0


def test_benchmark_names_its_model(runs):
    from analysis.models import spec
    from analysis.sam import chapter as ch

    prun, _ = runs
    bench = ch.bench_results()
    if bench is None:
        pytest.skip("bench/results/sam.json not stored")
    assert bench["model_display"] == spec(bench["model"]).display and bench["device"]
    assert ch.bench_is_this_model(bench, prun) == (bench["model"] == prun.config["model"])
    assert not ch.bench_is_this_model(None, prun)
    assert ch.bench_profile({"model": "litemedsam"}) == "offline" and ch.bench_profile({"model": "sam_vit_h"}) == "full"


def test_tables_have_no_python_reprs(runs):
    from analysis.report import md_table_text
    from analysis.sam import chapter as ch

    prun, auto = runs
    for df in (ch.strategy_table(prun), ch.breakdown_table(prun), ch.multimask_table(prun), ch.auto_table(auto),
               ch.demo_table(auto), ch.transform_table()):
        text = md_table_text(df)
        assert not re.search(r"\bnan\b", text.lower()) and "np." not in text and "None" not in text


def test_no_screenshots_means_nothing_printed(runs, monkeypatch, tmp_path):
    from analysis.sam import chapter as ch

    monkeypatch.setattr(ch, "DEMO_DIR", tmp_path)
    (tmp_path / "README.md").write_text("not a screenshot")
    assert ch.screenshot_paths() == [] and ch.screenshots_figure() is None


def test_figures_fit_the_text_width_with_legible_fonts(runs, tmp_path):
    """Saved as Quarto saves them (tight bounding box), no figure is wider than the PDF's text block,
    so none is scaled down and every label prints at >= 7 pt."""
    from PIL import Image

    from analysis.sam import chapter as ch
    from analysis.sam import figures as F

    prun, auto = runs
    figs = [F.demo(auto), F.overlay(prun, "example"), F.examples_grid(prun), F.gallery(prun),
            F.robustness(ch.curve_summary(prun)), F.atlas(prun)]
    assert F.WIDTH <= 5.9
    for i, fig in enumerate(figs):
        w, _ = fig.get_size_inches()
        assert w <= F.WIDTH + 1e-6
        assert min(_text_sizes(fig)) >= 7
        fig.savefig(tmp_path / f"{i}.png", dpi=100, bbox_inches="tight")
        assert Image.open(tmp_path / f"{i}.png").size[0] <= F.WIDTH * 100 + 1
        titles = " ".join(ax.get_title() for ax in fig.axes)
        assert "_per_lung" not in titles and not re.search(r"\b(MCU|CHN)\b", titles)


def test_appendix_listing_is_the_current_source():
    """The appendix shows the 2.1 transforms as a static block (cell output would trip the book check's
    None rule); it must equal the source in analysis/data/lung.py."""
    from analysis.paths import PROJECT_ROOT
    from analysis.sam import chapter as ch

    appendix = (PROJECT_ROOT / "appendices" / "code.qmd").read_text()
    assert ch.transform_code().strip() in appendix
