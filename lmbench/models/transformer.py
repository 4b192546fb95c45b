"""A small GPT-style causal decoder (pre-LN blocks, learned positions, tied input/output embeddings),
after Karpathy's nanoGPT.

Every window the model sees, in training and in scoring, starts with a dedicated ``<bos>`` token
that stands for "no earlier context here"; so a window holds ``context - 1`` real tokens and the
prediction at ``<bos>`` is that of the first token from an empty context. Training chunks are
``context - 1`` tokens long (``train.bptt`` is a recurrent notion the transformer does not use).
Scoring slides a ``context``-token window by ``eval_stride`` so every token is predicted exactly once
with as much context as fits; windows never cross a protocol start.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmbench.errors import UserError
from lmbench.models.neural import NeuralModel


class Block(nn.Module):
    """Pre-LN: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, d)
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))  # (B, T, d)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, cfg):
        super().__init__()
        self.vocab_size = vocab_size
        self.tok = nn.Embedding(vocab_size + 1, cfg.d_model)  # the last row is <bos>
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's input (B, T, d) for x: (B, T) ids, T <= context, x[:, 0] = <bos>."""
        positions = torch.arange(x.size(1), device=x.device)
        h = self.drop(self.tok(x) + self.pos(positions))  # (B, T, d)
        for block in self.blocks:
            h = block(h)
        return self.ln(h)

    def decoder_weight(self) -> torch.Tensor:
        return self.tok.weight[:self.vocab_size]  # tied output embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.features(x), self.decoder_weight())  # (B, T, V): the token after each


class Transformer(NeuralModel):  # model=transformer: a row of lmbench.models.MODELS
    def check(self, cfg, corpus) -> None:
        if cfg.d_model % cfg.heads:
            raise UserError(f"model.d_model={cfg.d_model} must be a multiple of model.heads={cfg.heads}.")
        if cfg.context > len(corpus.train):
            raise UserError(f"model.context={cfg.context} must be at most the train split's "
                            f"{len(corpus.train)} tokens.")
        if cfg.eval_stride >= cfg.context:
            raise UserError(f"model.eval_stride={cfg.eval_stride} must be below model.context={cfg.context} "
                            "(0 means context // 2).")

    def build(self, cfg, corpus) -> nn.Module:
        self.window = cfg.context
        self.stride = cfg.eval_stride or cfg.context // 2
        self.bos = self.vocab_size
        return GPT(self.vocab_size, cfg)

    def seq_len(self, bptt: int) -> int:
        return self.window - 1

    def eval_info(self) -> dict:
        return {"eval_window": self.window, "eval_stride": self.stride}

    def _vocabulary_parameters(self) -> list[nn.Parameter]:
        """The token table (also the tied output layer) and the positions: N = 12·layers·d² + 13·layers·d
        + 2·d (attention 4d², MLP 8d², their biases and the layer norms), Kaplan et al.'s 12·n_layer·d²."""
        return [self.net.tok.weight, self.net.pos.weight]

    def flops_per_token(self) -> int:
        # + attention scores and weighted sums (2 * 2 * T * d per layer, T ~ half a window on average)
        # + the tied output projection
        d = self.cfg.d_model
        attention = 2 * 2 * self.cfg.layers * d * self.window // 2
        return super().flops_per_token() + attention + 2 * self.vocab_size * d

    def chunk_loss(self, x, y, state):
        # x, y: (T, B). Input <bos> x_0 .. x_{T-1}; targets x_0, y_0 .. y_{T-1}, so the empty-context
        # prediction at <bos> is trained too.
        x, y = x.t(), y.t()  # (B, T)
        bos = torch.full_like(x[:, :1], self.bos)
        features = self.net.features(torch.cat([bos, x], 1))  # (B, T+1, d)
        targets = torch.cat([x[:, :1], y], 1)  # (B, T+1)
        return self.decoder_loss(features, self.net.decoder_weight(), None, targets), state

    def _windows(self, spans):
        """Per window: (position of its first real token, first and last+1 positions it scores).
        The first window of a span scores all it sees; each later one moves on by ``stride``."""
        for s, e in spans:
            lo, hi = s, min(e, s + self.window)
            while True:
                yield max(s, hi - self.window), lo, hi
                if hi == e:
                    break
                lo, hi = hi, min(e, hi + self.stride)

    def _score(self, tokens, spans, batch_size):
        # Window input: <bos> then tokens[a : a + window - 1]; the output at position j predicts
        # tokens[a + j]. Rows are right-padded, which causal attention keeps from earlier positions.
        out = np.empty(len(tokens))
        windows = list(self._windows(spans))
        for i in range(0, len(windows), batch_size):
            batch = windows[i:i + batch_size]
            inputs = np.full((len(batch), self.window), self.bos, dtype=np.int64)
            targets = np.zeros((len(batch), self.window), dtype=np.int64)
            for b, (a, _, hi) in enumerate(batch):
                inputs[b, 1:hi - a] = tokens[a:hi - 1]
                targets[b, :hi - a] = tokens[a:hi]
            scores = self._log_p_of(self.net(self._tensor(inputs)), self._tensor(targets)).double().cpu()
            for b, (a, lo, hi) in enumerate(batch):
                out[lo:hi] = scores[b, lo - a:hi - a].numpy()
        return out

    def _next(self, context, new_tokens):
        context = (context or []) + new_tokens
        window = [self.bos] + context[-(self.window - 1):]
        logits = self.net(self._tensor(window).view(1, -1))
        return torch.log_softmax(logits[0, -1].float(), -1).cpu().numpy(), context
