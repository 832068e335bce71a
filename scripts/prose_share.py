"""How much of the book's prose is written in Python string literals rather than in the chapters.

    python scripts/prose_share.py [--list]

Counts words (runs of letters) in
- the book's sources (``index.qmd``, ``chapters/``, ``appendices/``): everything outside YAML front
  matter, code cells, HTML comments and inline code;
- the string literals of the modules whose text reaches the book (``BOOK_MODULES``: the chapter
  helpers, figures, the preface's tables, the widgets, the report helpers): every literal of at
  least four words, f-strings included (their literal parts), docstrings excluded. Short literals
  (labels, keys, units) are not prose; error messages of the CLI and the store never reach a page.
Issue "A book its writers can work in" targets at most 15% of the prose words in Python.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
MIN_WORDS = 4
BOOK_MODULES = ("analysis/*/chapter.py", "analysis/*/figures.py", "analysis/preface.py", "analysis/lab.py",
                "analysis/report.py", "analysis/envinfo.py", "analysis/sam/explorer.py")


def qmd_words(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)           # front matter
    text = re.sub(r"^(```+)\s*\{.*?^\1\s*$", "", text, flags=re.S | re.M)  # executable cells
    text = re.sub(r"^(```+).*?^\1\s*$", "", text, flags=re.S | re.M)     # other code blocks
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)                                 # inline code and expressions
    text = re.sub(r"^:::.*$", "", text, flags=re.M)                       # div fences
    text = re.sub(r"\{[#.][^}]*\}", "", text)                             # attributes, labels
    return len(WORD.findall(text))


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def _literal_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def py_literals(path: Path) -> list[tuple[int, int, str]]:
    """(line, words, text) of each prose literal in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstring_nodes(tree)
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for node in ast.walk(tree):
        if id(node) in docs or id(node) in inner:
            continue
        text = _literal_text(node)
        if text is None:
            continue
        n = len(WORD.findall(text))
        if n >= MIN_WORDS:
            out.append((node.lineno, n, text))
    return out


def measure(root: Path = ROOT) -> dict:
    qmd = sorted([root / "index.qmd", *root.glob("chapters/*.qmd"), *root.glob("appendices/*.qmd")])
    py = sorted({p for pattern in BOOK_MODULES for p in root.glob(pattern)})
    q = {str(p.relative_to(root)): qmd_words(p) for p in qmd if p.exists()}
    s = {str(p.relative_to(root)): sum(n for _, n, _ in py_literals(p)) for p in py}
    total_q, total_s = sum(q.values()), sum(s.values())
    return {"qmd_words": total_q, "python_words": total_s,
            "python_share": total_s / max(1, total_q + total_s), "qmd": q, "python": s}


def main(argv: list[str]) -> int:
    m = measure()
    for f, n in sorted(m["python"].items(), key=lambda kv: -kv[1]):
        if n:
            print(f"  {n:6d}  {f}")
    if "--list" in argv:
        for p in sorted({p for pattern in BOOK_MODULES for p in ROOT.glob(pattern)}):
            for line, n, text in py_literals(p):
                print(f"{p.relative_to(ROOT)}:{line}: {n} words: {text[:90]!r}")
    print(f"prose words: {m['qmd_words']} in the book's .qmd files, {m['python_words']} in Python string "
          f"literals -> {100 * m['python_share']:.1f}% in Python")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
