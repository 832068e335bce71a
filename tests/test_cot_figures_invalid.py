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
