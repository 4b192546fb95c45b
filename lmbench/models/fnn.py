"""Bengio et al. (2003)'s neural probabilistic language model: the embeddings of the previous n-1
tokens, concatenated, go through a tanh hidden layer to a softmax over the vocabulary, optionally
with direct connections from the concatenated embeddings to the output:

    y = b + W x + U tanh(d + H x),   x = [C(w_{t-n+1}), ..., C(w_{t-1})]

Context slots before the start of the text (or of a sentence under the sentence protocol) hold a
dedicated padding embedding. In training the state carried between chunks is the last n-1 tokens.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmbench.errors import UserError
from lmbench.models.neural import NeuralModel

ROWS_PER_TOKEN = 64  # scoring pushes batch_size * ROWS_PER_TOKEN positions through at once
TIED_INIT = 0.1  # tied embeddings start uniform in +-0.1, as the recurrent family's (init_range)


class FNNNet(nn.Module):
    def __init__(self, vocab_size: int, cfg):
        super().__init__()
        width = (cfg.order - 1) * cfg.emb_size
        self.embed = nn.Embedding(vocab_size + 1, cfg.emb_size)  # the last row pads missing context
        self.hidden = nn.Linear(width, cfg.hidden_size)
        self.out = None if cfg.tie_weights else nn.Linear(cfg.hidden_size, vocab_size)
        if cfg.tie_weights:  # the embeddings are the output weights: start them small, as a decoder's
            self.out_bias = nn.Parameter(torch.zeros(vocab_size))
            nn.init.uniform_(self.embed.weight, -TIED_INIT, TIED_INIT)
        self.direct = nn.Linear(width, vocab_size, bias=False) if cfg.direct else None
        self.drop = nn.Dropout(cfg.dropout)

    def layers(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # context: (..., n-1) ids -> the concatenated embeddings x and the hidden layer's output
        x = self.drop(self.embed(context).flatten(-2))  # (..., (n-1) m)
        return x, self.drop(torch.tanh(self.hidden(x)))

    def decoder(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer's weight and bias: its own, or the embeddings (less the padding row)."""
        if self.out is None:
            return self.embed.weight[:-1], self.out_bias
        return self.out.weight, self.out.bias

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        x, h = self.layers(context)
        logits = F.linear(h, *self.decoder())  # (..., V)
        return logits if self.direct is None else logits + self.direct(x)

    def decoder_input(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer as one matrix product: features [h, x] and weight [U, W] (direct
        connections included), so the fused bf16 loss sees a single decoder."""
        x, h = self.layers(context)
        weight = self.decoder()[0]
        if self.direct is None:
            return h, weight
        return torch.cat([h, x], -1), torch.cat([weight, self.direct.weight], 1)


class FNN(NeuralModel):  # model=fnn: a row of lmbench.models.MODELS, its schema in models/configs.py
    def check(self, cfg, corpus) -> None:
        if cfg.order > len(corpus.train):
            raise UserError(f"model.order={cfg.order} is larger than the train split "
                            f"({len(corpus.train)} tokens).")

    def build(self, cfg, corpus) -> nn.Module:
        self.context = cfg.order - 1
        self.pad_id = self.vocab_size
        return FNNNet(self.vocab_size, cfg)

    def _tied_flops(self) -> int:
        return 2 * self.vocab_size * self.cfg.hidden_size if self.cfg.tie_weights else 0

    def _vocabulary_parameters(self) -> list[nn.Parameter]:
        """The embeddings, the output layer and the direct connections (also onto the vocabulary): N is
        the hidden layer alone, ((n-1)·m + 1)·h."""
        net = self.net
        output = [net.out_bias] if net.out is None else list(net.out.parameters())
        return [net.embed.weight, *output, *([] if net.direct is None else [net.direct.weight])]

    def initial_state(self, batch: int):
        return torch.full((self.context, batch), self.pad_id, dtype=torch.long, device=self.device)

    def chunk_loss(self, x, y, state):
        # x, y: (T, B); state: the previous n-1 tokens of each stream, (n-1, B)
        full = torch.cat([state, x])  # (n-1+T, B)
        windows = full.unfold(0, self.context, 1)[1:]  # (T, B, n-1): the n-1 tokens up to each x
        if torch.is_autocast_enabled(x.device.type):  # bf16: one fused decoder and loss
            features, weight = self.net.decoder_input(windows)
            loss = self.decoder_loss(features, weight, self.net.decoder()[1], y)
        else:
            logits = self.net(windows)  # (T, B, V)
            loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), y.reshape(-1))
        return loss, full[-self.context:]

    def _score(self, tokens, spans, batch_size):
        # Every position's context, with slots before its span's start padded: (N, n-1).
        starts = np.array([s for s, _ in spans])
        span_start = starts[np.searchsorted(starts, np.arange(len(tokens)), side="right") - 1]
        offsets = np.arange(-self.context, 0)  # positions i-(n-1) .. i-1
        where = np.arange(len(tokens))[:, None] + offsets
        context = np.where(where >= span_start[:, None], tokens[np.maximum(where, 0)], self.pad_id)
        out = np.empty(len(tokens))
        rows = batch_size * ROWS_PER_TOKEN
        for i in range(0, len(tokens), rows):
            logits = self.net(self._tensor(context[i:i + rows]))
            out[i:i + rows] = self._log_p_of(logits, self._tensor(tokens[i:i + rows])).double().cpu()
        return out

    def _next(self, context, new_tokens):
        context = (context or [self.pad_id] * self.context) + new_tokens
        logits = self.net(self._tensor(context[-self.context:]))
        return torch.log_softmax(logits.float(), -1).cpu().numpy(), context
