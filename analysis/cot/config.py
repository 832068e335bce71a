"""Configurations of the chain-of-thought experiment, one per profile."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CotConfig:
    model: str = "qwen25_coder_1p5b"  # registry name (analysis.models): the offline chat model
    source: str = "local"  # "local": data_dir()/scienceqa jsonl; "hub": derek-thomas/ScienceQA
    split: str = "test"  # the assignment samples test questions
    n_questions: int = 200  # the assignment's sample size
    seed: int = 0  # sampling, qualitative examples, bootstrap
    max_new_tokens: int = 160  # CoT budget: three short steps + Answer line fit; each row stops at its Answer line
    batch_size: int = 8  # left-padded batches; finished rows leave the batch, so rows cost only their own tokens
    wave_size: int = 16  # questions per wave (direct + CoT), in sample order: a partial run is a prefix
    probe_n: int = 200  # items in the early-answering probe (seeded subset when < n_questions)
    probe_steps: int = 3  # cut the chain after 0..probe_steps reasoning steps
    n_qualitative: int = 20  # examples shown per flip category (seeded)
    n_boot: int = 10_000  # bootstrap resamples for the accuracy intervals
    device: str | None = None  # None: analysis.models.pick_device()
    # CPU threads for torch (0: torch's default; -1: adaptive, all cores while the machine is
    # otherwise idle, one while other jobs run). On the shared 2-core machine, with other jobs
    # running, one thread decoded 2-3x faster than two (they wait on each other at every small op).
    torch_threads: int = -1


CONFIGS = {
    # Qwen2.5-Coder-1.5B-Instruct on CPU. Measured on the otherwise idle 2-core build machine (run
    # b100502de32b4d2f, resumed): 96 CoT chains at 30.0 s each (probe included: it reuses
    # generation's KV cache) and 57 direct answers at 3.2 s each, so about 1 h 50 min cold for 200.
    # That run used fixed batches of 8. Generation now refills a finished row at once (continuous
    # batching): bench/results/cot_qwen_continuous16.json, 32 questions, 13.2 s per CoT question
    # with 16 rows vs 22.3 s in fixed batches of 8, same outputs. batch_size=16 with wave_size=64
    # would bring a cold run to about 1 h; kept at 8/16 here because the stored run was made so
    # (changing them changes the run's key).
    "offline": CotConfig(),
    # the assignment's example model, hub data, a GPU: larger batches
    "full": CotConfig(model="flan_t5_base", source="hub", max_new_tokens=256, batch_size=32, torch_threads=0),
    # tests and the book check: SmolLM2-135M on five questions, short chains (numbers mean nothing)
    "smoke": CotConfig(model="smollm2_135m", n_questions=5, max_new_tokens=48, batch_size=4, wave_size=5, probe_n=5,
                       n_qualitative=3, n_boot=500),
}
