"""The oracle: the synthetic corpus's true generating process, scored through the corpus vocabulary.

Its perplexity is the floor no model can beat on ``corpus=synthetic``. The process's exact
next-token distribution is mapped onto the vocabulary, with ``<unk>`` getting the total mass of the
words the vocabulary lacks, and an observed ``<unk>`` updates the class state by Bayes' rule (the
forward algorithm over word classes), so the probabilities stay exact under the vocabulary mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmbench.config import ModelConfig
from lmbench.corpora import Corpus
from lmbench.corpora.synthetic import State, SyntheticProcess
from lmbench.errors import UserError
from lmbench.models.base import FitSettings
from lmbench.sampling import draw


@dataclass
class OracleConfig(ModelConfig):
    name: str = "oracle"


class Oracle:
    """The exact process behind a synthetic corpus; nothing to learn."""

    def __init__(self, cfg, corpus: Corpus):
        if "synthetic" not in corpus.meta:
            raise UserError(f"model=oracle needs corpus=synthetic: only the synthetic corpus has a known "
                            f"generating process, and corpus {corpus.name} is not synthetic.")
        self.process = SyntheticProcess(corpus.meta["synthetic"])
        self.vocab = corpus.vocab
        unk = self.vocab.unk
        self.to_vocab = np.array([self.vocab.stoi.get(t, unk) for t in self.process.tokens])
        missing = [t for t, v in zip(self.process.tokens, self.to_vocab)
                   if v == unk and self.process.index[t] < self.process.first_word]
        if missing:
            raise UserError(f"model=oracle needs every delimiter and <eos> in the vocabulary, but "
                            f"{', '.join(missing)} never occur in the training split (or occur fewer "
                            f"than corpus.min_count times); use more corpus.train_tokens.")
        self.seen = self.to_vocab[self.process.first_word:] != unk  # words the vocabulary has

    def fit(self, corpus: Corpus, settings: FitSettings) -> dict:
        return {}

    def coverage(self, tokens: np.ndarray, starts: np.ndarray) -> dict:
        return {}

    def _distribution(self, state: State) -> np.ndarray:
        return np.bincount(self.to_vocab, self.process.next_distribution(state), minlength=len(self.vocab))

    def _step(self, state: State, token: int) -> State:
        if token == self.vocab.unk:  # always a word: every delimiter and <eos> is in the vocabulary
            return self.process.step_unseen(state, self.seen)
        return self.process.step(state, self.vocab.itos[token])

    def _replay(self, ids) -> State:
        state = self.process.initial_state()
        for token in ids:
            state = self._step(state, int(token))
        return state

    def distribution(self, context_ids) -> np.ndarray:
        """Exact p(next id | context) over the vocabulary, float64, from the empty context."""
        return self._distribution(self._replay(context_ids))

    def log_probs(self, tokens: np.ndarray, starts: np.ndarray, batch_size: int) -> np.ndarray:
        """Replay the process through ``tokens``, back to its initial state at every start."""
        out = np.empty(len(tokens))
        resets = set(np.asarray(starts).tolist())
        state = self.process.initial_state()
        for i, token in enumerate(np.asarray(tokens).tolist()):
            if i in resets:
                state = self.process.initial_state()
            out[i] = self._distribution(state)[token]
            state = self._step(state, token)
        with np.errstate(divide="ignore"):
            return np.log(out)

    def sample(self, length: int, prompt: np.ndarray, temperature: float, top_k: int | None,
               rng: np.random.Generator) -> np.ndarray:
        """Draw from the exact distribution (temperature and top-k as in ``lmbench.sampling``)."""
        state = self._replay(prompt)
        out = np.empty(length, dtype=np.int64)
        for i in range(length):
            with np.errstate(divide="ignore"):
                log_p = np.log(self._distribution(state))
            out[i] = draw(log_p, temperature, top_k, rng)
            state = self._step(state, int(out[i]))
        return out

    def num_parameters(self) -> int:
        return self.process.num_parameters()

    def non_embedding_parameters(self) -> None:
        """None: the generating process is given, not learned, so it has no place on a scaling curve."""
        return None

    def size_bytes(self) -> int:
        return self.process.size_bytes() + self.to_vocab.nbytes + self.seen.nbytes
