"""Fault suite, result store: real processes killed (SIGKILL) at every named point of a save, every
stored file kind corrupted, two processes racing for one key, read-only and full disks.

Each case asserts the exact outcome: a clear one-line StoreError naming the file (and saying that
``run --force`` recomputes it), or correct recovery (one complete copy, no leftovers counted as
runs). Tiny fake experiments only; a save is made to stop at a named point with the store's test
hook (``ANALYSIS_STORE_FAULT``). ``results/offline`` is checked byte-identical around the module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from analysis import experiments, store as store_mod
from analysis.errors import StoreError
from analysis.experiments import Experiment, get_or_run, register
from analysis.store import CHECKSUM_FILE, FAULT_ENV, SAVE_POINTS, Output, Run, Store

PROJECT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("offline_unchanged")  # tests/conftest.py

# A tiny experiment run in a child process: argv = store root, "force"|"keep", value, seconds to sleep
CHILD = textwrap.dedent('''
    import dataclasses, sys, time
    import numpy as np
    from analysis import experiments
    from analysis.experiments import Experiment, register, get_or_run
    from analysis.store import Output, Store

    experiments.run_environment = lambda config: {"test": True}
    Experiment.source_hash = lambda self: "child"  # code given with -c has no source file

    @dataclasses.dataclass(frozen=True)
    class C:
        n: int = 3

    def compute(config):
        time.sleep(float(sys.argv[4]))
        v = float(sys.argv[3])
        return Output(metrics={"v": v}, tables={"records": [{"id": str(i), "v": v} for i in range(config.n)],
                                                "extra": [{"x": v}]},
                      arrays={"a": np.full(3, v)})

    register(Experiment(name="fault_toy", title="", chapter="", configs={"smoke": C()}, compute=compute,
                        code_version="1", data_fingerprint=lambda c: "none"))
    run = get_or_run("fault_toy", "smoke", force=sys.argv[2] == "force", store=Store(sys.argv[1]))
    print("value", run.metrics["v"], flush=True)
''')


def child(root: Path, value: float, *, force: bool = False, fault: str | None = None, sleep: float = 0.0,
          wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    args = [sys.executable, "-c", CHILD, str(root), "force" if force else "keep", str(value), str(sleep)]
    proc = subprocess.Popen(args, env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@dataclasses.dataclass(frozen=True)
class ToyC:
    n: int = 3


CALLS: list = []


def _compute(config):
    CALLS.append(config)
    return Output(metrics={"v": 1.0}, tables={"records": [{"id": str(i), "v": i} for i in range(config.n)],
                                              "extra": [{"x": 1}]},
                  arrays={"a": np.arange(3.0)})


register(Experiment(name="fault_toy", title="", chapter="", configs={"smoke": ToyC()}, compute=_compute,
                    code_version="1", data_fingerprint=lambda c: "none"))
KEY = experiments.get("fault_toy").key(ToyC(), "smoke")


def exp_dir(root: Path) -> Path:
    return root / "smoke" / "fault_toy"


def wait_for_lock_holder(root: Path, proc, timeout: float = 60.0) -> None:
    """Until the child holds the key's lock (it writes its pid into the lock file once it has it)."""
    lock = root / ".locks" / "smoke" / "fault_toy" / f"{KEY}.lock"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if lock.exists() and f"pid {proc.pid}" in lock.read_text():
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError("the child never took the lock")


def hidden(root: Path) -> list[str]:
    return sorted(p.name for p in exp_dir(root).iterdir() if p.name.startswith("."))


# --- SIGKILL at every point of a save -------------------------------------------------------


@pytest.mark.parametrize("point", SAVE_POINTS)
def test_killed_first_save_leaves_no_run_and_no_counted_leftover(tmp_path, point):
    rc, out, err = child(tmp_path, 1.0, fault=f"{point}:kill")
    if point == "old-moved":  # only a replace reaches it: the first save completes
        assert rc == 0 and "value 1.0" in out
        return
    assert rc == -signal.SIGKILL, err
    store = Store(tmp_path)
    run = store.load("smoke", "fault_toy", KEY)
    if point == "installed":  # the new run was already in place
        assert run is not None and run.metrics == {"v": 1.0} and run.verify()
    else:
        assert run is None
    assert len(store.runs()) == (1 if point == "installed" else 0)
    # the next run recovers: computes (or reuses) and leaves no hidden folder behind
    rc, out, err = child(tmp_path, 2.0)
    assert rc == 0, err
    expected = 1.0 if point == "installed" else 2.0
    assert f"value {expected}" in out
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("point", SAVE_POINTS)
def test_killed_replace_always_leaves_one_complete_copy(tmp_path, point):
    assert child(tmp_path, 1.0)[0] == 0
    rc, out, err = child(tmp_path, 2.0, force=True, fault=f"{point}:kill")
    assert rc == -signal.SIGKILL, err
    store = Store(tmp_path)
    run = store.load("smoke", "fault_toy", KEY)  # restores an interrupted replace
    assert run is not None, f"killed at {point}: no stored run left (data loss)"
    assert run.verify().metrics == {"v": 2.0 if point == "installed" else 1.0}
    assert run.path == exp_dir(tmp_path) / KEY
    assert [r.key for r in store.runs()] == [KEY]  # leftovers are never counted as runs
    assert hidden(tmp_path) == []  # and are cleaned once a complete copy is in place


def test_kill_from_outside_between_the_renames(tmp_path):
    """The window where only the old copy exists, held open by the hook, killed by another process."""
    assert child(tmp_path, 1.0)[0] == 0
    marker = tmp_path / "paused"
    proc = child(tmp_path, 2.0, force=True, fault=f"old-moved:pause:{marker}", wait=False)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "never reached the window"
    assert not (exp_dir(tmp_path) / KEY).exists()  # really between the renames
    # while the saver holds the lock, a reader still finds the complete old copy where it lies
    during = Store(tmp_path).load("smoke", "fault_toy", KEY)
    assert during is not None and during.metrics == {"v": 1.0}
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run = Store(tmp_path).load("smoke", "fault_toy", KEY)
    assert run.metrics == {"v": 1.0} and run.path.name == KEY and hidden(tmp_path) == []


def test_kill_during_compute_releases_the_lock(tmp_path):
    proc = child(tmp_path, 1.0, sleep=30, wait=False)
    wait_for_lock_holder(tmp_path, proc)  # computing, with the lock held
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    started = time.time()
    rc, out, err = child(tmp_path, 2.0)
    assert rc == 0 and "value 2.0" in out and "waiting" not in err
    assert time.time() - started < 30


def test_legacy_leftovers_of_the_old_code_are_restored_and_cleaned(tmp_path):
    """The pre-lock code named old copies `.KEY.old.N` too: a replace it left half-done is restored."""
    assert child(tmp_path, 1.0)[0] == 0
    final = exp_dir(tmp_path) / KEY
    os.replace(final, final.with_name(f".{KEY}.old.123"))
    stale = exp_dir(tmp_path) / f".{KEY}.abcd1234"  # an old-code staging folder, hours old
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    store = Store(tmp_path)
    assert [r.metrics for r in store.runs()] == [{"v": 1.0}]
    assert hidden(tmp_path) == []


# --- two runs of one key ----------------------------------------------------------------------


def test_second_process_waits_and_reuses_the_first_result(tmp_path):
    first = child(tmp_path, 1.0, sleep=4, wait=False)
    wait_for_lock_holder(tmp_path, first)
    rc, out, err = child(tmp_path, 2.0)
    first_out = first.communicate(timeout=60)[0]
    assert first.returncode == 0 and "value 1.0" in first_out
    assert rc == 0 and "value 1.0" in out, (out, err)  # reused, not computed again
    assert "is computing this run; waiting" in err
    assert len(Store(tmp_path).runs()) == 1


# --- corrupted stored files -------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    CALLS.clear()
    run = get_or_run("fault_toy", "smoke", store=Store(tmp_path))
    assert len(CALLS) == 1
    return run.path


def _reload(path):
    run = Store(path.parent.parent.parent).load("smoke", "fault_toy", path.name)
    return run.verify()


def _clear_error(err, path, name):
    text = str(err)
    assert "\n" not in text
    assert str(path / name) in text
    assert "run fault_toy --profile smoke --force" in text


DAMAGE = {
    "truncated": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "conflict markers": lambda b: b"<<<<<<< HEAD\n" + b + b"=======\n" + b + b">>>>>>> theirs\n",
    "one byte flipped": lambda b: b[:-3] + bytes([b[-3] ^ 1]) + b[-2:],
}


@pytest.mark.parametrize("how", list(DAMAGE))
@pytest.mark.parametrize("name", ["run.json", "records.jsonl", "extra.jsonl", "arrays.npz", CHECKSUM_FILE])
def test_damaged_file_is_a_clear_error_naming_it(saved, name, how):
    path = saved / name
    path.write_bytes(DAMAGE[how](path.read_bytes()))
    with pytest.raises(StoreError) as err:
        _reload(saved)
    _clear_error(err.value, saved, name)


def test_hand_edited_table_with_valid_json_is_caught(saved):
    path = saved / "records.jsonl"
    path.write_text(path.read_text().replace('"v": 1', '"v": 7'))
    with pytest.raises(StoreError, match="differs from its checksum"):
        _reload(saved).rows()


def test_hand_edited_metric_in_run_json_is_caught(saved):
    path = saved / "run.json"
    meta = json.loads(path.read_text())
    meta["metrics"]["v"] = 0.99
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    with pytest.raises(StoreError, match="run.json: content differs"):
        Store(saved.parent.parent.parent).load("smoke", "fault_toy", KEY)


@pytest.mark.parametrize("name", ["records.jsonl", "arrays.npz", "run.json"])
def test_missing_file_is_a_clear_error(saved, name):
    (saved / name).unlink()
    with pytest.raises(StoreError, match="is missing") as err:
        _reload(saved)
    _clear_error(err.value, saved, name)


def test_deleted_checksum_file_is_not_silently_trusted(saved):
    (saved / CHECKSUM_FILE).unlink()
    with pytest.raises(StoreError, match="checksums.sha256: is missing"):
        _reload(saved)


def test_file_added_by_hand_is_not_read_as_a_table(saved):
    (saved / "extra (conflicted copy).jsonl").write_text('{"x": 2}\n')
    (saved / "bogus.jsonl").write_text('{"x": 2}\n')
    run = _reload(saved)
    assert run.table_names() == ["extra", "records"]


def test_get_or_run_on_a_damaged_run_says_run_force_and_force_repairs(saved):
    (saved / "run.json").write_text("{")
    store = Store(saved.parent.parent.parent)
    with pytest.raises(StoreError, match="--force"):
        get_or_run("fault_toy", "smoke", store=store)
    CALLS.clear()
    run = get_or_run("fault_toy", "smoke", store=store, force=True)
    assert len(CALLS) == 1 and run.verify().metrics == {"v": 1.0}
    assert hidden(saved.parent.parent.parent) == []


def test_legacy_run_without_checksums_is_refused_until_sealed(tmp_path):
    """A run saved by the code before checksums cannot be verified: loading it is refused with the two
    fixes (recompute, or `seal` after checking it); `seal` parses it first and seals it."""
    from analysis.store import Run

    folder = exp_dir(tmp_path) / KEY
    folder.mkdir(parents=True)
    meta = {"experiment": "fault_toy", "profile": "smoke", "key": KEY, "created": "2026-01-01T00:00:00+00:00",
            "wall_seconds": 1.0, "config": {"n": 3}, "env": {}, "metrics": {"v": 3.0}, "code_version": "1",
            "source_hash": "x", "data_fingerprint": "none"}
    from analysis.store import run_key

    meta["key"] = key = run_key("fault_toy", "smoke", {"n": 3}, "1", "none")
    folder = folder.rename(folder.with_name(key))
    (folder / "run.json").write_text(json.dumps(meta))
    (folder / "records.jsonl").write_text('{"id": "0"}\n{"id": "1"')  # truncated last line
    with pytest.raises(StoreError, match=r"checksums.sha256: is missing: this run has no checksums.*--force.*seal"):
        Store(tmp_path).load("smoke", "fault_toy", key)
    run = Run(folder, unsealed_ok=True)
    assert run.metrics == {"v": 3.0} and not run.sealed
    with pytest.raises(StoreError, match=r"records.jsonl: line 2 is not valid JSON"):
        run.rows()
    with pytest.raises(StoreError, match=r"records.jsonl: line 2 is not valid JSON"):
        Store(tmp_path).seal_legacy()  # a damaged legacy run is never sealed
    (folder / "records.jsonl").write_text('{"id": "0"}\n')
    shown = []
    sealed = Store(tmp_path).seal_legacy(show=lambda path, sums: shown.append((path, sorted(sums))))
    assert sealed == [folder] and shown == [(folder, ["records.jsonl", "run.json"])]
    assert Store(tmp_path).load("smoke", "fault_toy", key).sealed


def test_a_run_whose_config_does_not_hash_to_its_key_is_refused(saved):
    """run.json edited consistently (its checksum updated too) still cannot pass: the key is a hash of
    the config, code version and data fingerprint it records."""
    import hashlib

    meta = json.loads((saved / "run.json").read_text())
    meta["config"] = dict(meta["config"], n=meta["config"].get("n", 0) + 1)
    data = json.dumps(meta).encode()
    (saved / "run.json").write_bytes(data)
    sums = (saved / CHECKSUM_FILE).read_text().splitlines()
    sums = [f"{hashlib.sha256(data).hexdigest()}  run.json" if line.endswith("  run.json") else line for line in sums]
    (saved / CHECKSUM_FILE).write_text("\n".join(sums) + "\n")
    from analysis.experiments import get_or_run

    with pytest.raises(StoreError, match="does not hash to its key"):
        Store(saved.parent.parent.parent).load("smoke", "fault_toy", saved.name).check_key()
    with pytest.raises(StoreError, match="does not hash to its key"):
        get_or_run("fault_toy", "smoke", store=Store(saved.parent.parent.parent))


def test_sealed_runs_without_a_format_marker_get_one(saved):
    """mark_format adds store_format to a sealed run's run.json (and its new checksum); from then on a
    missing checksum file is damage, never a legacy run."""
    meta = json.loads((saved / "run.json").read_text())
    del meta["store_format"]
    import hashlib

    data = json.dumps(meta).encode()
    (saved / "run.json").write_bytes(data)
    sums = [f"{hashlib.sha256(data).hexdigest()}  run.json" if line.endswith("  run.json") else line
            for line in (saved / CHECKSUM_FILE).read_text().splitlines()]
    (saved / CHECKSUM_FILE).write_text("\n".join(sums) + "\n")
    store = Store(saved.parent.parent.parent)
    assert store.mark_format() == [saved]
    assert store.load("smoke", "fault_toy", saved.name).verify().meta["store_format"] == 2
    (saved / CHECKSUM_FILE).unlink()
    with pytest.raises(StoreError, match="this run was saved with checksums"):
        store.load("smoke", "fault_toy", saved.name)


def test_every_committed_run_is_sealed_and_marked():
    from analysis.paths import PROJECT_ROOT

    for meta_path in sorted((PROJECT_ROOT / "results").glob("*/*/*/run.json")):
        meta = json.loads(meta_path.read_text())
        assert meta.get("store_format") == 2 and (meta_path.parent / CHECKSUM_FILE).exists(), meta_path


def test_seal_refuses_a_damaged_legacy_run(tmp_path):
    folder = exp_dir(tmp_path) / KEY
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("[1, 2]")
    with pytest.raises(StoreError, match="not an object"):
        Store(tmp_path).seal_legacy()
    assert not (folder / CHECKSUM_FILE).exists()


def test_run_json_stored_under_another_key_is_refused(saved):
    other = saved.with_name("f" * 16)
    os.replace(saved, other)
    with pytest.raises(StoreError, match="but is stored under"):
        Store(saved.parent.parent.parent).load("smoke", "fault_toy", other.name)


def test_arrays_with_a_damaged_member_and_valid_checksum_is_clear(tmp_path):
    """A legacy npz whose zip member is corrupt (no checksum to catch it): the parse error names it."""
    folder = exp_dir(tmp_path) / KEY
    folder.mkdir(parents=True)
    meta = {"experiment": "fault_toy", "profile": "smoke", "key": KEY, "created": "x", "wall_seconds": 1,
            "config": {}, "env": {}, "metrics": {}}
    (folder / "run.json").write_text(json.dumps(meta))
    np.savez_compressed(folder / "arrays.npz", a=np.arange(1000.0))
    data = bytearray((folder / "arrays.npz").read_bytes())
    data[60:70] = b"\x00" * 10
    (folder / "arrays.npz").write_bytes(bytes(data))
    from analysis.store import Run

    with pytest.raises(StoreError, match="arrays.npz: cannot be read as .npz"):
        _ = Run(folder, unsealed_ok=True).arrays


# --- disks ------------------------------------------------------------------------------------


def test_read_only_store_fails_before_compute(tmp_path, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    CALLS.clear()
    with pytest.raises(StoreError, match="read-only") as err:
        get_or_run("fault_toy", "smoke", store=Store(tmp_path))
    assert CALLS == [] and "ANALYSIS_RESULTS_DIR" in str(err.value)


def test_store_under_a_file_fails_before_compute(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    CALLS.clear()
    with pytest.raises(StoreError, match="cannot write a run here"):
        get_or_run("fault_toy", "smoke", store=Store(blocker))
    assert CALLS == []


def test_full_disk_fails_before_compute(tmp_path, monkeypatch):
    monkeypatch.setenv(store_mod.MIN_FREE_ENV, str(10**12))  # more than any disk has free
    CALLS.clear()
    with pytest.raises(StoreError, match="MiB free"):
        get_or_run("fault_toy", "smoke", store=Store(tmp_path))
    assert CALLS == []


def test_disk_full_during_save_keeps_the_computed_run(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "staged-arrays:enospc")
    with pytest.raises(StoreError, match="the disk is full") as err:
        get_or_run("fault_toy", "smoke", store=Store(tmp_path))
    monkeypatch.delenv(FAULT_ENV, raising=False)
    rescue = Path(str(err.value).split("written to ")[1].split(";")[0])
    try:
        assert Run(rescue, KEY).verify().metrics == {"v": 1.0}  # a complete run, ready to move into place
        assert hidden(tmp_path) == [] and Store(tmp_path).runs() == []
    finally:
        import shutil

        shutil.rmtree(rescue, ignore_errors=True)


def test_fault_points_are_all_reached():
    """Every named point exists in save's code path (a renamed point would make its tests vacuous)."""
    import inspect

    source = inspect.getsource(store_mod.Store)
    for point in SAVE_POINTS:
        assert f'_fault_point("{point}")' in source


def test_zip_module_detects_flipped_npz_bytes_without_checksum_too():
    """Sanity for the arrays case above: the damage used is one zipfile itself rejects."""
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=np.arange(1000.0))
    data = bytearray(buffer.getvalue())
    data[60:70] = b"\x00" * 10
    with pytest.raises(Exception):
        with np.load(io.BytesIO(bytes(data))) as npz:
            npz["a"]
    assert zipfile.is_zipfile(io.BytesIO(buffer.getvalue()))


def test_data_changed_during_the_run_is_not_stored_under_the_old_key(tmp_path):
    data = {"fp": "a"}

    def compute(config):
        data["fp"] = "b"  # the data directory is edited while the run computes
        return Output(metrics={"v": 1})

    register(Experiment(name="fault_drift", title="", chapter="", configs={"smoke": ToyC()}, compute=compute,
                        code_version="1", data_fingerprint=lambda c: data["fp"]))
    with pytest.raises(Exception, match="input data changed while the run computed") as err:
        get_or_run("fault_drift", "smoke", store=Store(tmp_path))
    assert "\n" not in str(err.value) and Store(tmp_path).runs() == []


def test_a_damaged_table_is_never_reused(saved):
    (saved / "extra.jsonl").write_text('{"x": 2}\n')  # valid JSON, not what was stored
    with pytest.raises(StoreError, match="extra.jsonl: content differs") as err:
        get_or_run("fault_toy", "smoke", store=Store(saved.parent.parent.parent))
    assert "git checkout" not in str(err.value)  # smoke runs are not committed: no such advice


def test_an_object_array_is_refused_before_it_is_stored_unreadable(tmp_path):
    import pickle

    out = Output(metrics={}, arrays={"names": np.array(["a", None], dtype=object)})
    with pytest.raises(ValueError, match="array 'names' has dtype object") as err:
        Store(tmp_path).save(experiment="fault_toy", profile="smoke", key=KEY, config=ToyC(), output=out,
                             code_version="1", source_hash="s", data_fingerprint="d", env={}, wall_seconds=0)
    kept = Path(str(err.value).split("pickled to ")[1])
    try:
        assert pickle.loads(kept.read_bytes()).arrays["names"].tolist() == ["a", None]
    finally:
        kept.unlink()
    assert Store(tmp_path).runs() == []


def test_an_old_copy_is_kept_while_the_run_in_place_is_damaged(tmp_path):
    assert child(tmp_path, 1.0)[0] == 0
    final = exp_dir(tmp_path) / KEY
    shutil_copy = __import__("shutil").copytree
    shutil_copy(final, final.with_name(f".{KEY}.old.1"))  # as if killed at "installed"
    (final / "extra.jsonl").write_text("damaged\n")
    with pytest.raises(StoreError, match="extra.jsonl"):
        Store(tmp_path).load("smoke", "fault_toy", KEY).verify()
    assert hidden(tmp_path) == [f".{KEY}.old.1"]  # the intact copy is not deleted


@pytest.mark.parametrize("value", ["abc", "-5", "nan"])
def test_a_bad_free_space_setting_is_a_clear_error(tmp_path, monkeypatch, value):
    from analysis.errors import ConfigError

    monkeypatch.setenv("ANALYSIS_STORE_MIN_FREE_MB", value)
    with pytest.raises(ConfigError, match="ANALYSIS_STORE_MIN_FREE_MB.*not a number of MiB.*fix"):
        Store(tmp_path).check_writable("smoke", "fault_toy")


def test_a_reader_holding_a_run_that_force_replaced_is_told_so(tmp_path):
    """A reader opened the run, then another process's `run --force` replaced it with other bytes:
    the reader's next read says the run was replaced (and that the new one is intact), not that it
    is damaged; a reader opened afterwards reads the new run."""
    assert child(tmp_path, 1.0)[0] == 0
    key = next(exp_dir(tmp_path).iterdir()).name
    reader = Store(tmp_path).load("smoke", "fault_toy", key)
    assert child(tmp_path, 2.0, force=True)[0] == 0
    with pytest.raises(StoreError, match="replaced by a newer computation") as err:
        reader.rows("extra")
    assert "new run is intact" in str(err.value)
    assert Store(tmp_path).load("smoke", "fault_toy", key).rows("extra") == [{"x": 2.0}]
