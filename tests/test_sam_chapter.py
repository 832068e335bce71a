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


def test_prose_names_the_model_and_the_point_settings(runs):
    from analysis.sam import chapter as ch

    prun, auto = runs
    short = ch.model_short(prun)
    assert "(" not in short and short in ch.model_note(prun)
    assert short in ch.suitability_text(prun, auto) and short in ch.auto_text(auto)
    text = ch.points_text(prun)
    assert "negative point" in text and "nothing else" in text
    assert "upper bound for the rule" in ch.auto_text(auto) and "Neither" in ch.auto_text(auto)
    assert "@" not in ch.points_text(prun) + ch.grid_text(auto)  # inline output: no cross-references
    assert "`" not in ch.grid_text(auto)


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
    assert ch.screenshots_text() == "" and ch.screenshots_figure() is None


def test_figures_fit_the_text_width_with_legible_fonts(runs):
    from analysis.sam import chapter as ch
    from analysis.sam import figures as F

    prun, auto = runs
    figs = [F.demo(auto), F.overlay(prun, "example"), F.examples_grid(prun), F.gallery(prun),
            F.robustness(ch.curve_summary(prun)), F.atlas(prun)]
    for fig in figs:
        w, _ = fig.get_size_inches()
        assert w <= F.WIDTH + 1e-6
        assert min(_text_sizes(fig)) >= 7


def test_appendix_listing_is_the_current_source():
    """The appendix shows the 2.1 transforms as a static block (cell output would trip the book check's
    None rule); it must equal the source in analysis/data/lung.py."""
    from analysis.paths import PROJECT_ROOT
    from analysis.sam import chapter as ch

    appendix = (PROJECT_ROOT / "appendices" / "code.qmd").read_text()
    assert ch.transform_code().strip() in appendix
