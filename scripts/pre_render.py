"""Quarto pre-render script: results first, then the freeze, then Quarto executes the chapters.

Runs before every `quarto render` / `quarto preview` (`pre-render` in _quarto.yml), so `make render`
and a plain `quarto render` behave alike:

1. `python -m analysis prepare --profile P` verifies the profile's stored runs and computes the
   missing ones outside Quarto, with progress bars (a no-op when everything is stored). Under
   `full`, missing runs stop the render here, in seconds, with what to do (the Colab notebook):
   this script exits non-zero and Quarto renders nothing. Chapters executing inside Quarto then
   only read results (`analysis.experiments.in_render`).
2. The files being rendered are noted (their digests), so that the last post-render script
   (scripts/inputs_check.py) can tell when one was saved again during the render.
3. Under a profile other than `offline`, the committed `_freeze/` is moved aside (the first
   post-render script puts it back): Quarto would otherwise rewrite or delete it.
4. A stale staged copy of the book's Typst template is dropped (Quarto keeps its first copy).
5. The site's repository links (edit / issue / source) are written from the git remote into
   `.quarto/repo-links.yml` (`metadata-files` in _quarto.yml); none without a GitHub remote.
6. The frozen chapter outputs (`_freeze/`, committed, of the default profile only) whose inputs
   changed are dropped, so Quarto executes those chapters again (analysis/freeze.py).

The package runs with the Python that executes the chapters: `$QUARTO_PYTHON`, else the project's
`.venv`, else this interpreter. Step 2 needs only the standard library.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.freeze import snapshot_inputs, stash_freeze, sync  # noqa: E402  (standard library only)
from analysis.profiles import active_profile  # noqa: E402
from analysis.repo import github_slug  # noqa: E402

REPO_LINKS = ".quarto/repo-links.yml"  # read by Quarto through `metadata-files` in _quarto.yml


def package_python() -> str:
    for candidate in (os.environ.get("QUARTO_PYTHON"), ROOT / ".venv" / "bin" / "python"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return sys.executable


def drop_stale_typst_packages(root: Path = ROOT) -> list[Path]:
    """Quarto stages the book's Typst package (``_extensions/*/typst/packages/local/<name>/<version>``)
    into ``.quarto/typst/packages/local/`` once and keeps that copy: an edited template (a patch in
    ``lib.typ``) would never reach the PDF. Staged copies that differ from the extension's files are
    removed here (the package's folder), so Quarto stages them again."""
    dropped = []
    for src in sorted(root.glob("_extensions/*/typst/packages/local/*/*")):
        staged = root / ".quarto" / "typst" / "packages" / "local" / src.parent.name / src.name
        if not staged.is_dir():
            continue
        for f in (p for p in src.rglob("*") if p.is_file()):
            copy = staged / f.relative_to(src)
            if not copy.is_file() or copy.read_bytes() != f.read_bytes():
                # the whole package folder: Quarto copies a package only when its folder is missing
                # (quarto-cli src/command/render/output-typst.ts, stageTypstPackages)
                shutil.rmtree(staged.parent)
                dropped.append(staged.parent)
                print(f"pre-render: {staged.relative_to(root)} was stale ({f.relative_to(src)} changed); Quarto stages it again")
                break
    return dropped


def repo_links_yaml(repo: str | None, branch: str = "main") -> str:
    """The site's repository links (Quarto's ``repo-url`` and its edit / issue / source actions) for
    ``repo`` ("owner/repo"), or "" without one: no link rather than a placeholder."""
    if not repo:
        return ""
    return ("# written by scripts/pre_render.py from the git remote; not committed\n"
            f"book:\n  repo-url: https://github.com/{repo}\n  repo-branch: {branch}\n"
            "  repo-actions: [edit, issue, source]\n")


def write_repo_links(root: Path = ROOT, repo: str | None = None) -> Path | None:
    """Write (or remove) ``.quarto/repo-links.yml`` from the git remote (analysis.repo.github_slug).
    Rewritten only when its text changes: ``quarto preview`` watches it and would render again.
    Returns the file when it holds links."""
    path = root / REPO_LINKS
    text = repo_links_yaml(repo or github_slug(root=root))
    if not text:
        path.unlink(missing_ok=True)
        return None
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def main() -> int:
    profile = active_profile()
    write_repo_links(ROOT)  # the site's repository / edit / issue links, from the git remote (none without one)
    snapshot_inputs(ROOT)  # scripts/inputs_check.py compares after the render
    proc = subprocess.run([package_python(), "-m", "analysis", "prepare", "--profile", profile], cwd=ROOT)
    if proc.returncode != 0:
        print(f"pre-render: stopped before Quarto executed anything (profile {profile}); see above", file=sys.stderr)
        return proc.returncode
    stash_freeze(ROOT, profile)  # another profile's render never touches the committed _freeze/ (after prepare:
    drop_stale_typst_packages()  # a stopped render has nothing to put back)
    sync(ROOT, profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
