"""Result store: stable content addresses, atomic writes, no mixing of profiles."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from analysis import experiments
from analysis.experiments import Experiment, get_or_run, register
from analysis.store import Output, Store, fingerprint_files, run_key


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    n: int = 3  # items to produce
    scale: float = 1.0  # multiplies each item
    tags: tuple[str, ...] = ("a", "b")  # a tuple, to check canonical JSON of sequences


CALLS = []


def _compute(config: ToyConfig) -> Output:
    CALLS.append(config)
    rows = [{"id": f"item-{i}", "value": i * config.scale} for i in range(config.n)]
    return Output(metrics={"total": sum(r["value"] for r in rows)}, tables={"records": rows},
                  arrays={"values": np.arange(config.n) * config.scale})


TOY = register(Experiment(
    name="toy", title="Toy", chapter="tests",
    configs={"smoke": ToyConfig(n=2), "offline": ToyConfig(n=5)},
    compute=_compute, code_version="1", data_fingerprint=lambda c: "none",
))


def test_key_is_stable_across_processes_and_hash_seeds():
    here = run_key("toy", "smoke", ToyConfig(), "1", "fp")
    code = ("from analysis.store import run_key; import dataclasses\n"
            "@dataclasses.dataclass(frozen=True)\n"
            "class ToyConfig:\n n: int = 3\n scale: float = 1.0\n tags: tuple = ('a', 'b')\n"
            "print(run_key('toy', 'smoke', ToyConfig(), '1', 'fp'))")
    for seed in ("0", "123"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == here


def test_key_changes_with_every_input():
    base = run_key("toy", "smoke", ToyConfig(), "1", "fp")
    assert run_key("toy", "smoke", ToyConfig(n=4), "1", "fp") != base
    assert run_key("toy", "offline", ToyConfig(), "1", "fp") != base
    assert run_key("toy", "smoke", ToyConfig(), "2", "fp") != base
    assert run_key("toy", "smoke", ToyConfig(), "1", "other") != base
    assert run_key("other", "smoke", ToyConfig(), "1", "fp") != base
    assert len(base) == 16 and int(base, 16) >= 0


def test_data_fingerprint_follows_content_not_name(tmp_path):
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    a.write_bytes(b"xyz")
    b.write_bytes(b"xyz")
    c.write_bytes(b"xy!")
    assert fingerprint_files([a]) == fingerprint_files([b]) != fingerprint_files([c])


def test_get_or_run_computes_once_and_reloads(tmp_path):
    store = Store(tmp_path)
    CALLS.clear()
    first = get_or_run("toy", "smoke", store=store)
    again = get_or_run("toy", "smoke", store=store)
    assert len(CALLS) == 1 and first.key == again.key
    assert again.metrics == {"total": 1.0}
    assert [r["id"] for r in again.rows()] == ["item-0", "item-1"]
    np.testing.assert_array_equal(again.arrays["values"], [0.0, 1.0])
    meta = json.loads((again.path / "run.json").read_text())
    assert meta["config"] == {"n": 2, "scale": 1.0, "tags": ["a", "b"]}
    assert meta["env"]["python"] and meta["wall_seconds"] >= 0 and meta["profile"] == "smoke"


def test_profiles_never_mix(tmp_path):
    store = Store(tmp_path)
    offline = get_or_run("toy", "offline", store=store)
    get_or_run("toy", "smoke", store=store, force=True)  # a forced smoke run...
    assert experiments.lookup("toy", "offline", store).metrics == offline.metrics  # ...leaves offline alone
    assert experiments.lookup("toy", "offline", store).path.parts[-3] == "offline"
    assert {r.profile for r in store.runs()} == {"offline", "smoke"}


def test_a_config_runs_under_its_own_experiment(tmp_path):
    run = get_or_run(ToyConfig(n=1, scale=2.0), "smoke", store=Store(tmp_path))
    assert run.experiment == "toy" and run.metrics == {"total": 0.0}


def test_failed_write_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path)
    bad = Output(metrics={}, tables={"records": [{"id": 1, "x": object()}]})
    with pytest.raises(TypeError, match="raw output was pickled to") as err:
        store.save(experiment="toy", profile="smoke", key="k" * 16, config=ToyConfig(), output=bad,
                   code_version="1", source_hash="s", data_fingerprint="d", env={}, wall_seconds=0)
    os.unlink(str(err.value).split("pickled to ")[1])  # the computation is kept, not lost
    folder = tmp_path / "smoke" / "toy"
    assert not folder.exists() or list(folder.iterdir()) == []  # no half-written run, no staging folder


def test_existing_run_is_kept_unless_replaced(tmp_path):
    store = Store(tmp_path)
    common = dict(experiment="toy", profile="offline", key="a" * 16, config=ToyConfig(), code_version="1",
                  source_hash="s", data_fingerprint="d", env={}, wall_seconds=1)
    store.save(output=Output(metrics={"v": 1}), **common)
    assert store.save(output=Output(metrics={"v": 2}), **common).metrics == {"v": 1}
    assert store.save(output=Output(metrics={"v": 3}), replace=True, **common).metrics == {"v": 3}
    assert [p.name for p in (tmp_path / "offline" / "toy").iterdir()] == ["a" * 16]


def test_records_need_unique_ids(tmp_path):
    store = Store(tmp_path)
    dup = Output(metrics={}, tables={"records": [{"id": "x"}, {"id": "x"}]})
    with pytest.raises(ValueError, match="unique"):
        store.save(experiment="toy", profile="smoke", key="b" * 16, config=ToyConfig(), output=dup,
                   code_version="1", source_hash="s", data_fingerprint="d", env={}, wall_seconds=0)


def test_configs_must_be_frozen_dataclasses():
    @dataclasses.dataclass
    class Mutable:
        n: int = 1

    with pytest.raises(TypeError, match="frozen"):
        register(Experiment(name="bad", title="", chapter="", configs={"smoke": Mutable()},
                            compute=_compute, code_version="1", data_fingerprint=lambda c: ""))
