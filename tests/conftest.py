import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("ANALYSIS_NO_PROGRESS", "1")

from analysis.paths import data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data():
    """The real data directory (../shared/data here, ANALYSIS_DATA_DIR in CI); skip when absent."""
    root = data_dir()
    if not root.is_dir():
        pytest.skip(f"no data directory at {root} (set ANALYSIS_DATA_DIR)")
    return root


def _offline_hashes() -> dict[str, str]:
    import hashlib

    from analysis.paths import PROJECT_ROOT

    root = PROJECT_ROOT / "results" / "offline"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def offline_unchanged():
    """Every file of results/offline is byte-identical after the module that uses this (a run
    finishing in the background may add files; none may change or vanish)."""
    before = _offline_hashes()
    yield
    after = _offline_hashes()
    assert {k: after.get(k) for k in before} == before


@pytest.fixture(scope="session")
def stored_offline():
    """``stored_offline(experiment)``: the newest stored offline run, or skip when there is none."""
    from analysis.store import Store

    def get(experiment):
        runs = Store().runs("offline", experiment)
        if not runs:
            pytest.skip(f"no stored offline {experiment} run")
        return runs[-1]

    return get


QUARTO = shutil.which("quarto")
needs_quarto = pytest.mark.skipif(
    QUARTO is None,
    reason="Quarto is not on PATH: install Quarto >= 1.9 (quarto.org, or `pip install quarto-cli`; "
    "on the project's machines ../shared/tools/quarto/install .cache/quarto) to run the render test",
)


def _missing_offline_runs() -> list[str]:
    from analysis.experiments import load_all, lookup

    return [name for name in sorted(load_all()) if lookup(name, "offline") is None]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory, shared_data):
    """The offline book rendered by real Quarto into a temporary folder, once per test session
    (the render test reads its pages; the browser tests serve it over HTTP).
    ``ANALYSIS_RENDERED_BOOK=_book`` reuses a book already rendered (while working on a widget)."""
    reuse = os.environ.get("ANALYSIS_RENDERED_BOOK")
    if reuse:
        return Path(reuse).resolve()
    if QUARTO is None:
        pytest.skip("Quarto is not on PATH (see needs_quarto)")
    missing = _missing_offline_runs()
    # A render computes what is missing (an hour of CPU for some runs): that is not a test's job.
    assert not missing, (f"stored offline runs missing for {missing}: "
                         "run `python -m analysis run all --profile offline` first")
    out = tmp_path_factory.mktemp("book")
    quarto_render("offline", out, os.environ)
    return out


def quarto_render(profile: str, out: Path, env, timeout: int = 1800) -> float:
    """``quarto render --profile PROFILE --output-dir OUT`` from the project, with this interpreter's
    Jupyter kernel (``env``: the environment, without ``QUARTO_PROFILE``); asserts it succeeded,
    showing the log's end, and returns the seconds it took."""
    from analysis.paths import PROJECT_ROOT

    env = dict(env, QUARTO_PYTHON=sys.executable,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.pop("QUARTO_PROFILE", None)
    started = time.perf_counter()
    proc = subprocess.run([QUARTO, "render", "--profile", profile, "--output-dir", str(out)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"quarto render --profile {profile} failed (exit {proc.returncode}) after {took:.0f} s:\n{log[-6000:]}"
    print(f"\nquarto render --profile {profile}: {took:.1f} s")
    return took


@pytest.fixture(scope="session")
def site_url(rendered):
    """The rendered book served over HTTP on 127.0.0.1 (base URL ending in '/')."""
    from browser import serve

    with serve(rendered) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (Selenium); skipped, saying why, where Chromium/ChromeDriver/selenium are missing."""
    import browser as b

    why = b.missing()
    if why:
        pytest.skip(why)
    with b.chrome() as driver:
        yield driver
