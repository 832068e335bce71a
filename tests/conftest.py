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
