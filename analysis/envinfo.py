"""The environment a run used: versions, device, platform, commit (stored with every run).

Imports no experiment, chapter or book module: ``experiments`` imports this one. The book's tables
of this information are in ``analysis.preface``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from importlib import metadata

from .paths import PROJECT_ROOT

PACKAGES = (
    "torch", "torchvision", "transformers", "datasets", "accelerate", "segment-anything",
    "numpy", "scikit-learn", "scipy", "pandas", "matplotlib",
    "jupyter-cache", "nbclient",
)


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description() -> str:
    """The compute device as a person would name it, e.g. 'CPU (2 cores, 2 torch threads)'."""
    try:
        import torch
    except ImportError:
        return f"CPU ({os.cpu_count()} cores)"
    from .models import pick_device

    device = pick_device()
    if device.type == "cuda":
        return f"CUDA {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    n = torch.get_num_threads()
    return f"CPU ({os.cpu_count()} cores, {n} torch thread{'s' if n != 1 else ''})"


def device_text(device: str) -> str:
    """A stored device description as a reader should see it (runs stored before the plural was
    fixed say '1 torch threads')."""
    return device.replace(" 1 torch threads)", " 1 torch thread)")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def run_environment(config=None) -> dict:
    """What is stored with every run: versions, device, seed, platform, commit."""
    seed = getattr(config, "seed", None) if dataclasses.is_dataclass(config) else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": device_description(),
        "seed": seed,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "argv": sys.argv[:1],
    }
