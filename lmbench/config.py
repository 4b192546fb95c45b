"""Typed config schemas. Hydra validates every YAML option and override against them at start-up.

The schemas live in the ``schema/`` config group (Hydra's structured-config-schema pattern), so
``model=``, ``corpus=`` ... list only real options while a typo or a wrong type still fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Level(Enum):
    char = "char"
    word = "word"


class Protocol(Enum):
    stream = "stream"
    sentence = "sentence"


class Device(Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


# ---------------------------------------------------------------- corpora
@dataclass
class SourceFile:
    """One canonical file: where it lives in the cache/mirror, its sha256, where to download it."""

    path: str = MISSING
    sha256: str = MISSING
    url: str = MISSING


@dataclass
class CorpusConfig:
    name: str = MISSING
    level: Level = MISSING
    loader: str = MISSING
    min_count: int = 1  # train-split words seen fewer times become <unk>
    lowercase: bool = False


@dataclass
class SplitFilesCorpusConfig(CorpusConfig):
    """Canonical train/valid/test files (PTB, Linux source); optionally char-level from word files."""

    loader: str = "split_files"
    files: dict[str, SourceFile] = field(default_factory=dict)
    words_to_chars: bool = False  # derive a character stream from whitespace-tokenised lines


@dataclass
class OneFileCorpusConfig(CorpusConfig):
    """A single canonical file cut into contiguous train/valid/test fractions (Tiny Shakespeare)."""

    loader: str = "one_file"
    file: SourceFile = field(default_factory=SourceFile)
    fractions: list[float] = field(default_factory=lambda: [0.9, 0.05, 0.05])


@dataclass
class BrownCorpusConfig(CorpusConfig):
    """NLTK's Brown corpus, split by token counts as in Bengio et al. (2003)."""

    loader: str = "brown"
    file: SourceFile = field(default_factory=SourceFile)
    split_tokens: list[int] = field(default_factory=lambda: [800_000, 200_000])


@dataclass
class UserFileCorpusConfig(CorpusConfig):
    """A user's own text: a folder with train/valid/test files, or one file plus fractions."""

    loader: str = "user_file"
    path: str = MISSING
    fractions: list[float] = field(default_factory=lambda: [0.9, 0.05, 0.05])
    encoding: str = "utf-8"
    errors: str = "strict"
    max_unpacked_mb: int = 2048  # cap on what a zip/tar corpus may unpack to


@dataclass
class SyntheticCorpusConfig(CorpusConfig):
    """The embedded corpus with a known generating process (see lmbench/corpora/synthetic.py)."""

    loader: str = "synthetic"
    seed: int = 1234
    train_tokens: int = 200_000
    valid_tokens: int = 20_000
    test_tokens: int = 20_000
    num_words: int = 1_000  # lexicon size, split across word classes
    num_classes: int = 8
    num_delimiters: int = 4  # typed opener/closer pairs
    mean_distance: float = 20.0  # mean tokens from an opener to its closer
    open_prob: float = 0.04  # chance per word position of opening a span
    max_depth: int = 2
    mean_sentence_length: float = 25.0


# ---------------------------------------------------------------- models
@dataclass
class ModelConfig:
    name: str = MISSING


@dataclass
class UnigramConfig(ModelConfig):
    name: str = "unigram"
    add_k: float = 1.0


@dataclass
class OracleConfig(ModelConfig):
    name: str = "oracle"


# ---------------------------------------------------------------- training and evaluation
class Optimizer(Enum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class Schedule(Enum):
    constant = "constant"
    plateau = "plateau"  # divide by lr_decay factor when validation stops improving
    step = "step"  # multiply by lr_decay every epoch from decay_start (Zaremba et al.)
    cosine = "cosine"  # linear warm-up then cosine decay


@dataclass
class TrainConfig:
    """Knobs shared by every trained family; count-based models ignore them."""

    max_epochs: int = 3  # small so `python -m lmbench model=X` is quick; recipes set their own
    max_tokens: int | None = None
    max_minutes: float | None = None
    batch_size: int = 20
    bptt: int = 35
    optimizer: Optimizer = Optimizer.adam
    lr: float = 2e-3
    weight_decay: float = 0.0
    clip: float = 1.0  # max global gradient norm; 0 disables clipping
    schedule: Schedule = Schedule.plateau
    lr_decay: float = 0.25
    decay_start: int = 4
    warmup_steps: int = 0
    patience: int = 3  # epochs without validation improvement before stopping; 0 disables
    # torch CPU threads; 0 = torch's default (one per core). 1 by default: small models gain little from
    # more, and several jobs (parallel sweeps, CI) each spinning 2+ threads on 2 cores run 5-10x slower
    threads: int = 1
    bf16: bool = False  # bfloat16 autocast for the training forward pass (GPUs); scoring stays float32
    resume: bool = False


@dataclass
class EvalConfig:
    batch_size: int = 64
    bootstrap_samples: int = 1000
    bootstrap_block: int = 0  # tokens per bootstrap block; 0 picks ~sqrt(n)


@dataclass
class PublishedConfig:
    """A published figure this run reproduces: the record keeps it and the report sets ours beside it."""

    row: str | None = None  # the row's name in the published table, e.g. "KN5"
    value: float | None = None  # null: nothing published for this configuration (reported only)
    metric: str = "test_ppl"  # test_ppl | valid_ppl | test_nll | valid_nll | test_bpc | valid_bpc
    source: str | None = None  # paper and table, e.g. "Mikolov (2012), PhD thesis, Table 4.1"
    tolerance: float | None = None  # goal: within this relative difference of value (0.02 = 2%)
    at_most: float | None = None  # goal: ours at most this


@dataclass
class Config:
    model: Any = MISSING
    corpus: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    experiment: str | None = None  # set by experiment configs, recorded
    published: PublishedConfig = field(default_factory=PublishedConfig)  # set by recipes
    seed: int = 0
    device: Device = Device.auto
    protocol: Protocol = Protocol.stream
    results_dir: str = "results"
    force: bool = False  # rerun a job even if an identical one already finished


SCHEMAS = {
    "model": {"unigram": UnigramConfig, "oracle": OracleConfig},
    "corpus": {
        "split_files": SplitFilesCorpusConfig,
        "one_file": OneFileCorpusConfig,
        "brown": BrownCorpusConfig,
        "user_file": UserFileCorpusConfig,
        "synthetic": SyntheticCorpusConfig,
    },
    "train": {"train": TrainConfig},
}


def register_schema(group: str, name: str, node: type) -> None:
    """Add a schema a YAML option can extend with ``- /schema/<group>@_here_: <name>``."""
    SCHEMAS.setdefault(group, {})[name] = node
    ConfigStore.instance().store(group=f"schema/{group}", name=name, node=node)


def register_all() -> None:
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


PUBLISHED_METRICS = ("test_ppl", "valid_ppl", "test_nll", "valid_nll", "test_bpc", "valid_bpc")

RANGE_CHECKS = [
    ("train.max_epochs", lambda v: v >= 1, "at least 1"),
    ("train.max_tokens", lambda v: v is None or v >= 1, "null or at least 1"),
    ("train.max_minutes", lambda v: v is None or v > 0, "null or positive"),
    ("train.batch_size", lambda v: v >= 1, "at least 1"),
    ("train.bptt", lambda v: v >= 1, "at least 1"),
    ("train.lr", lambda v: v > 0, "positive"),
    ("train.weight_decay", lambda v: v >= 0, ">= 0"),
    ("train.clip", lambda v: v >= 0, ">= 0 (0 disables clipping)"),
    ("train.lr_decay", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("train.decay_start", lambda v: v >= 0, ">= 0"),
    ("train.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("train.patience", lambda v: v >= 0, ">= 0 (0 disables early stopping)"),
    ("train.threads", lambda v: v >= 0, ">= 0 (0 keeps torch's default)"),
    ("eval.batch_size", lambda v: v >= 1, "at least 1"),
    ("eval.bootstrap_samples", lambda v: v >= 0, ">= 0"),
    ("eval.bootstrap_block", lambda v: v >= 0, ">= 0 (0 picks sqrt(n))"),
    ("corpus.min_count", lambda v: v >= 1, "at least 1"),
    ("published.metric", lambda v: v in PUBLISHED_METRICS, f"one of {', '.join(PUBLISHED_METRICS)}"),
]


def validate(cfg) -> None:
    """Range checks the type system cannot express; the first violation is a ``UserError``."""
    from omegaconf import OmegaConf

    from lmbench.errors import UserError

    for key, ok, wanted in RANGE_CHECKS:
        value = OmegaConf.select(cfg, key)
        if not ok(value):
            raise UserError(f"{key}={value} is out of range: it must be {wanted}.")
