"""Cached downloads with a progress bar; a partial or corrupt file is detected, never used."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from .errors import ModelUnavailable
from .progress import progress

NO_DOWNLOAD_ENV = "ANALYSIS_NO_DOWNLOAD"  # "1": a download is an error (proves a render or a check fetches nothing)


def download(url: str, dest: Path, *, name: str, size: int | None = None, sha256: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` once (``dest.part`` while running, renamed when complete and verified)."""
    dest = Path(dest)
    if dest.exists() and (size is None or dest.stat().st_size == size):
        return dest
    if os.environ.get(NO_DOWNLOAD_ENV) == "1":
        raise ModelUnavailable(name, f"{url} would be downloaded to {dest}, but downloads are off ({NO_DOWNLOAD_ENV}=1)",
                               f"place the file at {dest} (e.g. unpack the whole results archive, its .cache/ "
                               f"included), or unset {NO_DOWNLOAD_ENV}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or size
            digest = hashlib.sha256()
            with open(part, "wb") as fh, progress(total=total, desc=f"download {dest.name}", unit="B") as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    fh.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ModelUnavailable(
            name, f"could not download {url} ({exc})", f"check the network, or place the file at {dest} by hand"
        ) from exc
    got = part.stat().st_size
    expected = size or total
    if expected and got != expected:
        part.unlink(missing_ok=True)
        raise ModelUnavailable(name, f"download of {url} stopped at {got} of {expected} bytes", "run again")
    if sha256 and digest.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ModelUnavailable(name, f"{url} has sha256 {digest.hexdigest()}, expected {sha256}", "run again")
    os.replace(part, dest)
    return dest
