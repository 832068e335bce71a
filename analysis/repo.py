"""The repository's GitHub name, from its git remote: for Colab links (never a placeholder).

Standard library only (the pre-render step and the CLI use it before the heavy imports).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .paths import PROJECT_ROOT

_GITHUB = re.compile(r"github\.com[:/](?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")


def github_slug(root: Path = PROJECT_ROOT) -> str | None:
    """``owner/repo`` of the ``origin`` remote when it is on GitHub (https or ssh form), else None."""
    try:
        url = subprocess.run(["git", "config", "--get", "remote.origin.url"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    match = _GITHUB.search(url)
    return f"{match['owner']}/{match['repo']}" if match else None


def colab_url(notebook: str = "notebooks/colab_full.ipynb", branch: str = "main", root: Path = PROJECT_ROOT) -> str | None:
    """The Open-in-Colab link of a notebook of this repository, or None without a GitHub remote."""
    slug = github_slug(root)
    return f"https://colab.research.google.com/github/{slug}/blob/{branch}/{notebook}" if slug else None


def colab_hint(notebook: str = "notebooks/colab_full.ipynb", root: Path = PROJECT_ROOT) -> str:
    """One sentence: the notebook's Colab link, or how to open it without a GitHub remote."""
    url = colab_url(notebook, root=root)
    if url:
        return f"open {url} (Runtime > Change runtime type > GPU, then Runtime > Run all)"
    return (f"open {notebook} in Colab (colab.research.google.com > File > Upload notebook, or push this repository "
            "to GitHub and use the Open-in-Colab badge), pick a GPU runtime, then Runtime > Run all")
