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
    placement: str = "system"  # where the CoT instruction goes in the main run: "system" or "user" turn
    # the other placement (format compliance measured, task 4.4) and the option-order control (the
    # options rotated: letter bias vs content) run on the first variant_n questions of the sample
    # (50: each costs a quarter of the main run's generation on the 2-core CPU)
    variant_n: int = 50
    n_qualitative: int = 20  # examples shown per flip category (seeded)
    n_boot: int = 10_000  # bootstrap resamples for the accuracy intervals
    device: str | None = None  # None: analysis.models.pick_device()
    # weights and activations; None: the registry's choice (float32 for GGUF files and on CPU,
    # bf16 on GPUs). Logits are computed in float32 whatever this is (models.float32_head).
    dtype: str | None = None
    # CPU threads for torch (0: torch's default; -1: adaptive, all cores while the machine is
    # otherwise idle, one while other jobs run). On the shared 2-core machine, with other jobs
    # running, one thread decoded 2-3x faster than two (they wait on each other at every small op).
    torch_threads: int = -1


CONFIGS = {
    # Qwen2.5-Coder-1.5B-Instruct on CPU in float32: the GGUF's dequantised weights as they are, and
    # on a CPU without bf16 units (this machine: AVX-512 but no AVX512-BF16/AMX) a float32 decoding
    # step is faster than a bf16 one (bench/results/cot_throughput.json). The slot loop
    # (decode.py) with 64 rows; all 200 questions in one wave keeps the batch full. 512 new
    # tokens: at 256, 47 of 200 chains were cut by the budget.
    # All cores (torch_threads=0): the adaptive rule drops to one thread whenever the load average
    # counts other jobs, even when they run at the lowest priority and take no time from this one.
    "offline": CotConfig(dtype="float32", max_new_tokens=512, batch_size=64, wave_size=200, torch_threads=0),
    # the assignment's example model, hub data, a GPU: all 200 prompts in one batch (H100, random
    # weights, 128 new tokens: 7.6 s at batch 200 vs 29.6 s at 32 and ~390 s one at a time;
    # bench/results/gpu.json). flan-t5-base's cache for 200 rows fits a 16 GB Colab T4 easily.
    "full": CotConfig(model="flan_t5_base", source="hub", max_new_tokens=256, batch_size=200, wave_size=200,
                      torch_threads=0),
    # tests and the book check: SmolLM2-135M on five questions, short chains (numbers mean nothing)
    "smoke": CotConfig(model="smollm2_135m", n_questions=5, max_new_tokens=48, batch_size=4, wave_size=5, probe_n=5,
                       n_qualitative=3, n_boot=500, variant_n=3),
}
