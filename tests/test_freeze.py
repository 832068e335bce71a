"""The freezer sync: a chapter's frozen output is dropped exactly when what it read changed."""

import json
import subprocess
import sys
import textwrap

from analysis import freeze


def _project(tmp_path):
    """A project with one frozen chapter that read one experiment folder and one annotation file."""
    (tmp_path / "results" / "offline" / "exp" / "k1").mkdir(parents=True)
    (tmp_path / "results" / "offline" / "exp" / "k1" / "run.json").write_text('{"a": 1}')
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "exp-offline.jsonl").write_text("{}\n")
    frozen = tmp_path / "_freeze" / "chapters" / "one" / "execute-results"
    frozen.mkdir(parents=True)
    (frozen / "html.json").write_text("{}")
    deps = {"profile": "offline", "source": freeze.source_digest(), "results": "results",
            "folders": {"offline/exp": freeze.folder_digest(tmp_path / "results" / "offline" / "exp")},
            "files": {"annotations/exp-offline.jsonl": freeze.file_digest(tmp_path / "annotations" / "exp-offline.jsonl")}}
    path = tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "one.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(deps))
    return frozen


def test_nothing_changed_keeps_the_frozen_chapter(tmp_path):
    frozen = _project(tmp_path)
    assert freeze.sync(tmp_path, "offline", log=lambda m: None) == []
    assert frozen.exists()


def test_each_kind_of_change_drops_it(tmp_path):
    changes = {
        "profile": lambda root: "smoke",
        "new run": lambda root: (root / "results/offline/exp/k2").mkdir() or
        (root / "results/offline/exp/k2/run.json").write_text("{}") or "offline",
        "replaced run": lambda root: (root / "results/offline/exp/k1/run.json").write_text('{"a": 2}') or "offline",
        "annotation": lambda root: (root / "annotations/exp-offline.jsonl").write_text('{"x": 1}\n') or "offline",
    }
    for name, change in changes.items():
        root = tmp_path / name.replace(" ", "_")
        root.mkdir()
        frozen = _project(root)
        profile = change(root)
        messages = []
        assert freeze.sync(root, profile, log=messages.append) == ["chapters/one"], name
        assert not frozen.exists() and messages, name


def test_hidden_folders_of_a_save_in_progress_do_not_count(tmp_path):
    frozen = _project(tmp_path)
    (tmp_path / "results/offline/exp/.k3.staging").mkdir()
    (tmp_path / "results/offline/exp/.k3.staging/run.json").write_text("{}")
    assert freeze.sync(tmp_path, "offline", log=lambda m: None) == [] and frozen.exists()


def test_a_frozen_chapter_without_a_record_executes_again(tmp_path):
    frozen = _project(tmp_path)
    (tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "one.json").unlink()
    assert freeze.sync(tmp_path, "offline", log=lambda m: None) == ["chapters/one"]
    assert not frozen.exists()


def test_recorder_notes_what_a_rendered_chapter_reads(tmp_path):
    """In a kernel as Quarto starts it (its environment variables set), reading a stored run and an
    annotation file writes the record that the sync compares."""
    _project(tmp_path)
    (tmp_path / "chapters").mkdir()
    code = textwrap.dedent(f"""
        import os, pathlib
        os.environ.update(QUARTO_PROJECT_ROOT={str(tmp_path)!r}, QUARTO_DOCUMENT_PATH={str(tmp_path / "chapters")!r},
                          QUARTO_DOCUMENT_FILE="two.qmd", QUARTO_EXECUTE_INFO="x", QUARTO_PROFILE="offline",
                          ANALYSIS_RESULTS_DIR={str(tmp_path / "results")!r})
        from analysis import freeze
        assert freeze.record_reads()
        pathlib.Path({str(tmp_path / "results/offline/exp/k1/run.json")!r}).read_text()
        pathlib.Path({str(tmp_path / "annotations/exp-offline.jsonl")!r}).read_text()
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    record = json.loads((tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "two.json").read_text())
    assert record["profile"] == "offline" and record["source"] == freeze.source_digest()
    assert record["folders"] == {"offline/exp": freeze.folder_digest(tmp_path / "results/offline/exp")}
    assert list(record["files"]) == ["annotations/exp-offline.jsonl"]
