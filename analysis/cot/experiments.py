"""Registers the chain-of-thought experiment (chapter 4)."""

from __future__ import annotations

from ..data.scienceqa import data_files
from ..experiments import Experiment, register
from ..store import fingerprint_files
from .compute import compute
from .config import CONFIGS, CotConfig


def _fingerprint(config: CotConfig) -> str:
    """ScienceQA's fingerprint: the local file validated, then hashed; hub data by id and pinned
    revision; plus the pinned commit of a hub model (offline models add nothing: keys unchanged)."""
    from ..data import scienceqa
    from ..models import identity

    data, model = scienceqa.fingerprint(config.split, config.source), identity(config.model)
    return f"{data}|{model}" if model else data


def _data_description(config: CotConfig) -> str:
    where = "hub derek-thomas/ScienceQA" if config.source == "hub" else "ScienceQA jsonl (official test pids)"
    return f"{where}, {config.split} split: {config.n_questions} text-only four-option questions (seed {config.seed})"


COT = register(Experiment(
    name="cot_scienceqa",
    title="Chain-of-thought prompting on ScienceQA: flip analysis and early answering",
    chapter="chapters/04-chain-of-thought.qmd",
    configs=CONFIGS,
    compute=compute,
    code_version="3",  # 2: the assignment's prompts verbatim (tasks 4.3, 4.4); 3: whole chains, both placements, option-order control
    data_fingerprint=_fingerprint,
    models=lambda config: [config.model],
    data_description=_data_description,
    cost={"full": "a few minutes on a T4 (flan-t5-base on 200 questions: direct, chain of thought, probe)"},
    source_modules=("analysis.cot.generate", "analysis.cot.extract", "analysis.cot.prompts",
                    "analysis.cot.scoring", "analysis.data.scienceqa"),
))
