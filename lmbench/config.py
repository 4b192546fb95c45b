"""Typed config schemas. Hydra validates every YAML option and override against them at start-up.

The schemas live in the ``schema/`` config group (Hydra's structured-config-schema pattern), so
``model=``, ``corpus=`` ... list only real options while a typo or a wrong type still fails at once.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from lmbench.errors import UserError


class Choice(str, Enum):
    """A config option's fixed set of strings: each member is its string (compares, formats and
    serialises as it), so code reads ``cfg.protocol == "stream"`` whether the config came from Hydra
    (members) or from a record (plain strings). ``Choice("Level", "char word")`` names each member's value."""

    def _generate_next_value_(name, start, count, last_values):
        return name

    def __str__(self) -> str:
        return self.value


Level = Choice("Level", "char word")
Protocol = Choice("Protocol", "stream sentence")
Device = Choice("Device", "auto cpu cuda mps")


# ---------------------------------------------------------------- option rules
SEED_RANGE = "an integer in [0, 2**32)"  # numpy's global seed (seed_everything) takes no more
FLOAT32_MAX = 3.4028234663852886e38  # every number may end up in a float32 tensor
MAX_SIZE = 2**31 - 1  # any size past this overflows index arithmetic long before memory runs out
MAX_SYNTHETIC_TOKENS = 10**8  # the generator draws ~10^5 tokens/s: beyond this a split takes hours
MAX_SYNTHETIC_WORDS = 10**6  # distinct pseudo-words are drawn by rejection: ~20 s for this many
MAX_SYNTHETIC_CLASSES = 4_000  # two (classes + 1) x classes transition matrices, and O(classes^2) a token


@dataclass(frozen=True)
class Rule:
    """The values an option accepts: ``ok`` tests one, ``wanted`` words them for a refusal, and
    ``refused`` holds values it must refuse (the negative tests are generated from them)."""

    ok: Callable[[Any], bool]
    wanted: str
    refused: tuple = ()


def option(default: Any = MISSING, rule: Rule | None = None, factory: Callable | None = None) -> Any:
    """A schema field and the rule ``validate`` checks it against: each rule is declared once,
    beside its option."""
    metadata = {"rule": rule} if rule else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def size(low: int = 1, high: int = MAX_SIZE) -> Rule:
    return Rule(lambda v: low <= v <= high, f"an integer in [{low:,}, {high:,}]", (low - 1, high + 1))


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"null or {rule.wanted}", rule.refused)


SEED = Rule(lambda v: 0 <= v < 2**32, SEED_RANGE, (-1, 2**32))
# a name that becomes part of a path (the corpus cache, run folders): never a path itself
NAME = Rule(lambda v: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", v) is not None and ".." not in v,
            "a name of letters, digits and _ . + - (at most 64, no '..'), since it becomes part of a path",
            ("../x", "/etc", "", "a/b", "x" * 65))
# where a corpus file lives inside the cache and the mirror: never outside them
INSIDE = Rule(lambda v: re.fullmatch(r"[\w.+-]+(/[\w.+-]+)*", v) is not None and ".." not in v.split("/"),
              "a relative path inside the corpus cache (names of letters, digits and _ . + -, joined by /, "
              "no '..')", ("../x", "/etc/passwd", "", "a//b", "a/../../b"))
SHA256 = Rule(lambda v: re.fullmatch(r"[0-9a-f]{64}", v) is not None, "64 lowercase hex digits",
              ("", "abc", "g" * 64))
POSITIVE = Rule(lambda v: v > 0, "positive", (0.0, -1.0))
DROPOUT = Rule(lambda v: 0 <= v < 1, "in [0, 1)", (-0.5, 1.0))
ADD_K = Rule(lambda v: v >= 0, ">= 0 (0 is maximum likelihood)", (-1.0,))
FRACTIONS = Rule(lambda v: len(v) == 3 and all(0 < f < 1 for f in v) and abs(sum(v) - 1) < 1e-6,
                 "three positive numbers summing to 1", ([0.5, 0.5], [0.0, 0.5, 0.5], [0.5, 0.3, 0.3]))


def _decodes(handler: str) -> bool:
    """Whether an error handler can decode (xmlcharrefreplace and namereplace only encode); an unknown
    name passes, for ``validate`` to call it a typo."""
    try:
        b"\xff".decode("ascii", handler)
    except TypeError:
        return False
    except (LookupError, UnicodeDecodeError):
        pass
    return True


DECODING_ERRORS = Rule(_decodes, "a handler that decodes: strict, replace, ignore, backslashreplace or "
                       "surrogateescape (xmlcharrefreplace and namereplace only encode)",
                       ("xmlcharrefreplace", "namereplace"))


# ---------------------------------------------------------------- corpora
@dataclass
class SourceFile:
    """One canonical file: where it lives in the cache/mirror, its sha256, where to download it."""

    path: str = option(MISSING, INSIDE)
    sha256: str = option(MISSING, SHA256)
    url: str = MISSING


@dataclass
class CorpusConfig:
    name: str = option(MISSING, NAME)
    level: Level = MISSING
    loader: str = MISSING
    min_count: int = option(1, size())  # train-split words seen fewer times become <unk>
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
    fractions: list[float] = option(rule=FRACTIONS, factory=lambda: [0.9, 0.05, 0.05])


@dataclass
class BrownCorpusConfig(CorpusConfig):
    """NLTK's Brown corpus, split by token counts as in Bengio et al. (2003)."""

    loader: str = "brown"
    file: SourceFile = field(default_factory=SourceFile)
    split_tokens: list[int] = option(rule=Rule(lambda v: len(v) == 2 and all(1 <= n <= MAX_SIZE for n in v),
                                              "two positive token counts (train, valid)", ([0, 5], [5])),
                                     factory=lambda: [800_000, 200_000])


@dataclass
class UserFileCorpusConfig(CorpusConfig):
    """A user's own text: a folder with train/valid/test files, or one file plus fractions."""

    loader: str = "user_file"
    path: str = MISSING
    fractions: list[float] = option(rule=FRACTIONS, factory=lambda: [0.9, 0.05, 0.05])
    encoding: str = "utf-8"
    errors: str = option("strict", DECODING_ERRORS)
    max_unpacked_mb: int = option(2048, size(1, 2**40))  # cap on what a zip/tar corpus may unpack to


@dataclass
class SyntheticCorpusConfig(CorpusConfig):
    """The embedded corpus with a known generating process (see lmbench/corpora/synthetic.py)."""

    loader: str = "synthetic"
    seed: int = option(1234, SEED)
    train_tokens: int = option(200_000, size(1, MAX_SYNTHETIC_TOKENS))
    valid_tokens: int = option(20_000, size(1, MAX_SYNTHETIC_TOKENS))
    test_tokens: int = option(20_000, size(1, MAX_SYNTHETIC_TOKENS))
    num_words: int = option(1_000, size(1, MAX_SYNTHETIC_WORDS))  # lexicon size, split across word classes
    num_classes: int = option(8, size(1, MAX_SYNTHETIC_CLASSES))
    num_delimiters: int = option(4, size(0, 8))  # typed opener/closer pairs
    # mean tokens from an opener to its closer
    mean_distance: float = option(20.0, Rule(lambda v: v >= 1, "at least 1 (a closer's hazard is "
                                                                "1/mean_distance)", (0.5,)))
    open_prob: float = option(0.04, Rule(lambda v: 0 <= v < 1, "in [0, 1)", (1.0, -0.1)))  # per word position
    max_depth: int = option(2, size(0))
    mean_sentence_length: float = option(25.0, Rule(lambda v: v >= 1, "at least 1", (0.0,)))


# ---------------------------------------------------------------- models
@dataclass
class ModelConfig:
    name: str = MISSING


# ---------------------------------------------------------------- training and evaluation
Optimizer = Choice("Optimizer", "sgd adam adamw")
# plateau: divide by lr_decay when validation stops improving; step: multiply by lr_decay every epoch
# from decay_start (Zaremba et al.); cosine: linear warm-up then cosine decay
Schedule = Choice("Schedule", "constant plateau step cosine")
Precision = Choice("Precision", "auto fp32 bf16")


@dataclass
class TrainConfig:
    """Knobs shared by every trained family; count-based models ignore them."""

    max_epochs: int = option(3, size())  # small so `python -m lmbench model=X` is quick; recipes set theirs
    max_tokens: int | None = option(None, optional(size(1, 2**62)))
    max_minutes: float | None = option(None, optional(POSITIVE))
    batch_size: int = option(20, size())
    bptt: int = option(35, size())
    optimizer: Optimizer = Optimizer.adam
    lr: float = option(2e-3, POSITIVE)
    weight_decay: float = option(0.0, Rule(lambda v: v >= 0, ">= 0", (-1.0,)))
    # max global gradient norm; 0 disables clipping
    clip: float = option(1.0, Rule(lambda v: v >= 0, ">= 0 (0 disables clipping)", (-1.0,)))
    schedule: Schedule = Schedule.plateau
    lr_decay: float = option(0.25, Rule(lambda v: 0 < v <= 1, "in (0, 1]", (0.0, 1.5)))
    decay_start: int = option(4, size(0))
    warmup_steps: int = option(0, size(0))
    # epochs without validation improvement before stopping; 0 disables
    patience: int = option(3, Rule(lambda v: 0 <= v <= MAX_SIZE, f"in [0, {MAX_SIZE:,}] (0 disables early "
                                                                  "stopping)", (-1,)))
    # torch CPU threads: auto = this job's share of the cores (all of them for a job alone, divided among
    # the lmbench jobs running at once, e.g. under joblib / submitit_local); 0 = torch's default (one per
    # core); a number = that many (several jobs each spinning 2+ threads on 2 cores run 5-10x slower)
    threads: Any = option("auto", Rule(lambda v: v == "auto" or type(v) is int and 0 <= v <= 1024,
                                       "auto or an integer in [0, 1024] (0 keeps torch's default)",
                                       (-1, 1025, "many")))
    # bf16 autocast for the training forward and backward passes; auto: where the hardware multiplies
    # bf16 natively and it trains this model faster (hardware.choose_precision); scoring stays float32
    precision: Precision = Precision.auto
    resume: bool = False


@dataclass
class EvalConfig:
    batch_size: int = option(64, size(1, 2**20))
    bootstrap_samples: int = option(1000, size(0, 10**6))
    bootstrap_block: int = option(0, size(0))  # tokens per bootstrap block; 0 picks ~sqrt(n)


PUBLISHED_METRICS = ("test_ppl", "valid_ppl", "test_nll", "valid_nll", "test_bpc", "valid_bpc")


@dataclass
class PublishedConfig:
    """A published figure this run reproduces: the record keeps it and the report sets ours beside it."""

    row: str | None = None  # the row's name in the published table, e.g. "KN5"
    # null: nothing published for this configuration (reported only)
    value: float | None = option(None, optional(Rule(POSITIVE.ok, "positive (every metric is)", (0.0,))))
    metric: str = option("test_ppl", Rule(lambda v: v in PUBLISHED_METRICS,
                                          f"one of {', '.join(PUBLISHED_METRICS)}", ("test_acc",)))
    source: str | None = None  # paper and table, e.g. "Mikolov (2012), PhD thesis, Table 4.1"
    # goal: within this relative difference of value (0.02 = 2%)
    tolerance: float | None = option(None, optional(Rule(lambda v: v >= 0, ">= 0 (a relative difference)",
                                                         (-0.1,))))
    # goal: ours at most this
    at_most: float | None = option(None, optional(Rule(POSITIVE.ok, "positive (every metric is)", (0.0,))))
    # goal relative to other rows of the same report (their published.row names): ours at least
    # beats_by (0.10 = 10%) below the best of them, e.g. Bengio et al.'s MLP against the Kneser-Ney rows
    beats_rows: list[str] | None = None
    beats_by: float | None = option(None, optional(Rule(lambda v: 0 <= v < 1, "in [0, 1) (a relative margin)",
                                                        (1.0, -0.1))))


@dataclass
class Config:
    model: Any = MISSING
    corpus: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    experiment: str | None = None  # set by experiment configs, recorded
    published: PublishedConfig = field(default_factory=PublishedConfig)  # set by recipes
    seed: int = option(0, SEED)
    device: Device = Device.auto
    protocol: Protocol = Protocol.stream
    results_dir: str = "results"
    force: bool = False  # rerun a job even if an identical one already finished


# the schemas each group's YAML options extend; compose.register_all adds the models' and the corpus
# loaders' from their tables (lmbench.models.MODELS, lmbench.corpora.LOADERS)
SCHEMAS = {"train": {"train": TrainConfig}}
CORPUS_LEVELS = {"synthetic": "word", "brown": "word"}  # loaders that have only one level


def leaves(node, prefix: str = ""):
    """(dotted key, value) of every leaf below an OmegaConf node, lists included."""
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node)
    for key, value in items:
        if prefix == "" and key == "hydra":  # Hydra's own settings are Hydra's to check
            continue
        path = f"{prefix}{key}" if isinstance(node, DictConfig) else f"{prefix[:-1]}[{key}]"
        if isinstance(value, (DictConfig, ListConfig)) and not value._is_none():
            yield from leaves(value, f"{path}.")
        else:
            yield path, value


def _unknown_key_error(path: str, value, cfg):
    """The one-paragraph error for a key no schema declares, naming the nearest known key."""
    group, _, name = path.rpartition(".")
    message = f"{path}={value} is not an option here, so it would be ignored; nothing was run."
    known = {k.rpartition(".")[2]: k for k, _ in leaves(cfg) if k != path}
    hint = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    schemas: dict[str, list[str]] = {}  # option name -> the schemas of the group having it
    for schema_name, schema in (SCHEMAS.get(group, {}) if group in ("model", "corpus") else {}).items():
        for f in dataclasses.fields(schema):
            schemas.setdefault(f.name, []).append(schema_name)
    other = difflib.get_close_matches(name, list(schemas), n=1, cutoff=0.8)
    if other and not (hint and known[hint[0]] == f"{group}.{other[0]}"):
        message += (f" '{other[0]}' is an option of the {', '.join(sorted(schemas[other[0]]))} "
                    f"{group} schema: choose such a {group} first ({group}=...).")
    elif hint:
        message += f" Did you mean {known[hint[0]]}?"
    return UserError(message + " `lmbench --help` lists every group and option.")


def schema_nodes(node, prefix: str = ""):
    """(dotted prefix, node, its schema's fields by name, or None) for ``node`` and every config
    node below it, Hydra's own section left out."""
    schema = OmegaConf.get_type(node)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    yield prefix, node, fields
    for key, value in node.items_ex(resolve=False):
        if isinstance(value, DictConfig) and not value._is_none() and not (prefix == "" and key == "hydra"):
            yield from schema_nodes(value, f"{prefix}{key}.")


def check_closed(cfg) -> None:
    """Refuse keys that no schema declares (``+model.hidden_sizee=3``, ``+epochs=3``): Hydra's ``+``
    adds them happily and nothing would read them."""
    for prefix, node, fields in schema_nodes(cfg):
        for key, value in node.items_ex(resolve=False):
            if fields is not None and key not in fields and not (prefix == "" and key == "hydra"):
                raise _unknown_key_error(f"{prefix}{key}", value, cfg)


def check_rules(cfg) -> None:
    """Every option against the rule its schema declares beside it (``option``)."""
    for prefix, node, fields in schema_nodes(cfg):
        for name, f in (fields or {}).items():
            rule = f.metadata.get("rule")
            if rule and name in node and not OmegaConf.is_missing(node, name) and not rule.ok(node[name]):
                raise UserError(f"{prefix}{name}={node[name]} is out of range: it must be {rule.wanted}.")


def validate(cfg) -> None:
    """Everything the type system cannot express, before any data is read: unknown keys, non-finite
    numbers, each option's rule, a level the corpus does not have. The first violation is a
    ``UserError``."""
    check_closed(cfg)
    for key, value in leaves(cfg):
        if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
            raise UserError(f"{key}={value} is not a finite number: give one below {FLOAT32_MAX:.3g} in size "
                            "(what float32, the tensors' type, holds).")
    check_rules(cfg)
    model = cfg.model
    if SCHEMAS.get("model") and OmegaConf.get_type(model) is not SCHEMAS["model"].get(model.name):
        raise UserError(f"model.name={model.name} is not this model's: the name is the family's identity "
                        "(records and tables read it), so it cannot be set; choose the family with "
                        f"model={model.name} instead.")
    corpus = cfg.corpus
    if "num_classes" in corpus and corpus.num_classes > corpus.num_words:
        raise UserError(f"corpus.num_classes={corpus.num_classes} is out of range: it must be at most "
                        f"corpus.num_words={corpus.num_words} (every class needs a word).")
    if CORPUS_LEVELS.get(corpus.loader, corpus.level) != corpus.level:
        raise UserError(f"corpus.level={corpus.level} is not available for corpus={corpus.name}: it is "
                        f"{CORPUS_LEVELS[corpus.loader]}-level only (the record would mislabel it). "
                        "Leave corpus.level at its default, or use a char-level corpus.")
    if "errors" in corpus:
        try:
            codecs.lookup_error(corpus.errors)
        except LookupError:
            raise UserError(f"corpus.errors={corpus.errors} is not an error handler: use strict, "
                            "replace, ignore or backslashreplace.") from None
        try:
            codecs.lookup(corpus.encoding)
        except LookupError:
            raise UserError(f"corpus.encoding={corpus.encoding} is not a text encoding Python knows "
                            "(e.g. utf-8, utf-16, latin-1, cp1252).") from None
