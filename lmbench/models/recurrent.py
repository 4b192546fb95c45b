"""The vanilla RNN (tanh or relu), the LSTM and the GRU: one class over ``nn.RNN/LSTM/GRU`` (cuDNN on
a GPU), in the style of pytorch/examples' word_language_model and Zaremba et al. (2014):
embedding -> dropout -> stacked recurrent layers -> dropout -> linear decoder (optionally tied).

An empty context is the zero initial state with the line-end token (``<eos>`` / ``\\n``) as the first
input, which is what the model has seen before every line in training; a corpus without lines gets
a dedicated start embedding instead.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmbench.models.neural import NeuralModel

EVAL_TOKENS = 4096  # tokens per scoring forward pass (bounds the logits' memory)


CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentNet(nn.Module):
    """embedding -> dropout -> stacked nn.RNN/LSTM/GRU -> dropout -> linear decoder."""

    def __init__(self, cell: str, n_in: int, n_out: int, cfg):
        super().__init__()
        extra = {"nonlinearity": cfg.nonlinearity} if cell == "rnn" else {}
        self.n_out = n_out
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = nn.Embedding(n_in, cfg.emb_size)
        self.rnn = CELLS[cell](cfg.emb_size, cfg.hidden_size, cfg.layers,
                               dropout=cfg.dropout if cfg.layers > 1 else 0.0, **extra)
        # a tied decoder multiplies by the embedding's first n_out rows instead of its own matrix
        self.decoder = None if cfg.tie_weights else nn.Linear(cfg.hidden_size, n_out, bias=False)
        self.decoder_bias = nn.Parameter(torch.zeros(n_out))
        if cfg.init_range > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
        if cell == "lstm" and cfg.forget_bias is not None:
            h = cfg.hidden_size
            for layer in range(cfg.layers):  # gates are ordered input, forget, cell, output
                getattr(self.rnn, f"bias_ih_l{layer}").data[h:2 * h] = cfg.forget_bias
                getattr(self.rnn, f"bias_hh_l{layer}").data[h:2 * h] = 0.0

    def features(self, x: torch.Tensor, state):
        """The decoder's input (T, B, H) and the new state, for x: (T, B) ids and state: (layers, B, H),
        a pair of them for the LSTM, or None for zeros."""
        e = self.drop(self.encoder(x))  # (T, B, E)
        h, state = self.rnn(e, state)  # (T, B, H)
        return self.drop(h), state

    def decoder_weight(self) -> torch.Tensor:
        return self.encoder.weight[:self.n_out] if self.decoder is None else self.decoder.weight

    def forward(self, x: torch.Tensor, state):
        h, state = self.features(x, state)
        return F.linear(h, self.decoder_weight(), self.decoder_bias), state  # (T, B, V)


class Recurrent(NeuralModel):
    """A recurrent LM; ``cell`` is ``rnn``, ``lstm`` or ``gru``."""

    def __init__(self, cell: str, cfg, corpus):
        self.cell = cell
        super().__init__(cfg, corpus)

    def build(self, cfg, corpus) -> nn.Module:
        line_end = corpus.line_end
        self.start_id = line_end if line_end is not None else self.vocab_size
        n_in = self.vocab_size + (line_end is None)
        return RecurrentNet(self.cell, n_in, self.vocab_size, cfg)

    def chunk_loss(self, x, y, state):
        h, state = self.net.features(x, state)
        return self.decoder_loss(h, self.net.decoder_weight(), self.net.decoder_bias, y), state

    def _tied_flops(self) -> int:
        return 2 * self.vocab_size * self.cfg.hidden_size if self.cfg.tie_weights else 0

    def _score(self, tokens, spans, batch_size):
        # Each span runs from the zero state with the start token as first input; a batch holds up to
        # batch_size spans, right-padded (padding only follows a row's real tokens, so never reaches
        # them), and long spans go through in chunks that carry the state.
        out = np.empty(len(tokens))
        for group in self._groups(spans, batch_size):
            length = group[0][1] - group[0][0]
            inputs = np.full((length, len(group)), self.start_id, dtype=np.int64)  # (T, B)
            targets = np.zeros((length, len(group)), dtype=np.int64)
            for b, (s, e) in enumerate(group):
                inputs[1:e - s, b] = tokens[s:e - 1]
                targets[:e - s, b] = tokens[s:e]
            step = max(1, EVAL_TOKENS // len(group))
            state, scores = None, []
            for i in range(0, length, step):
                logits, state = self.net(self._tensor(inputs[i:i + step]), state)
                scores.append(self._log_p_of(logits, self._tensor(targets[i:i + step])).cpu())
            scores = torch.cat(scores).double().numpy()
            for b, (s, e) in enumerate(group):
                out[s:e] = scores[:e - s, b]
        return out

    def _next(self, context, new_tokens):
        if context is None:
            new_tokens = [self.start_id] + new_tokens
        logits, state = self.net(self._tensor(new_tokens).view(-1, 1), context)
        return torch.log_softmax(logits[-1, 0].float(), -1).cpu().numpy(), state


# the factories of model=rnn|lstm|gru (rows of lmbench.models.MODELS; their schemas in models/configs.py)
def make_rnn(cfg, corpus):
    return Recurrent("rnn", cfg, corpus)


def make_lstm(cfg, corpus):
    return Recurrent("lstm", cfg, corpus)


def make_gru(cfg, corpus):
    return Recurrent("gru", cfg, corpus)
