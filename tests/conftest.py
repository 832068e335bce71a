import os

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
