"""The freezer sync: a chapter's frozen output is dropped exactly when what it read changed."""

import json
import subprocess
import sys
import textwrap

from analysis import freeze


def _project(tmp_path):
    """A project with one frozen chapter that read one experiment folder, one annotation file, one
    benchmark file and one package module, and shows one frozen figure."""
    run = tmp_path / "results" / "offline" / "exp" / "k1"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"a": 1}')
    (run / "checksums.sha256").write_text("abc  table.csv\n")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "exp-offline.jsonl").write_text("{}\n")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "b.json").write_text('{"s": 1}')
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "chapter.py").write_text("X = 1\n")
    doc = tmp_path / "_freeze" / "chapters" / "one"
    frozen = doc / "execute-results"
    frozen.mkdir(parents=True)
    (frozen / "html.json").write_text(json.dumps({"result": {"markdown": "![](one_files/figure-html/fig-a-output-1.png)"}}))
    (doc / "figure-html").mkdir()
    (doc / "figure-html" / "fig-a-output-1.png").write_bytes(b"png")
    deps = {"profile": "offline", "results": "results",
            "modules": {"chapter.py": freeze.file_digest(package / "chapter.py")},
            "folders": {"offline/exp": freeze.folder_digest(tmp_path / "results" / "offline" / "exp")},
            "files": {"annotations/exp-offline.jsonl": freeze.file_digest(tmp_path / "annotations" / "exp-offline.jsonl"),
                      "bench/results/b.json": freeze.file_digest(tmp_path / "bench" / "results" / "b.json")}}
    path = tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "one.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(deps))
    return frozen


def _sync(root, profile="offline", **kw):
    messages = []
    kw.setdefault("results", root / "results")
    dropped = freeze.sync(root, profile, log=messages.append, **kw)
    return dropped, messages


def test_nothing_changed_keeps_the_frozen_chapter(tmp_path, monkeypatch):
    frozen = _project(tmp_path)
    monkeypatch.setattr(freeze, "_PACKAGE_DIR", tmp_path / "pkg")
    monkeypatch.setattr(freeze.stale_reason, "__defaults__", (tmp_path / "pkg",))
    assert _sync(tmp_path) == ([], [])
    assert frozen.exists()


def test_each_kind_of_change_drops_it(tmp_path, monkeypatch):
    changes = {
        "new run": lambda root: (root / "results/offline/exp/k2").mkdir() or
        (root / "results/offline/exp/k2/run.json").write_text("{}"),
        "replaced run": lambda root: (root / "results/offline/exp/k1/run.json").write_text('{"a": 2}'),
        "a stored file re-checksummed": lambda root: (root / "results/offline/exp/k1/checksums.sha256").write_text("abd  table.csv\n"),
        "annotation": lambda root: (root / "annotations/exp-offline.jsonl").write_text('{"x": 1}\n'),
        "benchmark": lambda root: (root / "bench/results/b.json").write_text('{"s": 2}'),
        "module it imported": lambda root: (root / "pkg/chapter.py").write_text("X = 2\n"),
        "frozen figure deleted": lambda root: (root / "_freeze/chapters/one/figure-html/fig-a-output-1.png").unlink(),
    }
    for name, change in changes.items():
        root = tmp_path / name.replace(" ", "_")
        root.mkdir()
        frozen = _project(root)
        monkeypatch.setattr(freeze.stale_reason, "__defaults__", (root / "pkg",))
        assert _sync(root) == ([], []), name  # unchanged: kept
        change(root)
        dropped, messages = _sync(root)
        assert dropped == ["chapters/one"], name
        assert not frozen.exists() and messages, name


def test_another_store_in_force_drops_it(tmp_path, monkeypatch):
    frozen = _project(tmp_path)
    monkeypatch.setattr(freeze.stale_reason, "__defaults__", (tmp_path / "pkg",))
    other = tmp_path / "elsewhere"
    other.mkdir()
    dropped, messages = _sync(tmp_path, results=other)
    assert dropped == ["chapters/one"] and "result store" in messages[0] and not frozen.exists()


def test_other_profiles_never_touch_the_committed_freeze(tmp_path, monkeypatch):
    frozen = _project(tmp_path)
    monkeypatch.setattr(freeze.stale_reason, "__defaults__", (tmp_path / "pkg",))
    (tmp_path / "results/offline/exp/k1/run.json").write_text('{"a": 3}')  # would be stale for offline
    for profile in ("full", "smoke"):
        assert _sync(tmp_path, profile) == ([], [])
    assert frozen.exists()


def test_an_unrelated_module_edit_keeps_it(tmp_path, monkeypatch):
    frozen = _project(tmp_path)
    monkeypatch.setattr(freeze.stale_reason, "__defaults__", (tmp_path / "pkg",))
    (tmp_path / "pkg" / "compute.py").write_text("# a module the chapter never imported\n")
    assert _sync(tmp_path) == ([], []) and frozen.exists()


def test_hidden_folders_of_a_save_in_progress_do_not_count(tmp_path, monkeypatch):
    frozen = _project(tmp_path)
    monkeypatch.setattr(freeze.stale_reason, "__defaults__", (tmp_path / "pkg",))
    (tmp_path / "results/offline/exp/.k3.staging").mkdir()
    (tmp_path / "results/offline/exp/.k3.staging/run.json").write_text("{}")
    assert _sync(tmp_path) == ([], []) and frozen.exists()


def test_a_page_showing_package_versions_executes_again_in_another_environment(tmp_path, monkeypatch):
    """The reproducibility appendix lists the rendering environment's versions: its frozen output
    is kept while they are the same, dropped (saying which package) when one differs."""
    import platform
    from importlib import metadata

    frozen = _project(tmp_path)
    monkeypatch.setattr(freeze.stale_reason, "__defaults__", (tmp_path / "pkg",))
    deps_path = tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "one.json"
    deps = json.loads(deps_path.read_text())
    deps["environment"] = {"python": platform.python_version(), "numpy": metadata.version("numpy"),
                           "no-such-distribution": None}
    deps_path.write_text(json.dumps(deps))
    assert _sync(tmp_path) == ([], [])
    deps["environment"]["numpy"] = "0.0.1"
    deps_path.write_text(json.dumps(deps))
    dropped, messages = _sync(tmp_path)
    assert dropped == ["chapters/one"] and not frozen.exists()
    assert f"the environment changed (numpy 0.0.1 -> {metadata.version('numpy')})" in messages[0]


def test_a_frozen_chapter_without_a_record_executes_again(tmp_path):
    frozen = _project(tmp_path)
    (tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "one.json").unlink()
    assert _sync(tmp_path)[0] == ["chapters/one"]
    assert not frozen.exists()


def test_recorder_notes_what_a_rendered_chapter_reads(tmp_path):
    """In a kernel as Quarto starts it (its environment variables set), reading a stored run, an
    annotation file and a benchmark file writes the record that the sync compares, with the package
    modules imported."""
    _project(tmp_path)
    (tmp_path / "chapters").mkdir()
    code = textwrap.dedent(f"""
        import os, pathlib
        os.environ.update(QUARTO_PROJECT_ROOT={str(tmp_path)!r}, QUARTO_DOCUMENT_PATH={str(tmp_path / "chapters")!r},
                          QUARTO_DOCUMENT_FILE="two.qmd", QUARTO_EXECUTE_INFO="x", QUARTO_PROFILE="offline",
                          ANALYSIS_RESULTS_DIR={str(tmp_path / "results")!r})
        import ipykernel  # noqa: F401  (records are kept only inside a kernel)
        from analysis import freeze
        assert freeze.record_reads()
        pathlib.Path({str(tmp_path / "results/offline/exp/k1/run.json")!r}).read_text()
        pathlib.Path({str(tmp_path / "annotations/exp-offline.jsonl")!r}).read_text()
        pathlib.Path({str(tmp_path / "bench/results/b.json")!r}).read_text()
        pathlib.Path({str(tmp_path / "out.txt")!r}).write_text("an output, not an input")
        os.makedirs({str(tmp_path / "figures/demo")!r})
        os.listdir({str(tmp_path / "figures/demo")!r})
        import sys; sys.path.insert(0, {str(tmp_path / "chapters")!r})
        os.listdir({str(tmp_path / "chapters")!r})  # the document's folder: on sys.path (''), listed by imports
        pathlib.Path({str(tmp_path / "data.bin")!r}).write_bytes(b"x")
        from analysis import preface
        preface.packages_table()  # the versions the page shows are part of its record
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    record = json.loads((tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "two.json").read_text())
    assert record["profile"] == "offline" and record["results"] == "results"
    assert "freeze.py" in record["modules"] and "__init__.py" in record["modules"]
    assert record["folders"] == {"offline/exp": freeze.folder_digest(tmp_path / "results/offline/exp")}
    assert sorted(record["files"]) == ["annotations/exp-offline.jsonl", "bench/results/b.json", "figures/demo/"]
    assert record["environment"]["python"] and record["environment"]["torch"]
    assert freeze.environment_now(tuple(record["environment"])) == record["environment"]


def test_a_listed_folder_is_an_input(tmp_path, monkeypatch):
    """A chapter that lists a folder (the group's demo screenshots) executes again when a file is added."""
    frozen = _project(tmp_path)
    monkeypatch.setattr(freeze.stale_reason, "__defaults__", (tmp_path / "pkg",))
    (tmp_path / "figures" / "demo").mkdir(parents=True)
    path = tmp_path / "_freeze" / freeze.DEPS_DIR / "chapters" / "one.json"
    deps = json.loads(path.read_text())
    deps["files"]["figures/demo/"] = freeze.listing_digest(tmp_path / "figures" / "demo")
    path.write_text(json.dumps(deps))
    assert _sync(tmp_path) == ([], [])
    (tmp_path / "figures" / "demo" / "point.png").write_bytes(b"png")
    assert _sync(tmp_path)[0] == ["chapters/one"] and not frozen.exists()


def test_inputs_saved_during_a_render_are_reported(tmp_path, monkeypatch):
    (tmp_path / "chapters").mkdir()
    doc = tmp_path / "chapters" / "a.qmd"
    doc.write_text("one\n")
    monkeypatch.setenv("QUARTO_PROJECT_INPUT_FILES", "chapters/a.qmd")
    freeze.snapshot_inputs(tmp_path)
    assert freeze.inputs_changed(tmp_path) == []
    doc.write_text("two\n")
    assert freeze.inputs_changed(tmp_path) == ["chapters/a.qmd"]


def _kernel_like(tmp_path, profile: str, kernel: bool) -> None:
    """A process with the variables Quarto sets for a chapter (inside a Jupyter kernel or not) that
    asks to record reads; asserts that it records nothing."""
    (tmp_path / "chapters").mkdir()
    code = textwrap.dedent(f"""
        import os
        os.environ.update(QUARTO_PROJECT_ROOT={str(tmp_path)!r}, QUARTO_DOCUMENT_PATH={str(tmp_path / "chapters")!r},
                          QUARTO_DOCUMENT_FILE="two.qmd", QUARTO_EXECUTE_INFO="x", QUARTO_PROFILE={profile!r})
        {"import ipykernel" if kernel else ""}
        from analysis import freeze
        assert not freeze.record_reads()
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert not (tmp_path / "_freeze").exists()


def test_a_process_outside_a_kernel_keeps_no_record(tmp_path):
    """Quarto's own environment variables reach the scripts it runs after the chapters (post-render:
    `python -m analysis lab-decoder`); such a process executes no document and must write no record."""
    _kernel_like(tmp_path, "offline", kernel=False)


def test_other_profiles_keep_no_record(tmp_path):
    """A chapter executed under full or smoke writes no record: the committed records are the offline
    profile's, and a full render must leave them as they are."""
    _kernel_like(tmp_path, "full", kernel=True)


def test_a_stale_staged_typst_template_is_dropped(tmp_path):
    """Quarto keeps its first staged copy of the book's Typst package: the pre-render step removes a copy
    that differs from the extension, so a patched template reaches the PDF."""
    import importlib.util

    from analysis.paths import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("pre_render", PROJECT_ROOT / "scripts" / "pre_render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = tmp_path / "_extensions" / "x" / "typst" / "packages" / "local" / "book" / "1.0"
    staged = tmp_path / ".quarto" / "typst" / "packages" / "local" / "book" / "1.0"
    for folder in (src, staged):
        folder.mkdir(parents=True)
        (folder / "lib.typ").write_text("// v1\n")
    assert mod.drop_stale_typst_packages(tmp_path) == [] and staged.is_dir()
    (src / "lib.typ").write_text("// v2, patched\n")
    assert mod.drop_stale_typst_packages(tmp_path) == [staged.parent] and not staged.parent.exists()


def test_another_profile_render_leaves_the_committed_freeze_as_it_was(tmp_path):
    """Pre-render under full moves _freeze/ aside; whatever Quarto then writes or deletes there is dropped
    and the committed freeze restored (post-render); a stash left by a failed render is kept and restored."""
    frozen = _project(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "_freeze").rglob("*"))
    freeze.stash_freeze(tmp_path, "full")
    assert not (tmp_path / "_freeze").exists()
    (tmp_path / "_freeze" / "chapters" / "one").mkdir(parents=True)  # Quarto's full-profile leftovers
    (tmp_path / "_freeze" / "chapters" / "one" / "junk.json").write_text("{}")
    freeze.stash_freeze(tmp_path, "full")  # an earlier full render never finished: the stash is kept
    assert freeze.restore_freeze(tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "_freeze").rglob("*")) == before and frozen.exists()
    assert not freeze.restore_freeze(tmp_path)  # nothing stashed: nothing to do
    freeze.stash_freeze(tmp_path, "smoke")
    freeze.stash_freeze(tmp_path, "offline")  # an offline render restores first
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "_freeze").rglob("*")) == before
