"""What every torch model shares: training hooks for the one trainer, batched scoring, sampling, sizes.

A family subclass builds ``self.net`` (an ``nn.Module``) in ``build`` and supplies four hooks:

* ``chunk_loss(x, y, state)``: mean cross-entropy of targets ``y`` given inputs ``x`` (both (T, B)
  time-major ids, as the trainer cuts them from B parallel streams) and the state carried from the
  previous chunk; returns ``(loss, new_state)``.
* ``initial_state(batch)``: the empty context (the trainer cuts a carried state's history with
  ``train.detach_state``: truncated BPTT).
* ``_score(tokens, segments, batch_size)``: log p of every token of every segment, each segment
  scored from an empty context.
* ``_next(context, new_tokens)``: log p of the next token after appending ``new_tokens`` to a
  sampling context (``None`` = empty), returning the updated context.

Scoring never depends on ``batch_size`` beyond float rounding: rows of a batch never see each other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmbench.corpora import Corpus
from lmbench.errors import UserError
from lmbench.hardware import freed_memory
from lmbench.models.base import FitSettings
from lmbench.models.fused_loss import LinearCrossEntropy


def segments(n: int, starts: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) spans scored independently: one per entry of ``starts``."""
    starts = np.unique(np.asarray(starts, dtype=np.int64))
    if len(starts) == 0 or starts[0] != 0 or starts[-1] >= max(n, 1):
        raise ValueError(f"starts must hold 0 and lie below {n}")
    ends = np.append(starts[1:], n)
    return list(zip(starts.tolist(), ends.tolist()))


class NeuralModel:
    """Base of the torch families; see the module docstring for the hooks a family supplies."""

    def __init__(self, cfg, corpus: Corpus):
        self.cfg = cfg
        self.vocab_size = len(corpus.vocab)
        self.device = torch.device("cpu")
        if cfg.get("tie_weights") and cfg.emb_size != cfg.hidden_size:  # a decoder sharing the embeddings
            raise UserError(f"model.tie_weights=true needs emb_size == hidden_size, got "
                            f"{cfg.emb_size} and {cfg.hidden_size}.")
        self.check(cfg, corpus)
        self.net: nn.Module = self.build(cfg, corpus)

    # ---------------------------------------------------------------- family hooks
    def check(self, cfg, corpus: Corpus) -> None:
        """Raise ``UserError`` for a bad model config (before anything is built or trained)."""

    def build(self, cfg, corpus: Corpus) -> nn.Module:
        raise NotImplementedError

    def seq_len(self, bptt: int) -> int:
        """Tokens per training chunk."""
        return bptt

    def initial_state(self, batch: int):
        return None

    def chunk_loss(self, x: torch.Tensor, y: torch.Tensor, state):
        raise NotImplementedError

    def eval_info(self) -> dict:
        """Facts about how the model is scored, for the record."""
        return {}

    # ---------------------------------------------------------------- the LanguageModel protocol
    def fit(self, corpus: Corpus, settings: FitSettings) -> dict:
        from lmbench.train import train

        return train(self, corpus, settings)

    def to(self, device) -> NeuralModel:
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def log_probs(self, tokens: np.ndarray, starts: np.ndarray, batch_size: int) -> np.ndarray:
        self.net.eval()
        with torch.inference_mode(), freed_memory(keep=False):
            return self._score(np.asarray(tokens, dtype=np.int64), segments(len(tokens), starts),
                               batch_size)

    def coverage(self, tokens: np.ndarray, starts: np.ndarray) -> dict:
        return {}

    def sample(self, length: int, prompt: np.ndarray, temperature: float, top_k: int | None,
               rng: np.random.Generator) -> np.ndarray:
        from lmbench.sampling import draw

        self.net.eval()
        out = []
        with torch.inference_mode():
            log_p, context = self._next(None, [int(t) for t in prompt])
            for _ in range(length):
                out.append(draw(log_p, temperature, top_k, rng))
                log_p, context = self._next(context, out[-1:])
        return np.array(out, dtype=np.int64)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def size_bytes(self) -> int:
        tensors = list(self.net.parameters()) + list(self.net.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)

    def non_embedding_parameters(self) -> int:
        return self.num_parameters() - sum(p.numel() for p in self._vocabulary_parameters())

    def _vocabulary_parameters(self) -> list[nn.Parameter]:
        """What Kaplan et al.'s N leaves out, by identity: every ``nn.Embedding`` table (tokens, positions,
        padding rows), every ``nn.Linear`` onto the vocabulary and the net's own vocabulary-sized
        parameters (a decoder bias). Exact for the recurrent nets; families whose layers could be
        vocabulary-wide by coincidence name theirs."""
        v = self.vocab_size
        tables = [m.weight for m in self.net.modules() if isinstance(m, nn.Embedding)]
        decoders = [p for m in self.net.modules() if isinstance(m, nn.Linear) and m.out_features == v
                    for p in m.parameters()]
        return tables + decoders + [p for p in self.net.parameters(recurse=False) if p.shape[0] == v]

    def flops_per_token(self) -> int:
        """Forward FLOPs per token, 2 per multiply-add: every weight is used once per token (2 x the
        parameters less the embedding tables, whose lookups cost nothing; biases are counted 2 each too).
        A recurrent layer of g gates (RNN 1, GRU 3, LSTM 4) with input width I and hidden width H costs
        2·g·H·(I + H): each gate an input and a recurrent matmul; a dense layer 2·(its N), so training,
        at 3x the forward (the backward pass costs twice it), is Kaplan et al.'s 6N per token.
        Elementwise gate products and nonlinearities are not counted. Families add what the parameter
        count misses (attention, a decoder tied to the embeddings)."""
        embeddings = sum(m.weight.numel() for m in self.net.modules() if isinstance(m, nn.Embedding))
        return 2 * (self.num_parameters() - embeddings) + self._tied_flops()

    def _tied_flops(self) -> int:
        """A decoder sharing the embedding matrix still multiplies by it."""
        return 0

    # ---------------------------------------------------------------- helpers for families
    def decoder_loss(self, features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the decoder's logits ``features @ weight.T + bias``: under bf16
        autocast the fused ``LinearCrossEntropy``, otherwise plain float32 ``F.linear`` and
        ``F.cross_entropy``."""
        if torch.is_autocast_enabled(features.device.type):
            with torch.autocast(features.device.type, enabled=False):
                return LinearCrossEntropy.apply(features.reshape(-1, features.size(-1)), weight, bias,
                                                targets.reshape(-1))
        logits = F.linear(features, weight, bias)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))

    def _tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=torch.long, device=self.device)

    def _log_p_of(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log softmax(logits)[targets] over the last axis, in float32 whatever the compute dtype."""
        return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def _groups(spans: list[tuple[int, int]], batch_size: int):
        """Spans in batches of ``batch_size``, longest first so a batch's padding stays small."""
        spans = sorted(spans, key=lambda se: se[0] - se[1])
        for i in range(0, len(spans), batch_size):
            yield spans[i:i + batch_size]
