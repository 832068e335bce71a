"""Check the Quarto book without Quarto.

Quarto cannot be installed everywhere (its PyPI package downloads a binary), so the test suite
checks what a render depends on: every ``.qmd`` listed in ``_quarto.yml`` has its Python cells and
inline ``{python}`` expressions executed in order in one Jupyter kernel (as Quarto does, one kernel
per document, working directory = the document's folder) under the ``smoke`` profile; ``fig-``
cells must produce an image and ``tbl-`` cells an output; every ``@fig-``/``@tbl-``/``@sec-``
reference must have a target and every citation key must be in the bibliography. The text the
cells print is held to the same rules as a rendered book (``text_problems``): no raw Python
reprs, no tracebacks, no unresolved references; ``rendered_problems`` applies them, plus checks of
headings, images and page count, to Quarto's output (tests/test_render.py).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from pathlib import Path

import yaml

from .paths import PROJECT_ROOT

CELL_RE = re.compile(r"^```\{python\}[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
FENCE_RE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_RE = re.compile(r"`\{python\}\s+([^`]+)`")
LITERAL_INLINE_RE = re.compile(r"``+\s*`?\{python\}")  # inside a longer code span Quarto prints it as text
OPTION_RE = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")
SEC_ID_RE = re.compile(r"\{#((?:sec|fig|tbl|eq|lst)-[A-Za-z0-9_-]+)[^}]*\}")
XREF_RE = re.compile(r"(?<![\w@])@((?:sec|fig|tbl|eq|lst)-[A-Za-z0-9_-]*[A-Za-z0-9_])")
CITE_RE = re.compile(r"(?<![\w@`])-?@([A-Za-z0-9_][A-Za-z0-9_:.#$%&+?<>~/-]*[A-Za-z0-9_])")
BIB_KEY_RE = re.compile(r"@\w+\s*\{\s*([^,\s]+)\s*,")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
CROSSREF_PREFIXES = ("sec-", "fig-", "tbl-", "eq-", "lst-")

# What must never reach a reader (rendered text or a cell's printed output):
TEXT_RULES: tuple[tuple[str, re.Pattern], ...] = (
    ("raw numpy repr", re.compile(r"\bnp\.(?:u?int|float|bool|str)\w*\(")),
    ("raw NaN", re.compile(r"(?<![\w-])(?:nan|NaN|<NA>)(?![\w-])")),
    # "None of them ..." is English; a None before punctuation, a digit or the end is a repr
    ("raw None", re.compile(r"(?<![\w`'\"])None(?![\w`'\"])(?!\s+[a-z])")),
    ("traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("unresolved reference", re.compile(r"\?@(?:sec|fig|tbl|eq|lst)-[\w-]+|\?\?")),
)
# A heading whose typed number Quarto numbers again: "1.1 1.1 Should we ..." (one line; a word
# follows, so two equal numbers in neighbouring table cells are not taken for one)
DOUBLED_NUMBER_RE = re.compile(r"(?m)^[ \t]*(\d+(?:\.\d+)+)\.?[ \t]+\1\.?[ \t]+[A-Z][a-z]")


@dataclasses.dataclass
class Cell:
    source: str
    options: dict
    inline: bool = False  # an inline `{python} expr`, executed as print(expr)


@dataclasses.dataclass
class Document:
    path: Path
    text: str
    cells: list[Cell]

    @property
    def prose(self) -> str:
        """The text without code blocks (where cross-references and citations live)."""
        return FENCE_RE.sub("", self.text)


def book_files(root: Path = PROJECT_ROOT) -> list[Path]:
    """The documents ``_quarto.yml`` lists (book chapters, parts and appendices), in order."""
    config = yaml.safe_load((root / "_quarto.yml").read_text())
    book = config.get("book", {})
    files: list[Path] = []

    def walk(entries):
        for entry in entries or []:
            if isinstance(entry, str):
                files.append(root / entry)
            elif isinstance(entry, dict):
                if isinstance(entry.get("part"), str) and entry["part"].endswith(".qmd"):
                    files.append(root / entry["part"])
                walk(entry.get("chapters"))

    walk(book.get("chapters"))
    walk(book.get("appendices"))
    return files


def bibliography_keys(root: Path = PROJECT_ROOT) -> set[str]:
    config = yaml.safe_load((root / "_quarto.yml").read_text())
    bibs = config.get("bibliography") or []
    bibs = [bibs] if isinstance(bibs, str) else bibs
    keys: set[str] = set()
    for bib in bibs:
        keys |= set(BIB_KEY_RE.findall((root / bib).read_text()))
    return keys


def parse(path: Path) -> Document:
    """Split a .qmd into Python cells (with their ``#|`` options) and inline expressions, in order."""
    text = path.read_text()
    events: list[tuple[int, Cell]] = []
    for match in CELL_RE.finditer(text):
        options, body = {}, []
        for line in match.group(1).splitlines():
            opt = OPTION_RE.match(line)
            if opt and not body:
                options[opt.group(1)] = opt.group(2).strip("\"'")
            else:
                body.append(line)
        events.append((match.start(), Cell("\n".join(body), options)))
    code_spans = [m.span() for m in FENCE_RE.finditer(text)]
    for match in INLINE_RE.finditer(text):
        if any(a <= match.start() < b for a, b in code_spans):
            continue
        events.append((match.start(), Cell(f"print({match.group(1).strip()})", {}, inline=True)))
    events.sort(key=lambda e: e[0])
    return Document(path, text, [cell for _, cell in events])


def labels(doc: Document) -> set[str]:
    found = set(SEC_ID_RE.findall(doc.prose))
    found |= {c.options["label"] for c in doc.cells if "label" in c.options}
    return found


def references(doc: Document) -> tuple[set[str], set[str]]:
    """(cross-reference targets, citation keys) used in the prose."""
    prose = INLINE_RE.sub("", doc.prose)
    prose = re.sub(r"`[^`\n]*`", "", prose)  # inline code is not prose
    prose = re.sub(r"<[^>\s]+@[^>\s]+>", "", prose)  # <mailto-like> links
    xrefs = set(XREF_RE.findall(prose))
    cites = {k for k in CITE_RE.findall(prose) if not k.startswith(CROSSREF_PREFIXES)}
    return xrefs, cites


def to_notebook(doc: Document):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for cell in doc.cells:
        if cell.options.get("eval", "true").lower() == "false":
            continue
        code = nbformat.v4.new_code_cell(cell.source)
        code.metadata["quarto"] = dict(cell.options, inline=cell.inline)
        nb.cells.append(code)
    return nb


def execute(doc: Document, profile: str = "smoke", timeout: int = 1800):
    """Run the document's cells in one fresh kernel; returns the executed notebook."""
    from nbclient import NotebookClient

    nb = to_notebook(doc)
    env_before = dict(os.environ)
    os.environ.update({
        "QUARTO_PROFILE": profile,
        "QUARTO_PROJECT_ROOT": str(PROJECT_ROOT),
        "QUARTO_DOCUMENT_PATH": str(doc.path.parent),
        "QUARTO_DOCUMENT_FILE": doc.path.name,
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(doc.path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return nb


def _cell_name(cell) -> str:
    meta = cell.metadata.get("quarto", {})
    if meta.get("inline"):
        return f"inline `{cell.source.removeprefix('print(').removesuffix(')')}`"
    return f"cell {meta.get('label') or repr(cell.source.splitlines()[0][:50] if cell.source else '')}"


def output_problems(nb) -> list[str]:
    """Figure cells without an image, table cells without output, stray errors."""
    problems = []
    for cell in nb.cells:
        label = cell.metadata.get("quarto", {}).get("label", "")
        outputs = cell.get("outputs", [])
        images = sum(1 for o in outputs if set(o.get("data", {})) & {"image/png", "image/svg+xml", "image/jpeg"})
        if label.startswith("fig-") and not images:
            problems.append(f"cell {label}: no figure in its output")
        if label.startswith("fig-") and images > 1 and "fig-subcap" not in cell.metadata.get("quarto", {}):
            problems.append(f"cell {label}: {images} figures in its output (shown twice? close it in pyplot)")
        if label.startswith("tbl-") and not outputs:
            problems.append(f"cell {label}: no table in its output")
        if cell.metadata.get("quarto", {}).get("inline"):
            text = "".join(o.get("text", "") for o in outputs).strip()
            if not text:
                problems.append(f"inline `{cell.source}` printed nothing")
    return problems


def text_problems(text: str, where: str, skip: tuple[str, ...] = (), doubled: bool = True) -> list[str]:
    """Reader-visible text that breaks a rule of ``TEXT_RULES`` (with a snippet of context);
    ``skip`` names rules not to apply; ``doubled``: also look for doubled heading numbers."""
    problems = []
    for name, rule in TEXT_RULES:
        if name in skip:
            continue
        for match in rule.finditer(text):
            start, end = max(0, match.start() - 40), min(len(text), match.end() + 40)
            snippet = " ".join(text[start:end].split())
            problems.append(f"{where}: {name}: ...{snippet}...")
    for match in DOUBLED_NUMBER_RE.finditer(text if doubled else ""):
        problems.append(f"{where}: doubled section number {match.group(1)!r}: {match.group(0).strip()[:60]}")
    return problems


def _output_text(cell) -> str:
    """What a cell shows a reader: printed text, markdown and plain-text results (not images)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        data = out.get("data", {})
        for mime in ("text/markdown", "text/html"):
            if mime in data:
                parts.append(data[mime] if isinstance(data[mime], str) else "".join(data[mime]))
                break
        else:
            if "text/plain" in data and not set(data) & {"image/png", "image/svg+xml", "image/jpeg"}:
                parts.append(data["text/plain"] if isinstance(data["text/plain"], str) else "".join(data["text/plain"]))
    # a widget's inline data (<script type="application/json">) is read by its script, not by a reader
    return re.sub(r"(?is)<script\b.*?</script>", " ", "".join(parts))


def _html_text(html_source: str) -> str:
    """Visible text of an HTML page (scripts, styles and the search index left out)."""
    import html as html_lib

    body = re.sub(r"(?is)<(script|style|noscript|pre)\b.*?</\1>", " ", html_source)  # <pre>: code listings
    body = re.sub(r"(?s)<!--.*?-->", " ", body)
    body = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h\d|td|th|pre|table)>", "\n", body)
    body = re.sub(r"<[^>]+>", " ", body)
    return html_lib.unescape(body)


def offline_only_names() -> tuple[str, ...]:
    """What only the offline profile uses, from the model registry: the offline models' names and the
    packages that ship them. (A device such as "CPU (2 cores)" is what a run recorded, not a setting.)"""
    from .models import MODELS

    offline = [m for m in MODELS.values() if m.offline]
    return tuple(dict.fromkeys([m.display for m in offline] + [p for m in offline for p in m.packages]))


def offline_mentions(text: str, where: str, names: tuple[str, ...] | None = None) -> list[str]:
    """Sentences of a full-profile page that name an offline model or its package without saying that
    they speak of the offline profile (the word "offline" in the sentence)."""
    names = offline_only_names() if names is None else names
    problems = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
        hits = [n for n in names if n.lower() in sentence.lower()]
        if hits and "offline" not in sentence.lower():
            problems.append(f"{where}: names {hits[0]!r} outside the offline profile: {' '.join(sentence.split())[:120]!r}")
    return problems


def pdf_overflow(pdf: Path, edge_pt: float = 5.0) -> list[str]:
    """Words that run off a PDF page or into its last ``edge_pt`` points (text wider than the
    column: a long unbroken line in a code block, a wide table), from poppler's ``pdftotext -bbox``;
    [] when pdftotext is not installed (Debian: poppler-utils)."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("pdftotext") is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bbox.html"
        subprocess.run(["pdftotext", "-bbox", str(pdf), str(out)], check=True, capture_output=True, timeout=300)
        text = out.read_text(errors="replace")
    problems = []
    word_re = re.compile(r'<word xMin="([-\d.]+)" yMin="[-\d.]+" xMax="([-\d.]+)" yMax="[-\d.]+">(.*?)</word>')
    for number, (width, body) in enumerate(re.findall(r'<page width="([\d.]+)" height="[\d.]+">(.*?)</page>', text, re.S), 1):
        w = float(width)
        off = [word for x0, x1, word in word_re.findall(body) if float(x1) > w - edge_pt or float(x0) < 0]
        if off:
            problems.append(f"{Path(pdf).name} page {number}: text runs off the page ({len(off)} words, e.g. {off[0][:40]!r})")
    return problems


# The report's page budget: at most this many PDF pages before chapter 1 (title, contents, preface)
# and from chapter 1 to the last page of the references (the main text).
FRONT_MAX_PAGES, MAIN_MAX_PAGES = 3, 30


def first_chapter_title(root: Path = PROJECT_ROOT) -> str:
    """The heading of the book's first numbered chapter (the second file of ``_quarto.yml``'s chapters,
    after the preface), without its attributes: "Segment Anything on lung X-rays"."""
    text = book_files(root)[1].read_text()
    heading = re.search(r"(?m)^#\s+(.+?)\s*(?:\{[^}]*\})?\s*$", text)
    return heading.group(1) if heading else ""


def page_budget(pdf: Path, first_chapter: str, last: str = "References") -> dict[str, int]:
    """Where the main text lies in a rendered PDF, from its top-level bookmarks: ``start``, the page
    chapter 1 (the bookmark ending in ``first_chapter``) starts on; ``front``, the pages before it;
    ``main``, the pages from it to the last page of ``last`` (the page before the next top-level
    bookmark, or the PDF's end). A missing bookmark is a ValueError naming it."""
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    tops = [(str(item.title).strip(), reader.get_destination_page_number(item) + 1)
            for item in reader.outline if not isinstance(item, list)]
    titles = [t for t, _ in tops]
    starts = [i for i, t in enumerate(titles) if t.endswith(first_chapter)]
    ends = [i for i, t in enumerate(titles) if t == last]
    if not starts or not ends:
        raise ValueError(f"{Path(pdf).name}: no top-level bookmark {first_chapter if not starts else last!r} "
                         f"among {titles}")
    start, end = tops[starts[0]][1], ends[0]
    last_page = tops[end + 1][1] - 1 if end + 1 < len(tops) else len(reader.pages)
    return {"start": start, "front": start - 1, "main": last_page - start + 1}


def budget_problems(pdf: Path, first_chapter: str | None = None, front_max: int = FRONT_MAX_PAGES,
                    main_max: int = MAIN_MAX_PAGES) -> list[str]:
    """The page budget broken, in words (``page_budget``); [] when the PDF keeps it."""
    try:
        got = page_budget(pdf, first_chapter or first_chapter_title())
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if got["front"] > front_max:
        problems.append(f"{Path(pdf).name}: {got['front']} pages before chapter 1 (at most {front_max})")
    if got["main"] > main_max:
        problems.append(f"{Path(pdf).name}: main text (chapter 1 to the references) is {got['main']} pages, "
                        f"from page {got['start']} (at most {main_max})")
    return problems


def rendered_problems(out_dir: Path, docs: list[Path], pages: tuple[int, int] = (25, 90),
                      root: Path = PROJECT_ROOT) -> list[str]:
    """Problems of a rendered book in ``out_dir`` (``_book/``), each naming the file or PDF page:
    every document's HTML page exists; no HTML page or PDF page breaks ``text_problems`` or has a
    doubled heading number; every image an HTML page references exists; one PDF with a page count
    in ``pages``, no text running off its pages (``pdf_overflow``). Code listings are left out of the HTML check; the PDF's text cannot tell code
    from prose, so there the raw-None rule (Python code says None) is not applied."""
    from pypdf import PdfReader

    out_dir = Path(out_dir)
    problems = []
    for doc in docs:
        rel = Path(doc).relative_to(root)
        page = out_dir / rel.with_suffix(".html")
        if not page.exists():
            problems.append(f"{page.relative_to(out_dir)}: missing (no HTML for {rel})")
    for page in sorted(out_dir.rglob("*.html")):
        if "site_libs" in page.parts:
            continue
        source = page.read_text(errors="replace")
        where = str(page.relative_to(out_dir))
        problems += text_problems(_html_text(source), where, doubled=False)  # headings: below
        for tag in re.findall(r"(?is)<h[1-4]\b[^>]*>.*?</h[1-4]>", source):
            heading = " ".join(_html_text(tag).split())
            if DOUBLED_NUMBER_RE.search(heading):
                problems.append(f"{where}: doubled section number in heading {heading[:60]!r}")
        for src in re.findall(r"""<img\b[^>]*?\ssrc=["']([^"']+)["']""", source):
            if src.startswith(("data:", "http:", "https:", "//")):
                continue
            target = (page.parent / src.split("#")[0].split("?")[0]).resolve()
            if not target.exists():
                problems.append(f"{where}: image {src} does not exist")
    pdfs = sorted(out_dir.glob("*.pdf"))
    if len(pdfs) != 1:
        problems.append(f"{out_dir}: expected one PDF, found {[p.name for p in pdfs]}")
    for pdf in pdfs:
        reader = PdfReader(pdf)
        n = len(reader.pages)
        if not pages[0] <= n <= pages[1]:
            problems.append(f"{pdf.name}: {n} pages, expected {pages[0]}-{pages[1]}")
        for number, pdf_page in enumerate(reader.pages, start=1):
            problems += text_problems(pdf_page.extract_text() or "", f"{pdf.name} page {number}", skip=("raw None",))
        problems += pdf_overflow(pdf)
    return problems


def static_problems(docs: list[Document], bib_keys: set[str]) -> list[str]:
    """Cross-references without a target and citations missing from the bibliography."""
    all_labels: set[str] = set()
    for doc in docs:
        all_labels |= labels(doc)
    problems = []
    for doc in docs:
        xrefs, cites = references(doc)
        rel_path = doc.path.name
        for match in LITERAL_INLINE_RE.finditer(doc.prose):
            line = doc.prose[: match.start()].count("\n") + 1
            problems.append(f"{rel_path}: inline `{{python}}` inside a double-backtick span (prose line {line}) "
                            "is printed literally by Quarto; use single backticks")
        rel = doc.path.relative_to(PROJECT_ROOT) if doc.path.is_relative_to(PROJECT_ROOT) else doc.path
        problems += [f"{rel}: @{x} has no target" for x in sorted(xrefs - all_labels)]
        problems += [f"{rel}: [@{c}] is not in the bibliography" for c in sorted(cites - bib_keys)]
    return problems


def check_book(files: list[str] | None = None, profile: str = "smoke", timeout: int = 1800) -> int:
    """Run the whole check (CLI ``book-check``); prints a report, returns a process exit code."""
    listed = book_files()
    missing = [p for p in listed if not p.exists()]
    for p in missing:
        print(f"FAIL {p}: listed in _quarto.yml but missing")
    docs = [parse(p) for p in listed if p.exists()]
    problems = static_problems(docs, bibliography_keys())
    for problem in problems:
        print(f"FAIL {problem}")
    targets = [Path(f).resolve() for f in files] if files else [d.path for d in docs]
    failed = bool(missing or problems)
    out_dir = PROJECT_ROOT / ".cache" / "book-check"
    out_dir.mkdir(parents=True, exist_ok=True)
    for doc in (parse(p) for p in targets):
        started = time.perf_counter()
        try:
            nb = execute(doc, profile, timeout)
            issues = output_problems(nb)
            issues += [p for c in nb.cells for p in text_problems(_output_text(c), _cell_name(c))]
        except Exception as exc:  # the cell error, with its traceback, is in the message
            message = ANSI_RE.sub("", str(exc)).strip().splitlines()
            nb, issues = None, ["execution failed:", *message[-40:]]
        took = time.perf_counter() - started
        if nb is not None:
            import nbformat

            nbformat.write(nb, out_dir / (doc.path.stem + ".ipynb"))
        status = "ok  " if not issues else "FAIL"
        print(f"{status} {doc.path.name}: {len(doc.cells)} cells in {took:.1f} s [{profile}]")
        for issue in issues:
            print(f"     {issue}")
        failed |= bool(issues)
    sys.stdout.flush()
    return 1 if failed else 0
