"""The book rendered by real Quarto (offline profile, from the stored results, into a temporary
folder), checked as a reader would meet it. Skipped, with the reason, where Quarto is not on PATH;
CI installs it (.ci/run)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import book
from analysis.paths import PROJECT_ROOT

QUARTO = shutil.which("quarto")
needs_quarto = pytest.mark.skipif(
    QUARTO is None,
    reason="Quarto is not on PATH: install Quarto >= 1.9 (quarto.org, or `pip install quarto-cli`; "
    "on the project's machines ../shared/tools/quarto/install .cache/quarto) to run the render test",
)


def _missing_offline_runs() -> list[str]:
    from analysis.experiments import load_all, lookup

    return [name for name in sorted(load_all()) if lookup(name, "offline") is None]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, shared_data):
    missing = _missing_offline_runs()
    # A render computes what is missing (an hour of CPU for some runs): that is not a test's job.
    assert not missing, (f"stored offline runs missing for {missing}: "
                         "run `python -m analysis run all --profile offline` first")
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, QUARTO_PYTHON=sys.executable,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("QUARTO_PROFILE", None)
    started = time.perf_counter()
    proc = subprocess.run([QUARTO, "render", "--profile", "offline", "--output-dir", str(out)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"quarto render failed (exit {proc.returncode}) after {took:.0f} s:\n{log[-6000:]}"
    print(f"quarto render --profile offline: {took:.1f} s")
    return out


@needs_quarto
def test_rendered_book_has_every_page_and_no_reader_visible_defect(rendered):
    problems = book.rendered_problems(rendered, book.book_files())
    assert problems == [], "\n".join(problems)


def test_render_checks_catch_defects(tmp_path):
    """The checks fail on what they are meant to catch (a broken copy of a tiny 'book')."""
    (tmp_path / "chapters").mkdir()
    (tmp_path / "index.html").write_text(
        "<html><body><h2>1.1 1.1 Should we</h2><p>Of these, np.int64(19) chains; F1 nan; see ?@fig-x."
        "</p><table><tr><td>None</td></tr></table><img src='missing.png'>"
        "<pre>x[..., None]</pre></body></html>")
    problems = book.rendered_problems(tmp_path, [tmp_path / "index.qmd", tmp_path / "chapters" / "a.qmd"],
                                      root=tmp_path)
    text = "\n".join(problems)
    for expected in ("chapters/a.html: missing", "doubled section number", "raw numpy repr", "raw NaN",
                     "unresolved reference", "raw None", "image missing.png does not exist", "expected one PDF"):
        assert expected in text, (expected, text)
    assert "x[..., None]" not in text  # code listings are not prose
