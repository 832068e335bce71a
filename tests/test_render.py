"""The book rendered by real Quarto (offline profile, from the stored results, into a temporary
folder), checked as a reader would meet it. Skipped, with the reason, where Quarto is not on PATH;
CI installs it (.ci/run)."""

from conftest import needs_quarto

from analysis import book


@needs_quarto
def test_rendered_book_has_every_page_and_no_reader_visible_defect(rendered):
    """(``rendered``: the offline book rendered once per test session, tests/conftest.py)"""
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


def test_overflow_check_catches_text_off_the_page(tmp_path):
    """``pdf_overflow`` names a page whose text runs past the right edge (pdftotext needed)."""
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pytest

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    fig = plt.figure(figsize=(4, 3))
    fig.text(0.1, 0.5, "inside")
    pdf = tmp_path / "a.pdf"
    fig.savefig(pdf)
    assert book.pdf_overflow(pdf) == []
    fig.text(0.9, 0.3, "a-long-unbroken-line-that-runs-off-the-page")
    fig.savefig(pdf)
    problems = book.pdf_overflow(pdf)
    assert len(problems) == 1 and "page 1: text runs off the page" in problems[0]
