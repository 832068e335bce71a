"""Command line: ``python -m analysis {run,status,seal,doctor,book-check}`` (also the ``analysis`` script)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from . import experiments
from .errors import AnalysisError, ConfigError, StoreError
from .paths import DATA_DIR_ENV, RESULTS_DIR_ENV, data_dir
from .profiles import DEFAULT_PROFILE, PROFILE_ENV, PROFILES, active_profile
from .store import Store


def _cmd_run(args) -> int:
    registry = experiments.load_all()
    names = sorted(registry) if args.experiment == "all" else [args.experiment]
    for name in names:
        if name not in registry:
            print(f"unknown experiment {name!r}; known: all, {', '.join(sorted(registry))}", file=sys.stderr)
            return 2
    profile = active_profile(args.profile)
    store = Store()
    for name in names:  # every experiment's data is validated (fingerprinted) before any computing starts
        exp = experiments.get(name)
        experiments.resolve(exp, exp.config(profile), profile, store)
    for name in names:
        stored = not args.force and experiments.lookup(name, profile) is not None
        started = time.perf_counter()
        run = experiments.get_or_run(name, profile, force=args.force)
        took = time.perf_counter() - started
        how = f"reused the stored run in {took:.1f} s" if stored else f"computed in {took:.0f} s"
        print(f"{name} [{profile}] {run.key}: {how} -> {run.path}")
    return 0


# Profiles whose missing runs the pre-render step computes on this machine; the others (full: GPU,
# model hub) stop the render with what to do instead.
RENDER_COMPUTES = ("offline", "smoke")


def _cmd_prepare(args) -> int:
    """Bring the profile's results up to date before Quarto executes the chapters (pre-render step).

    Every stored run is verified (a damaged file stops here, with the store's message); missing runs
    are computed with progress bars under ``offline``/``smoke``; under ``full`` they stop the render,
    in seconds, with one message: which runs, roughly what they cost, and the Colab notebook.
    """
    from .repo import colab_hint

    profile = active_profile(args.profile)
    store = Store()
    registry = experiments.load_all()
    missing = []
    for name, exp in sorted(registry.items()):
        key, _, run = experiments.resolve(exp, exp.config(profile), profile, store)
        if run is None:
            missing.append((name, key))
        else:
            run.verify()
    if not missing:
        print(f"results [{profile}]: all {len(registry)} runs stored and verified ({store.root})")
        return 0
    if profile not in RENDER_COMPUTES and not args.compute:
        lines = [f"results [{profile}]: {len(missing)} of {len(registry)} runs are not stored in {store.root / profile}, "
                 "and a render never computes them:"]
        for name, key in missing:
            cost = registry[name].cost.get(profile, "")
            lines.append(f"  - {name} ({key}){': ' + cost if cost else ''}")
        lines += [
            f"The {profile} profile needs the assignment's models, a GPU and internet. Compute it on Colab:",
            f"  1. {colab_hint()}",
            "  2. download results-full.tar.gz at the end, then here: tar -xzf results-full.tar.gz",
            f"  3. make render PROFILE={profile}",
            f"(On a GPU machine with internet: python -m analysis run all --profile {profile}; "
            "README section 'Run the hand-in on Colab'.)",
        ]
        print("\n".join(lines), file=sys.stderr)
        return 3
    for name, key in missing:
        print(f"{name} [{profile}] {key}: computing (not stored yet)", flush=True)
        started = time.perf_counter()
        run = experiments.get_or_run(name, profile)
        print(f"{name} [{profile}] {run.key}: computed in {time.perf_counter() - started:.0f} s -> {run.path}")
    return 0


def _status_rows(store: Store, profiles) -> list[dict]:
    """One row per (experiment, profile): stored, missing, damaged or unknown (data not checkable)."""
    rows = []
    for name, exp in sorted(experiments.load_all().items()):
        for profile in profiles:
            if profile not in exp.configs:
                continue
            row = {"experiment": name, "profile": profile, "key": None, "state": "unknown", "problem": None,
                   "wall_seconds": None, "created": None, "device": None, "metrics": None, "stale_code": []}
            rows.append(row)
            try:
                try:
                    row["key"] = exp.key(exp.configs[profile], profile)
                except (AnalysisError, OSError) as exc:  # e.g. no data folder, or full-profile data not downloaded
                    row["problem"] = " ".join(str(exc).split())
                    run = experiments.stored_with_recorded_fingerprint(store, exp, exp.configs[profile], profile)
                    if run is None:
                        continue
                    row["key"], row["problem"] = run.key, "(data not at hand: matched by the fingerprint the run recorded)"
                else:
                    run = store.load(profile, name, row["key"])
                if run is not None:
                    run.verify().check_key()  # as `run` and `prepare` do: an edited run is not "stored"
            except AnalysisError as exc:
                row.update(state="damaged", problem=str(exc))
                continue
            if run is None:
                row["state"] = "missing"
                continue
            row.update(state="stored", wall_seconds=run.wall_seconds, created=run.created,
                       device=run.env.get("device") if isinstance(run.env, dict) else None, metrics=run.metrics,
                       stale_code=experiments.code_changes(exp, run), sealed=run.sealed)
    return rows


def _cmd_status(args) -> int:
    from .doctor import quiet_libraries

    quiet_libraries()  # status reads and downloads nothing: no progress bars, no library warnings
    store = Store()
    if store.root.exists() and not store.root.is_dir():
        raise StoreError(store.root, "the result store is a file, not a folder",
                         f"point {RESULTS_DIR_ENV} at a folder (or unset it for the project's results/)")
    profiles = [active_profile(args.profile)] if args.profile else list(PROFILES)
    rows = _status_rows(store, profiles)
    if args.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
    else:
        print(f"result store: {store.root}")
        print(f"{'experiment':<22} {'profile':<8} {'state':<9} {'key':<17} {'wall':>8}  created")
        for r in rows:
            wall = f"{r['wall_seconds']:.0f} s" if r.get("wall_seconds") is not None else "-"
            changed = r.get("stale_code")
            note = ("" if changed == [] or r["state"] != "stored" else
                    "  (its code is in no commit: cannot tell whether it changed)" if changed is None else
                    f"  (code changed since: {', '.join(changed)}; bump code_version if results change)")
            if r.get("sealed") is False:
                note += "  (no checksums yet: `python -m analysis seal` adds them)"
            if r["problem"]:
                note += f"  {r['problem']}"
            print(f"{r['experiment']:<22} {r['profile']:<8} {r['state']:<9} {r['key'] or '-':<17} {wall:>8}  "
                  f"{r.get('created') or '-'}{note}")
    return 1 if any(r["state"] == "damaged" for r in rows) else 0


def _cmd_seal(args) -> int:
    """Seal runs saved before checksums existed, listing each file and the sha256 it is sealed with
    (seal only runs you know are intact: from then on they are verified against these)."""
    store = Store()

    def show(run_dir, sums):
        print(f"sealing {run_dir}:")
        for name in sorted(sums):
            print(f"  {sums[name]}  {name}")

    sealed = store.seal_legacy(active_profile(args.profile) if args.profile else None, show=show)
    for path in sealed:
        print(f"sealed {path}")
    print(f"{len(sealed)} run(s) sealed; runs that already had checksums were left alone")
    return 0


def _cmd_doctor(args) -> int:
    from .doctor import run_doctor

    return run_doctor(load_models=not args.no_load, profile=args.profile)


def _cmd_book_check(args) -> int:
    from .book import check_book

    for name in args.files:
        if not os.path.isfile(name):
            raise ConfigError(f"{name}: no such file (fix: pass an existing .qmd file, e.g. chapters/01-segment-anything.qmd, "
                              "or no file to check every file listed in _quarto.yml)")
    return check_book(args.files, profile=args.profile or "smoke", timeout=args.timeout)


def _cmd_lab_decoder(args) -> int:
    from .sam.explorer import decoder_bytes
    from .store import Store

    parts = args.run.split("/")
    if (len(parts) != 3 or parts[0] not in PROFILES or parts[1] != "sam_explorer"
            or not re.fullmatch(r"[0-9a-f]{16}", parts[2])):
        raise ConfigError(f"{args.run}: not a stored explorer run (fix: pass <profile>/sam_explorer/<16-hex key> with a "
                          f"profile among {', '.join(PROFILES)}, as the page's data-lab-decoder says; "
                          "`python -m analysis status` lists the keys)")
    run = Store().load(*parts)
    if run is None:
        raise ConfigError(f"{args.run}: no such stored run (fix: python -m analysis run sam_explorer --profile {parts[0]})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_bytes(decoder_bytes(run))
    tmp.replace(out)
    print(f"lab-decoder: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="analysis", description=__doc__)
    parser.add_argument("--data-dir", help=f"data directory (sets ${DATA_DIR_ENV}; now {data_dir()})")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="compute (or reuse) an experiment's result under a profile")
    run.add_argument("experiment", help="an experiment name, or 'all'")
    run.add_argument("--profile", choices=PROFILES, default=None,
                     help=f"experiment profile (default: ${PROFILE_ENV} or {DEFAULT_PROFILE})")
    run.add_argument("--force", action="store_true", help="recompute and replace the stored run")
    run.set_defaults(func=_cmd_run)

    prep = sub.add_parser("prepare", help="verify the profile's stored runs and compute missing ones (the "
                                          "render's pre-render step; under full, missing runs stop with what to do)")
    prep.add_argument("--profile", choices=PROFILES, default=None,
                      help=f"experiment profile (default: ${PROFILE_ENV} or {DEFAULT_PROFILE})")
    prep.add_argument("--compute", action="store_true", help="compute missing runs under every profile (full too)")
    prep.set_defaults(func=_cmd_prepare)

    status = sub.add_parser("status", help="which results exist, which are missing, how long each took",
                            description="One line per experiment and profile: stored, missing, damaged (a stored "
                                        "file fails its checksum or cannot be parsed) or unknown (its data cannot "
                                        "be checked). Exit status 1 when a run is damaged.")
    status.add_argument("--profile", choices=PROFILES, default=None, help="only this profile (default: all)")
    status.add_argument("--json", action="store_true",
                        help="one JSON object per experiment and profile, missing and damaged runs included")
    status.set_defaults(func=_cmd_status)

    seal = sub.add_parser("seal", help="add checksum files to runs saved before checksums existed",
                          description="Writes checksums.sha256 into stored runs that lack one (runs saved by "
                                      "older code), after parsing every file of the run; files are not changed.")
    seal.add_argument("--profile", choices=PROFILES, default=None, help="only this profile (default: all)")
    seal.set_defaults(func=_cmd_seal)

    doctor = sub.add_parser("doctor", help="which models and data are reachable, which device",
                            description="Without --profile: loads and runs every offline model, validates the local "
                                        "data, names the device. --profile full: exactly what the full profile needs "
                                        "(SAM ViT-H, hub models and data at their pinned commits, the lung file, the "
                                        "GPU and its bf16/fp16 support, the stored runs), each missing piece with "
                                        "how to get it; nothing is downloaded. Exit status 1 when something is missing.")
    doctor.add_argument("--profile", choices=PROFILES, default=None,
                        help="full: check what the full profile needs (default: the offline checks)")
    doctor.add_argument("--no-load", action="store_true",
                        help="only locate models (reported as 'located', not checked) and check data files; "
                             "no model is loaded or run")
    doctor.set_defaults(func=_cmd_doctor)

    lab = sub.add_parser("lab-decoder", help="write a sam_explorer run's ONNX decoder (exported again, checked "
                                             "against the run's sha256; used by scripts/lab_assets.py)")
    lab.add_argument("run", help="<profile>/sam_explorer/<key>")
    lab.add_argument("--out", required=True, help="file to write")
    lab.set_defaults(func=_cmd_lab_decoder)

    book = sub.add_parser("book-check", help="execute chapters' Python cells and resolve refs (no Quarto)")
    book.add_argument("files", nargs="*", help=".qmd files (default: every file listed in _quarto.yml)")
    book.add_argument("--profile", choices=PROFILES, default=None, help="default: smoke")
    book.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    book.set_defaults(func=_cmd_book_check)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.data_dir:
            if not os.path.isdir(args.data_dir):
                raise ConfigError(f"--data-dir {args.data_dir}: no such directory (fix: pass the folder that holds "
                                  "lung/, ag_news/ and scienceqa/)")
            os.environ[DATA_DIR_ENV] = os.path.abspath(args.data_dir)
        if getattr(args, "profile", None):
            os.environ[PROFILE_ENV] = args.profile
        else:
            active_profile()  # a mistyped $QUARTO_PROFILE is an error here too, before any work
        return args.func(args)
    except AnalysisError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `status --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
