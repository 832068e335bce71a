"""The book check: every listed .qmd executes under the smoke profile; refs and citations resolve."""

import textwrap

import pytest

from analysis import book
from analysis.paths import PROJECT_ROOT

FILES = book.book_files()


def test_quarto_yml_lists_existing_files_and_a_references_chapter():
    assert FILES and all(p.exists() for p in FILES), [p for p in FILES if not p.exists()]
    assert any(p.name == "references.qmd" for p in FILES)
    assert FILES[0].name == "index.qmd"


def test_every_crossref_has_a_target_and_every_citation_is_in_the_bibliography():
    docs = [book.parse(p) for p in FILES]
    assert book.static_problems(docs, book.bibliography_keys()) == []


def test_checker_finds_dangling_refs_and_unknown_citations(tmp_path):
    qmd = tmp_path / "x.qmd"
    qmd.write_text(textwrap.dedent("""\
        # X {#sec-x}
        See @sec-x, @fig-ok and @fig-missing; also @tbl-nope. As shown [@known; @unknown2020].
        Mail me at a@b.com, and `@fig-in-code` is code.

        ```{python}
        #| label: fig-ok
        #| fig-cap: "ok"
        @decorator_in_code
        def f(): pass
        ```
        Inline `{python} 1 + 1` value.
        """))
    doc = book.parse(qmd)
    assert book.labels(doc) == {"sec-x", "fig-ok"}
    assert [c.source for c in doc.cells] == ["@decorator_in_code\ndef f(): pass", "print(1 + 1)"]
    problems = book.static_problems([doc], {"known"})
    assert len(problems) == 3
    assert any("@fig-missing" in p for p in problems) and any("@tbl-nope" in p for p in problems)
    assert any("unknown2020" in p for p in problems)


def test_checker_flags_a_figure_cell_without_a_figure(tmp_path):
    qmd = tmp_path / "y.qmd"
    qmd.write_text('```{python}\n#| label: fig-empty\nx = 1\n```\n\nValue `{python} x`.\n')
    nb = book.execute(book.parse(qmd))
    assert book.output_problems(nb) == ["cell fig-empty: no figure in its output"]
    assert "".join(o["text"] for o in nb.cells[1].outputs).strip() == "1"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PROJECT_ROOT)) for p in FILES])
def test_document_executes_under_smoke(path):
    nb = book.execute(book.parse(path), profile="smoke")
    assert book.output_problems(nb) == []


def test_checker_flags_inline_code_that_quarto_would_print_literally(tmp_path):
    qmd = tmp_path / "z.qmd"
    qmd.write_text("Runs: `{python} 1`. Printed as text: `` `{python} 2` ``.\n")
    problems = book.static_problems([book.parse(qmd)], set())
    assert len(problems) == 1 and "double-backtick" in problems[0]


def test_bibliography_parses():
    """references.bib is read by Pandoc (a missing brace stops every render at the first chapter)."""
    import shutil
    import subprocess

    import pytest

    from analysis.paths import PROJECT_ROOT

    if shutil.which("quarto") is None:
        pytest.skip("Quarto (its pandoc) is not on PATH")
    proc = subprocess.run(["quarto", "pandoc", str(PROJECT_ROOT / "references.bib"), "-f", "bibtex", "-t", "csljson"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def _pdf_with_bookmarks(path, n_pages, bookmarks):
    """A blank PDF of ``n_pages`` pages with top-level bookmarks (title, 1-based page)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(n_pages):
        writer.add_blank_page(width=595, height=842)
    for title, page in bookmarks:
        writer.add_outline_item(title, page - 1)
    with open(path, "wb") as f:
        writer.write(f)
    return path


def test_page_budget_counts_front_matter_and_main_text_from_the_bookmarks(tmp_path):
    marks = [("Preface", 3), ("1. Segment Anything on lung X-rays", 4), ("2. Two", 7), ("References", 32),
             ("Appendices", 34), ("A. Outputs", 35)]
    pdf = _pdf_with_bookmarks(tmp_path / "ok.pdf", 40, marks)
    assert book.page_budget(pdf, "Segment Anything on lung X-rays") == {"start": 4, "front": 3, "main": 30}
    assert book.budget_problems(pdf, "Segment Anything on lung X-rays") == []
    # one page more on each side: both limits named
    long = _pdf_with_bookmarks(tmp_path / "long.pdf", 42, [(t, p + 1) for t, p in marks[:3]]
                               + [(t, p + 2) for t, p in marks[3:]])
    problems = "\n".join(book.budget_problems(long, "Segment Anything on lung X-rays"))
    assert "4 pages before chapter 1 (at most 3)" in problems and "is 31 pages" in problems
    # references as the last bookmark: the main text runs to the PDF's end; a missing chapter is named
    tail = _pdf_with_bookmarks(tmp_path / "tail.pdf", 10, [("1. Segment Anything on lung X-rays", 2), ("References", 9)])
    assert book.page_budget(tail, "Segment Anything on lung X-rays")["main"] == 9
    assert "no top-level bookmark 'Nowhere'" in book.budget_problems(tail, "Nowhere")[0]


def test_first_chapter_title_is_chapter_one_heading():
    heading = FILES[1].read_text().splitlines()[0]
    assert heading.startswith("# ") and book.first_chapter_title() in heading and "{" not in book.first_chapter_title()


@pytest.mark.skipif(not (PROJECT_ROOT / "_book").is_dir(), reason="no rendered book in _book/ (make render)")
def test_rendered_pdf_keeps_the_page_budget():
    """At most 3 pages before chapter 1 and 30 from chapter 1 to the end of the references, in the
    last rendered book (_book/; render it first: make render)."""
    pdfs = sorted((PROJECT_ROOT / "_book").glob("*.pdf"))
    assert len(pdfs) == 1, pdfs
    assert book.budget_problems(pdfs[0]) == []
