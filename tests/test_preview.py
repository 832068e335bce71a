"""`quarto preview` keeps up: an edit saved while a chapter re-renders shows up afterwards.

Quarto 1.9 loses such an edit (it records the file's newest content as rendered when the render
ends, so the edit's own change event is skipped); the project's last post-render script
(scripts/inputs_check.py) fails when a file changed during its render, which keeps Quarto from
recording it, and preview renders the edit. This test drives a real `quarto preview` on a small
project that uses the same pre/post-render functions (analysis.freeze), with a slow cell so that
the second edit lands during the re-render.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from analysis.paths import PROJECT_ROOT

pytestmark = pytest.mark.skipif(shutil.which("quarto") is None, reason="Quarto is not on PATH (make setup / .ci/run install it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def _wait_for(predicate, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_an_edit_saved_during_a_rerender_shows_up(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "_quarto.yml").write_text(
        "project:\n  type: website\n  pre-render: pre.py\n  post-render: post.py\nformat: html\n")
    # the project's own functions; sys.path as the project's scripts set it
    head = f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r}); from pathlib import Path\n"
    (root / "pre.py").write_text(head + "from analysis.freeze import snapshot_inputs\nsnapshot_inputs(Path.cwd())\n")
    (root / "post.py").write_text(head + (PROJECT_ROOT / "scripts" / "inputs_check.py").read_text()
                                  .replace("inputs_changed(ROOT)", "inputs_changed(Path.cwd())"))
    doc = root / "index.qmd"
    doc.write_text("# Home\n\n```{python}\nimport time; time.sleep(6)\n```\n\nVERSION-1\n")
    port = _free_port()
    env = {**os.environ, "QUARTO_PYTHON": sys.executable}
    proc = subprocess.Popen(["quarto", "preview", "--no-browser", "--port", str(port)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert _wait_for(lambda: "VERSION-1" in _page(port), 180), "preview did not serve the first render"
        doc.write_text(doc.read_text().replace("VERSION-1", "VERSION-2"))   # starts a re-render (6 s cell)
        time.sleep(3.5)
        doc.write_text(doc.read_text().replace("VERSION-2", "VERSION-3"))   # saved during that re-render
        assert _wait_for(lambda: "VERSION-3" in _page(port), 120), f"preview shows {_page(port)[-200:]!r}"
    finally:
        os.killpg(proc.pid, 15)  # the launcher leaves children (deno, the kernel): stop the group
        proc.wait(timeout=30)
