"""The preface's values (analysis/preface.py), the Colab link, and envinfo's place in the imports."""

from __future__ import annotations

import re
import subprocess
import sys
from urllib.parse import urlparse

import pytest
import yaml

from analysis import envinfo, experiments, preface, repo
from analysis.models import MODELS, spec
from analysis.paths import PROJECT_ROOT


@pytest.mark.parametrize("remote, slug", [
    ("https://github.com/group-7/dl-assignment.git", "group-7/dl-assignment"),
    ("https://github.com/group-7/dl.assignment", "group-7/dl.assignment"),
    ("https://user@github.com/o/r/", "o/r"),
    ("git@github.com:o/r.git", "o/r"),
    ("ssh://git@github.com/o/r.git", "o/r"),
    ("https://gitlab.com/o/r.git", None),
    ("/srv/git/r.git", None),
    ("", None),
])
def test_github_slug_parses_https_and_ssh_remotes(remote, slug):
    assert repo.github_slug(remote) == slug


def test_colab_url_from_the_remote_or_none(monkeypatch):
    url = urlparse(preface.colab_url("o/r"))
    assert (url.scheme, url.netloc) == ("https", "colab.research.google.com")
    assert url.path == f"/github/o/r/blob/main/{preface.NOTEBOOK}"
    assert (PROJECT_ROOT / preface.NOTEBOOK).is_file()
    monkeypatch.setattr(repo, "github_slug", lambda *a, **k: None)
    assert preface.colab_url() is None  # no remote: the preface gives the path, never a placeholder


def test_reproduce_section_prints_the_badge_only_from_the_helper():
    """The Colab link is built from the git remote (analysis.repo); without one the appendix says how to
    get it (repo.colab_hint), never a placeholder."""
    text = (PROJECT_ROOT / "appendices" / "reproducibility.qmd").read_text()
    assert "<group>" not in text and "<repo>" not in text
    assert "preface.colab_url()" in text and "colab_hint()" in text and "figures/colab-badge.svg" in text
    assert (PROJECT_ROOT / "figures" / "colab-badge.svg").is_file()
    assert preface.NOTEBOOK in text
    assert "{#sec-reproduce}" in text and "{#sec-reproduce}" not in (PROJECT_ROOT / "index.qmd").read_text()


def test_importing_envinfo_imports_no_experiment_or_book_module():
    code = ("import sys, analysis.envinfo; "
            "print([m for m in sys.modules if m in ('analysis.experiments', 'analysis.preface') "
            "or m.endswith('.chapter') or m.endswith('.experiments')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("profile", ["offline", "full", "smoke"])
def test_deviations_follow_the_registry_and_configs(profile):
    cfg = {name: exp.configs[profile] for name, exp in experiments.load_all().items()}
    dev = preface.deviations(profile)
    assert set(dev) == {"demo", "sam", "lung", "encoder", "trainer", "fewshot", "agnews", "cot", "scienceqa"}
    for row in ("sam", "encoder", "fewshot"):
        model = spec({"sam": cfg["sam_prompts"].model, "encoder": cfg["bert_finetune"].model,
                      "fewshot": cfg["bert_fewshot"].model}[row])
        assert dev[row] == (model.display, "yes" if model.assignment else "no")
    cot = spec(cfg["cot_scienceqa"].model)
    assert dev["cot"].same == ("yes" if cot.assignment else "allowed" if cot.chat else "no")
    assert dev["agnews"].same == ("yes" if cfg["bert_finetune"].source == "hub" else "no")
    ft = cfg["bert_finetune"]
    assert dev["trainer"].same == ("yes" if (ft.epochs, ft.batch_size, ft.learning_rate, ft.limit_train)
                                   == (3, 16, 2e-5, None) else "no")
    assert f"batch {ft.batch_size}," in dev["trainer"].used
    grid = cfg["sam_auto"].points_per_side  # task 1.2 says what ran: the model and the automatic mode's grid
    assert spec(cfg["sam_auto"].model).display in dev["demo"].used and f"{grid} x {grid} point grid" in dev["demo"].used
    # cells name models as sentences do, never by registry id
    for used, _ in dev.values():
        assert not any(re.search(rf"\b{re.escape(name)}\b", used) for name in MODELS), used


def test_deviations_lung_row_reads_the_stored_run(monkeypatch):
    class FakeRun:
        def __init__(self, sources):
            self.sources = sources

        def table(self, name):
            import pandas as pd

            assert name == "records"
            return pd.DataFrame({"source": self.sources})

    lookup = experiments.lookup
    for sources, same in ((["MCU", "CHN", "MCU"], "no"), (["JSRT"], "yes"), ([], "yes")):
        monkeypatch.setattr(experiments, "lookup", lambda name, profile=None, store=None, s=sources:
                            FakeRun(s) if name == "sam_prompts" else lookup(name, profile, store))
        assert preface.deviations("offline")["lung"].same == same
    monkeypatch.setattr(experiments, "lookup", lambda *a, **k: None)
    assert preface.deviations("offline")["lung"].used == "not computed yet"


def test_book_config_has_no_render_date_and_offers_the_pdf():
    book = yaml.safe_load((PROJECT_ROOT / "_quarto.yml").read_text())["book"]
    assert "date" not in book  # a render date would postdate the assignment's deadline
    assert "pdf" in book["downloads"]
    assert book["appendices"][-1] == "appendices/reproducibility.qmd"


def test_tables_of_the_reproducibility_appendix():
    assert list(preface.profiles_table()["Profile"]).count("**offline**") == 1
    packages = preface.packages_table()
    assert packages["Package"].iloc[0] == "python" and "torch" in set(packages["Package"])
    models = preface.models_table("offline")
    assert set(models["Ch."]) == {"1", "2", "3", "4"}
    assert preface.chapter_number("chapters/03-bert-attention.qmd") == "3"
