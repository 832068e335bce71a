"""Back home: `make render PROFILE=full` from the unpacked archive of the hand-in notebook downloads nothing.

The `full` results are computed with random-weight stand-ins (scripts/standin_full.py's set-up),
packed by the hand-in notebook's own archive cell (which adds the SAM explorer's ONNX decoder),
unpacked into a fresh "home" store and cache, and rendered with `make render PROFILE=full` while
every way out is shut and loud: the package's download code raises (``ANALYSIS_NO_DOWNLOAD=1``),
the hub libraries are offline, and every Python process of the render (CLI, pre/post-render
scripts, Jupyter kernels) has a ``sitecustomize`` that refuses and logs any connection that is
not to this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import nbformat
import pytest

from analysis.paths import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from fixtures import standins  # noqa: E402

QUARTO_BIN = PROJECT_ROOT / ".cache" / "quarto" / "bin"
NOTEBOOK = PROJECT_ROOT / "notebooks" / "colab_full.ipynb"

GUARD = '''
import os, socket

_LOG = os.environ.get("HANDIN_NETWORK_LOG")
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _local(address):
    if not isinstance(address, tuple):  # unix sockets
        return True
    host = str(address[0])
    return host in ("localhost", "::1") or host.startswith("127.")


def _refuse(address):
    if _LOG:
        with open(_LOG, "a") as fh:
            fh.write(f"{os.getpid()} {address!r}\\n")
    raise ConnectionRefusedError(f"network access refused during the home render: {address!r}")


def connect(self, address):
    if not _local(address):
        _refuse(address)
    return _connect(self, address)


def connect_ex(self, address):
    if not _local(address):
        _refuse(address)
    return _connect_ex(self, address)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
'''


def _run(cmd, env, cwd, timeout):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not (QUARTO_BIN / "quarto").exists(), reason="quarto is not installed at .cache/quarto")
def test_home_render_from_the_archive_downloads_nothing(tmp_path, shared_data):
    root = tmp_path / "colab"
    standins.build_models(root / "models")
    standins.build_hub_data(root / "hub", n_train=5400, n_test=400, n_questions=200)
    standins.build_lung(root / "data" / "lung" / "lung_field_dataset.npz", n_train=1, n_val=3, n_test=1)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYSIS_", "QUARTO_", "HF_"))}
    colab = {**base, **standins.environment(root), "PYTHONPATH": str(PROJECT_ROOT), "ANALYSIS_NO_PROGRESS": "1",
             "OMP_NUM_THREADS": "1"}

    # "on Colab": every experiment of the full profile, then the notebook's own archive cell
    started = time.perf_counter()
    proc = _run([sys.executable, "-m", "analysis", "run", "all", "--profile", "full"], colab, root / "hub", 1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    compute_s = time.perf_counter() - started
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    wanted = [code[0]] + [c for c in code if any(m in c.source for m in ("def clone_repo", "def restore_runs",
                                                                         'tarfile.open(partial, "w:gz")'))]
    assert len(wanted) == 4
    nb.cells = wanted
    from nbclient import NotebookClient

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith(("ANALYSIS_", "HF_"))]:
            mp.delenv(key)
        for key, value in {**standins.environment(root), "SKIP_COLAB_STEPS": "1", "QUARTO_PROFILE": "full",
                           "HANDIN_ARCHIVE_DIR": str(tmp_path / "downloads"), "OMP_NUM_THREADS": "1"}.items():
            mp.setenv(key, value)
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(PROJECT_ROOT)}}).execute()
    archive = tmp_path / "downloads" / "results-full.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    decoders = [n for n in names if n.startswith(".cache/sam_onnx/full-")]
    assert len(decoders) == 1, names[:20]

    # "back home": a fresh store and cache, the archive unpacked in place, every way out shut
    home = tmp_path / "home"
    home.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(home, filter="data")
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "network.log"
    env = {**base, **standins.environment(root),
           "ANALYSIS_RESULTS_DIR": str(home / "results"), "ANALYSIS_CACHE_DIR": str(home / ".cache"),
           "ANALYSIS_ARTIFACTS_DIR": str(home / "artifacts"), "ANALYSIS_NO_DOWNLOAD": "1",
           "HANDIN_NETWORK_LOG": str(log), "PYTHONPATH": os.pathsep.join([str(guard), str(PROJECT_ROOT)]),
           "ANALYSIS_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
           "PATH": os.pathsep.join([str(QUARTO_BIN), str(Path(sys.executable).parent), base["PATH"]])}

    # the guards are live and loud: a connection and a download both fail, naming themselves
    probe = _run([sys.executable, "-c", "import urllib.request; urllib.request.urlopen('http://192.0.2.1/', timeout=5)"],
                 env, tmp_path, 60)
    assert probe.returncode != 0 and "network access refused during the home render" in probe.stderr
    probe = _run([sys.executable, "-c", "from pathlib import Path; from analysis.download import download; "
                  "download('file:///etc/hostname', Path('x'), name='probe')"], env, tmp_path, 60)
    assert probe.returncode != 0 and "downloads are off (ANALYSIS_NO_DOWNLOAD=1)" in probe.stderr
    log.unlink()

    started = time.perf_counter()
    render = _run(["make", "render", "PROFILE=full"], env, PROJECT_ROOT, 1800)
    render_s = time.perf_counter() - started
    out = render.stdout + render.stderr
    assert render.returncode == 0, out[-6000:]
    assert not log.exists(), f"network connections during the render: {log.read_text()}"
    assert "could not be exported" not in out and "downloads are off" not in out, out[-3000:]
    book = PROJECT_ROOT / "_book-full"
    key = Path(decoders[0]).stem.split("-", 1)[1]
    served = book / "lab" / "runs" / "full" / "sam_explorer" / key / "decoder.onnx"
    assert served.read_bytes() == (home / decoders[0]).read_bytes()
    assert len(list(book.glob("*.pdf"))) == 1 and (book / "index.html").is_file()
    assert not (home / ".cache" / "models").exists(), "a model was fetched into the home cache"

    # without the archive's decoder the same render would have had to download the checkpoint
    (home / decoders[0]).unlink()
    proc = _run([sys.executable, "-m", "analysis", "lab-decoder", f"full/sam_explorer/{key}", "--out",
                 str(tmp_path / "d.onnx")], env, PROJECT_ROOT, 300)
    assert proc.returncode != 0 and "downloads are off" in proc.stderr, proc.stderr[-2000:]
    print(f"\nstand-in full results {compute_s:.0f} s; make render PROFILE=full from the archive {render_s:.0f} s")
