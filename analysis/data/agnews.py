"""AG News (Zhang, Zhao & LeCun 2015): four-class news topic classification.

Sources, in order:

- local: ``data_dir()/ag_news/{train,test}.parquet`` (or ``.csv``) with columns ``text`` (title + " "
  + description, as on the Hugging Face hub) and ``label`` (0-3). This project's offline copy holds
  the official 7,600-row test split and 8,794 rows of the 120,000-row train split.
- hub: ``fancyzhx/ag_news`` through ``datasets`` (the full 120,000 / 7,600 splits), for the ``full``
  profile.

Every frame is validated (:func:`validate`): texts must be non-empty strings and labels one of
0-3. Bad rows raise :class:`DataError` naming the file, the rows and the fix; nothing is silently
dropped. Over-long texts are *not* an error: the tokenizer truncates them at ``max_length`` tokens
(128 here), and the chapter reports how many were truncated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..paths import data_dir
from ..store import fingerprint_files

LABELS: tuple[str, ...] = ("World", "Sports", "Business", "Sci/Tech")  # official classes.txt order
HUB_ID = "fancyzhx/ag_news"
# The hub data set's commit: loads are pinned to it and it is part of the hub data fingerprint, so a
# changed data set changes the run key. It is the commit public projects pin for this data set (MTEB's
# AgNews task among them); to move on, put a newer commit of
# https://huggingface.co/datasets/fancyzhx/ag_news/commits/main here (full profile runs are then new).
HUB_REVISION = "eb185aade064a813bc0b7f42de02595523103ca4"
SPLITS = ("train", "test")


def folder() -> Path:
    return data_dir() / "ag_news"


def local_file(split: str) -> Path:
    """The local file for ``split`` (parquet preferred, CSV accepted)."""
    if split not in SPLITS:
        raise DataError(folder() / split, f"unknown split {split!r}", f"use one of {SPLITS}")
    for suffix in (".parquet", ".csv"):
        path = folder() / f"{split}{suffix}"
        if path.exists():
            return path
    raise DataError(
        folder() / f"{split}.parquet",
        "file not found",
        f"put AG News {split}.parquet (columns text, label) there, set ANALYSIS_DATA_DIR, "
        f"or use source='hub' ({HUB_ID}) with network access",
    )


def validate(df: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    """Check an AG News frame; returns it with ``text`` stripped and ``label`` as int64.

    Raises DataError for missing columns, non-string or empty (after stripping) texts, and labels
    outside 0-3 (the message names the first offending row numbers).
    """
    missing = {"text", "label"} - set(df.columns)
    if missing:
        raise DataError(path, f"missing column(s) {sorted(missing)}; found {list(df.columns)}",
                        "provide columns 'text' (title + ' ' + description) and 'label' (0-3)")
    if len(df) == 0:
        raise DataError(path, "no rows", "check the file was written completely")
    not_str = [i for i, t in enumerate(df["text"].tolist()) if not isinstance(t, str)]
    if not_str:
        raise DataError(path, f"{len(not_str)} row(s) whose text is not a string (rows {not_str[:5]})",
                        "fill or remove those rows; texts must be strings")
    text = df["text"].astype(str).str.strip()
    empty = np.flatnonzero((text.str.len() == 0).to_numpy()).tolist()
    if empty:
        raise DataError(path, f"{len(empty)} empty text(s) (rows {empty[:5]})",
                        "remove those rows; an empty headline cannot be classified")
    labels = pd.to_numeric(df["label"], errors="coerce")
    bad = np.flatnonzero(~labels.isin(range(len(LABELS))).to_numpy()).tolist()
    if bad:
        seen = sorted({str(v) for v in df["label"].iloc[bad[:20]].tolist()})
        raise DataError(path, f"{len(bad)} label(s) outside 0-{len(LABELS) - 1} (rows {bad[:5]}, values {seen[:5]})",
                        f"labels are 0={LABELS[0]}, 1={LABELS[1]}, 2={LABELS[2]}, 3={LABELS[3]} "
                        "(the original CSV's 1-4 minus one)")
    out = df.copy()
    out["text"] = text.to_numpy()
    out["label"] = labels.astype("int64").to_numpy()
    return out


def _read_local(path: Path) -> pd.DataFrame:
    """Read a parquet or CSV file; every failure is a DataError naming the file."""
    if path.stat().st_size == 0:
        raise DataError(path, "the file is empty (0 bytes)", "copy or write the file again")
    if path.suffix == ".csv":
        try:
            df = pd.read_csv(path, encoding="utf-8-sig")  # a BOM (Excel) is not part of a name
        except UnicodeDecodeError as exc:
            raise DataError(path, f"is not UTF-8 text (byte {exc.start}: {exc.reason})",
                            "save the CSV as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
        except pd.errors.EmptyDataError:
            raise DataError(path, "holds no header and no rows", "write a header 'text,label' and the rows") from None
        except pd.errors.ParserError as exc:
            raise DataError(path, f"is not a well-formed CSV ({str(exc).strip()[:160]})",
                            "quote texts that contain commas; check the file was not truncated") from None
        except OSError as exc:  # a folder of that name, no permission
            raise DataError(path, f"cannot be read ({exc.__class__.__name__}: {exc.strerror or exc})",
                            "put a readable CSV file there") from None
        if not df.index.equals(pd.RangeIndex(len(df))):
            # rows with more fields than the header: pandas silently made the first ones the index
            # (a RangeIndex too when those first fields happen to count, e.g. labels 2, 1)
            raise DataError(path, f"its rows have more fields than its header ({len(df.columns)} names); a text with "
                            "an unquoted comma is split there and its start would be lost",
                            "quote every text field (pandas: to_csv(path, index=False) quotes as needed)")
        if len(df.columns) == 1 and not {"text", "label"} <= set(df.columns):
            header = str(df.columns[0])
            sep = next((c for c in (";", "\t", "|") if c in header), None)
            if sep is not None:
                raise DataError(path, f"has one column {header[:60]!r}: the separator is {sep!r}, not ','",
                                "write the CSV with commas (pandas: to_csv(path, index=False))")
        return df
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # ArrowInvalid, OSError: truncated or not parquet at all
        raise DataError(path, f"cannot be read as parquet ({exc.__class__.__name__}: {str(exc)[:160]})",
                        "copy the file again (it may be truncated), or provide a CSV with columns text,label") from None


def _read_hub(split: str) -> pd.DataFrame:
    try:
        import datasets

        ds = datasets.load_dataset(HUB_ID, split=split, revision=HUB_REVISION)
    except Exception as exc:  # no network, hub changes: say what to do
        raise DataError(f"hub:{HUB_ID}/{split}", f"cannot load from the hub ({exc.__class__.__name__}: {str(exc)[:200]})",
                        "connect to the internet, or use the offline profile (local parquet files)") from exc
    return ds.to_pandas()


def load(split: str, source: str = "local", limit: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One split as a DataFrame with columns ``id`` (str, stable: ``<split>-<row>``), ``text``, ``label``.

    ``limit`` takes a class-stratified random subset of that many rows (seeded), for smoke runs.
    """
    if source == "local":
        path: Path | str = local_file(split)
        df = _read_local(Path(path))
    elif source == "hub":
        path = f"hub:{HUB_ID}/{split}"
        df = _read_hub(split)
    else:
        raise DataError(str(source), f"unknown source {source!r}", "use 'local' or 'hub'")
    df = validate(df, path).reset_index(drop=True)
    df.insert(0, "id", [f"{split}-{i}" for i in range(len(df))])
    df = df[["id", "text", "label"]]
    if limit is not None and limit < len(df):
        df = stratified_sample(df, limit, seed)
    return df


def stratified_sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows with the classes as balanced as possible, in a seeded random order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    shuffled = df.iloc[order]
    # round-robin over classes in the shuffled order: rank within class, then take the lowest ranks
    rank = shuffled.groupby("label").cumcount().to_numpy()
    picked = shuffled.iloc[np.argsort(rank, kind="stable")[:n]]
    return picked.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def train_validation_split(df: pd.DataFrame, n_validation: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a class-stratified validation part of train (for ``eval_strategy`` and the learning curve)."""
    if not 0 < n_validation < len(df):
        raise DataError("train", f"cannot hold out {n_validation} of {len(df)} rows", "choose 0 < n_validation < rows")
    val = stratified_sample(df, n_validation, seed)
    rest = df[~df["id"].isin(set(val["id"]))].reset_index(drop=True)
    return rest, val


_CHECKED: dict[tuple[str, int, int], None] = {}


def check_file(path: Path) -> Path:
    """Read and validate a local split file (memoised on path, size, mtime); returns the path."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _CHECKED:
        validate(_read_local(path), path)
        _CHECKED[memo] = None
    return path


def fingerprint(source: str = "local") -> str:
    """Data fingerprint for the result store: local files are validated, then hashed (contents);
    hub data is the hub id at its pinned revision."""
    if source == "hub":
        return f"hub:{HUB_ID}@{HUB_REVISION}"
    if source != "local":
        raise DataError(str(source), f"unknown source {source!r}", "use 'local' or 'hub'")
    return fingerprint_files([check_file(local_file(s)) for s in SPLITS])
