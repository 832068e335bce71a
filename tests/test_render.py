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
