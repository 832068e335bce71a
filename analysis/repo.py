"""The repository's GitHub name, from its git remote: for Colab links (never a placeholder).

Standard library only (the pre-render step and the CLI use it before the heavy imports).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .paths import PROJECT_ROOT

NOTEBOOK = "notebooks/colab_full.ipynb"  # the hand-in notebook (the full profile on a Colab GPU)
_GITHUB = re.compile(r"(?:https?://(?:[^@/]+@)?|ssh://git@|git@)github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?")


def github_slug(remote: str | None = None, root: Path = PROJECT_ROOT) -> str | None:
    """"owner/repo" of a GitHub remote URL, else None.

    ``remote`` defaults to ``git config --get remote.origin.url`` of the project; accepted forms:
    https://github.com/owner/repo(.git), git@github.com:owner/repo(.git), ssh://git@github.com/owner/repo.
    """
    if remote is None:
        try:
            remote = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=root, capture_output=True,
                                    text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
    match = _GITHUB.fullmatch(remote.strip())
    return f"{match.group(1)}/{match.group(2)}" if match else None


def colab_url(repo: str | None = None, branch: str = "main", notebook: str = NOTEBOOK) -> str | None:
    """The Open-in-Colab link of a notebook of this repository (``repo``: "owner/repo", default from
    the git remote), or None without a GitHub remote."""
    repo = repo or github_slug()
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{notebook}" if repo else None


def colab_hint(notebook: str = NOTEBOOK) -> str:
    """One sentence: the notebook's Colab link, or how to open it without a GitHub remote."""
    url = colab_url(notebook=notebook)
    if url:
        return f"open {url} (Runtime > Change runtime type > GPU, then Runtime > Run all)"
    return (f"open {notebook} in Colab (colab.research.google.com > File > Upload notebook, or push this repository "
            "to GitHub and use the Open-in-Colab badge), pick a GPU runtime, then Runtime > Run all")
