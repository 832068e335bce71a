"""The chain-of-thought figures draw (and do not crash) when every CoT answer is INVALID."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd

from analysis.cot import figures


class FakeRun:
    """What the figures read from a stored run: metrics, config and tables (None where JSON stored NaN)."""

    metrics = {"n": 3, "n_flip_to_correct": 0, "n_flip_to_incorrect": 2, "n_correct_correct": 0,
               "n_incorrect_incorrect": 1}
    config = {"model": "flan_t5_base"}
    tables = {
        "probe": [{"steps_kept": k, "n": 0, "agree": None, "n_all_cuts": 0, "agree_all_cuts": None} for k in range(4)],
        "letters": [{"letter": x, "gold": 1, "direct": 1, "cot": 0} for x in "ABCD"] + [
            {"letter": "INVALID", "gold": 0, "direct": 0, "cot": 3}],
        "by_group": [{"group": "g", "n": 3, "acc_direct": 0.33, "acc_cot": 0.0}],
    }

    def table(self, name):
        return pd.DataFrame(self.tables[name])


def test_all_invalid_figures_draw():
    run = FakeRun()
    for fig in (figures.early_answering(run), figures.flip_bars(run), figures.letter_distribution(run),
                figures.accuracy_by_group(run)):
        fig.canvas.draw()  # renders: a None reaching matplotlib would raise here
    texts = [t.get_text() for t in figures.early_answering(run).axes[0].texts]
    assert any("no valid final CoT answer" in t for t in texts)


def _texts(fig):
    """Every visible text artist of a figure (tick labels, titles, legends, annotations)."""
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def test_figures_print_at_page_size_with_readable_labels():
    """Drawn no wider than the PDF text width, so sizes are page sizes; every label >= 7 pt."""
    run = FakeRun()
    for fig in (figures.early_answering(run), figures.flip_bars(run), figures.letter_distribution(run),
                figures.accuracy_by_group(run)):
        assert fig.get_figwidth() <= figures.TEXT_WIDTH
        small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < 7]
        assert not small


def test_flip_bars_title_names_the_model_not_its_id():
    title = figures.flip_bars(FakeRun()).axes[0].get_title()
    assert "FLAN-T5-base" in title and "flan_t5_base" not in title


def test_legends_sit_above_the_bars():
    """The legend of the bar charts is outside the axes: it cannot cover a bar."""
    run = FakeRun()
    for fig in (figures.accuracy_by_group(run), figures.letter_distribution(run)):
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent()
        assert legend.y0 >= ax.get_window_extent().y1 - 1
