"""The synthetic corpus: a seeded stochastic process whose next-token probabilities are known exactly.

Real corpora only let us compare models with each other; here the true distribution is known, so
the oracle (lmbench/models/oracle.py) gives the entropy floor no model can beat, and the latent
structure says *where* a model loses probability. The process, with its parameters (config
``corpus=synthetic``):

* Lexicon. ``num_words`` distinct pronounceable pseudo-words (lowercase syllables such as
  ``tobani``) are split into ``num_classes`` disjoint word classes of near-equal size. Within a
  class the k-th word (shorter words first) has probability proportional to 1/k (Zipf).
* Classes. The class of each word depends on the class of the previous word in the sentence (or on
  a "sentence start" state for the first word): a first-order Markov chain whose transition rows
  are drawn from a Dirichlet(0.5) distribution, so each class has a few likely successors. There
  are two such matrices: one for text outside any span, one for text inside spans.
* Spans. There are ``num_delimiters`` typed opener/closer pairs: ``(`` ``)``, ``[`` ``]``, ``{``
  ``}``, ``<<`` ``>>``, ... Delimiters leave the class state unchanged. At every position inside a
  span, the innermost span is closed (its matching closer is emitted) with probability
  h = 1/``mean_distance``, so an opener's closer comes after a geometric number of tokens with mean
  ``mean_distance`` when nothing is nested inside. Otherwise, and at every position outside spans
  that does not end the sentence, an opener of a uniformly random type is emitted with probability
  ``open_prob`` if fewer than ``max_depth`` spans are open; else a word is emitted. Every type
  shares the inside class matrix, so only a model that remembers the opener knows which closer
  comes: one without that memory pays log(``num_delimiters``) nats at each closer.
* Sentences. Outside any span, once the sentence holds a word, ``<eos>`` ends it with probability
  1/``mean_sentence_length`` per position; the process then returns to its initial state (no open
  span, "sentence start" class state), so an empty context is the exact start of a sentence.
* Splits. train/valid/test are generated independently from the initial state with seeds derived
  from ``seed``, and hold exactly ``train_tokens``/``valid_tokens``/``test_tokens`` tokens (the
  last sentence may be cut off), so an empty context is also the exact start of a split.

The loader stores the process itself (lexicon, matrices, rates) in ``Corpus.meta["synthetic"]``,
so :class:`SyntheticProcess` rebuilds it exactly from a cached corpus whatever numpy version drew it.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

import numpy as np

from lmbench.corpora.raw import EOS, SPLITS, RawCorpus
from lmbench.errors import CorpusError

DELIMITERS = [("(", ")"), ("[", "]"), ("{", "}"), ("<<", ">>"),
              ("<[", "]>"), ("<{", "}>"), ("((", "))"), ("[[", "]]")]
ONSETS = "b d f g k l m n p r s t v z ch sh tr".split()
VOWELS = "a e i o u".split()
ZIPF_EXPONENT = 1.0  # within-class word probability ~ 1 / rank ** ZIPF_EXPONENT
CONCENTRATION = 0.5  # Dirichlet concentration of the class transition rows (small = sparse rows)
# generating holds two (classes + 1) x words cumulative word tables, ~100 bytes an entry: ~2 GB at most
MAX_WORD_TABLE = 2 * 10**7
UNIFORMS_CHUNK = 1 << 16  # rows of uniforms drawn at once: a 10^8-token split never holds them all


class State(NamedTuple):
    """Where the process is: a distribution over the class state (the classes, then "sentence
    start") and the types of the open spans, innermost last. The class state is certain when every
    token is known; the oracle's ``<unk>`` makes it a belief (the forward algorithm)."""

    belief: np.ndarray
    stack: tuple[int, ...]


class SyntheticProcess:
    """The generating process, rebuilt from ``Corpus.meta["synthetic"]`` (see the module docstring); tokens
    are indexed as ``tokens``: ``<eos>``, the openers, the closers, then the words by class."""

    def __init__(self, meta: dict):
        self.delimiters = [tuple(pair) for pair in meta["delimiters"]]
        self.lexicon = meta["lexicon"]  # words per class, most frequent first
        self.outside = np.array(meta["outside"], dtype=np.float64)  # (classes + 1, classes)
        self.inside = np.array(meta["inside"], dtype=np.float64)
        self.open_prob = meta["open_prob"] if self.delimiters else 0.0
        self.max_depth = meta["max_depth"]
        self.close_hazard = 1.0 / meta["mean_distance"]
        self.eos_hazard = 1.0 / meta["mean_sentence_length"]
        self.num_classes = len(self.lexicon)
        self.words = [w for words in self.lexicon for w in words]
        self.word_class = np.repeat(np.arange(self.num_classes), [len(ws) for ws in self.lexicon])
        weights = [1.0 / np.arange(1, len(ws) + 1) ** meta["zipf_exponent"] for ws in self.lexicon]
        self.word_prob = np.concatenate([w / w.sum() for w in weights])  # Zipf's law within each class
        self.tokens = [EOS] + [o for o, _ in self.delimiters] + [c for _, c in self.delimiters] + self.words
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.first_word = 1 + 2 * len(self.delimiters)  # index of the first word in ``tokens``

    # ------------------------------------------------------------ exact probabilities
    def initial_state(self) -> State:
        belief = np.zeros(self.num_classes + 1)
        belief[-1] = 1.0
        return State(belief, ())

    def next_distribution(self, state: State) -> np.ndarray:
        """Exact p(next token | state) over ``tokens``, float64, summing to 1."""
        k, depth = len(self.delimiters), len(state.stack)
        p = np.zeros(len(self.tokens))
        if depth:
            stop, matrix = self.close_hazard, self.inside
            p[1 + k + state.stack[-1]] = stop
        else:
            stop, matrix = self.eos_hazard * (1.0 - state.belief[-1]), self.outside
            p[0] = stop
        open_prob = self.open_prob if depth < self.max_depth else 0.0
        if open_prob:
            p[1:1 + k] = (1.0 - stop) * open_prob / k
        class_prob = state.belief @ matrix
        p[self.first_word:] = (1.0 - stop) * (1.0 - open_prob) * class_prob[self.word_class] * self.word_prob
        return p

    def step(self, state: State, token: str) -> State:
        """The state after ``token``. Defined for any token of ``tokens``, even an impossible one
        (a closer with no open span leaves the stack empty), so any sequence can be scored."""
        i = self.index[token]
        k = len(self.delimiters)
        if i == 0:
            return self.initial_state()
        if i <= k:
            return State(state.belief, state.stack + (i - 1,))
        if i <= 2 * k:
            return State(state.belief, state.stack[:-1])
        belief = np.zeros(self.num_classes + 1)
        belief[self.word_class[i - self.first_word]] = 1.0
        return State(belief, state.stack)

    def step_unseen(self, state: State, seen: np.ndarray) -> State:
        """The state after a word known only to be outside ``seen`` (a mask over ``words``): the
        class state becomes the posterior over classes given that evidence (the forward algorithm).
        If every word is seen, the (impossible) evidence carries no information."""
        matrix = self.inside if state.stack else self.outside
        class_prob = state.belief @ matrix
        unseen_mass = np.bincount(self.word_class[~seen], self.word_prob[~seen], minlength=self.num_classes)
        posterior = class_prob * unseen_mass
        if posterior.sum() == 0:
            posterior = class_prob
        return State(np.append(posterior / posterior.sum(), 0.0), state.stack)

    def num_parameters(self) -> int:
        """Free probabilities: two transition matrices, the word laws, and three rates."""
        c = self.num_classes
        return 2 * (c + 1) * (c - 1) + len(self.words) - c + 3

    def size_bytes(self) -> int:
        return sum(a.nbytes for a in (self.outside, self.inside, self.word_class, self.word_prob))

    # ------------------------------------------------------------ sampling and latent structure
    def generate(self, length: int, rng: np.random.Generator) -> list[str]:
        """``length`` tokens from the initial state. Follows ``next_distribution`` exactly, with
        pre-drawn uniforms and per-class cumulative word tables so 240k tokens take about a second."""
        k = len(self.delimiters)
        openers, closers = [o for o, _ in self.delimiters], [c for _, c in self.delimiters]
        tables = {}
        for name, matrix in (("out", self.outside), ("in", self.inside)):
            cum = np.cumsum(matrix[:, self.word_class] * self.word_prob, axis=1)
            tables[name] = (cum / cum[:, -1:]).tolist()
        word_class = self.word_class.tolist()
        start = self.num_classes
        tokens, stack, cls = [], [], start
        for stop_u, open_u, pick_u in uniforms(length, rng):
            if stack:
                if stop_u < self.close_hazard:
                    tokens.append(closers[stack.pop()])
                    continue
                table = tables["in"][cls]
            else:
                if cls != start and stop_u < self.eos_hazard:
                    tokens.append(EOS)
                    cls = start
                    continue
                table = tables["out"][cls]
            if len(stack) < self.max_depth and open_u < self.open_prob:
                stack.append(int(pick_u * k))
                tokens.append(openers[stack[-1]])
                continue
            w = bisect_right(table, pick_u)
            tokens.append(self.words[w])
            cls = word_class[w]
        return tokens

    def latents(self, tokens: list[str]) -> dict[str, np.ndarray]:
        """The hidden structure behind each position of a generated split, for diagnostics:
        ``inside``: the token was emitted inside a span (a closer is inside its span, an opener only if
        nested); ``delimiter``: type of the innermost open span (-1 outside); ``depth``: open spans
        before the token; ``distance``: for a closer, positions back to its opener (0 elsewhere)."""
        n = len(tokens)
        depth, delimiter, distance = np.zeros(n, np.int64), np.full(n, -1), np.zeros(n, np.int64)
        opened: list[tuple[int, int]] = []  # (type, position) of the open spans
        k = len(self.delimiters)
        for i, token in enumerate(tokens):
            depth[i] = len(opened)
            if opened:
                delimiter[i] = opened[-1][0]
            j = self.index.get(token, self.first_word)
            if token == EOS:
                opened = []
            elif 1 <= j <= k:
                opened.append((j - 1, i))
            elif k < j <= 2 * k and opened:
                distance[i] = i - opened.pop()[1]
        return {"inside": depth > 0, "delimiter": delimiter, "depth": depth, "distance": distance}


def uniforms(length: int, rng: np.random.Generator):
    """The rows of ``rng.random((length, 3))``, the same numbers, drawn ``UNIFORMS_CHUNK`` rows at a time."""
    for start in range(0, length, UNIFORMS_CHUNK):
        yield from rng.random((min(UNIFORMS_CHUNK, length - start), 3)).tolist()


def pseudo_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct pronounceable words of one to four consonant-vowel syllables."""
    syllables = [o + v for o in ONSETS for v in VOWELS]
    words: dict[str, None] = {}  # insertion-ordered set
    while len(words) < n:
        picks = rng.integers(len(syllables), size=rng.integers(1, 5))
        words["".join(syllables[s] for s in picks)] = None
    return list(words)


def load_synthetic(cfg) -> RawCorpus:
    """Draw the process's lexicon and transition matrices from ``cfg.seed``, then generate the three
    splits, each from the initial state with its own derived seed."""
    if not 0 <= cfg.num_delimiters <= len(DELIMITERS):
        raise CorpusError(f"corpus.num_delimiters must be between 0 and {len(DELIMITERS)}.")
    if not 1 <= cfg.num_classes <= cfg.num_words:
        raise CorpusError("corpus.num_classes must be at least 1 and at most corpus.num_words.")
    table = (cfg.num_classes + 1) * cfg.num_words
    if table > MAX_WORD_TABLE:
        raise CorpusError(f"corpus.num_classes={cfg.num_classes} with corpus.num_words={cfg.num_words} "
                          f"needs word tables of (num_classes + 1) x num_words = {table:,} entries, above "
                          f"the limit of {MAX_WORD_TABLE:,} (about 2 GB to generate with); lower either.")
    if cfg.mean_distance < 1 or cfg.mean_sentence_length < 1:
        raise CorpusError("corpus.mean_distance and corpus.mean_sentence_length must be at least 1.")
    if not 0 <= cfg.open_prob < 1 or cfg.max_depth < 0:
        raise CorpusError("corpus.open_prob must be in [0, 1) and corpus.max_depth non-negative.")
    rng = np.random.default_rng([cfg.seed, 0])
    words = pseudo_words(cfg.num_words, rng)
    lexicon = [sorted(ws, key=lambda w: (len(w), w)) for ws in np.array_split(words, cfg.num_classes)]
    shape = (cfg.num_classes + 1, cfg.num_classes)  # the last row is the "sentence start" state
    meta = {
        "seed": cfg.seed,
        "delimiters": [list(pair) for pair in DELIMITERS[:cfg.num_delimiters]],
        "lexicon": [[str(w) for w in ws] for ws in lexicon],
        "zipf_exponent": ZIPF_EXPONENT,
        "outside": rng.dirichlet(np.full(cfg.num_classes, CONCENTRATION), shape[0]).tolist(),
        "inside": rng.dirichlet(np.full(cfg.num_classes, CONCENTRATION), shape[0]).tolist(),
        "open_prob": float(cfg.open_prob),
        "max_depth": int(cfg.max_depth),
        "mean_distance": float(cfg.mean_distance),
        "mean_sentence_length": float(cfg.mean_sentence_length),
    }
    process = SyntheticProcess(meta)
    splits = {s: process.generate(cfg[f"{s}_tokens"], np.random.default_rng([cfg.seed, 1 + i]))
              for i, s in enumerate(SPLITS)}
    return RawCorpus(splits, meta={"synthetic": meta})
