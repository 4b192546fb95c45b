"""The torch families' config schemas, kept apart from their torch code, so that composing a config
and running a count-based model never import torch."""

from __future__ import annotations

from dataclasses import dataclass

from lmbench.config import DROPOUT, Choice, ModelConfig, Rule, option, size


class Nonlinearity(Choice):
    tanh = "tanh"
    relu = "relu"


@dataclass
class RecurrentConfig(ModelConfig):
    layers: int = option(1, size())
    emb_size: int = option(128, size())
    hidden_size: int = option(128, size())
    dropout: float = option(0.0, DROPOUT)  # on embeddings, between layers and before the decoder
    tie_weights: bool = False  # decoder shares the embedding matrix (needs emb_size == hidden_size)
    # uniform(-r, r) for every weight and bias; 0 keeps PyTorch's init
    init_range: float = option(0.1, Rule(lambda v: 0 <= v <= 100, "in [0, 100] (0 keeps PyTorch's init)",
                                         (-0.1, 101.0)))


@dataclass
class RNNConfig(RecurrentConfig):
    name: str = "rnn"
    nonlinearity: Nonlinearity = Nonlinearity.tanh


@dataclass
class LSTMConfig(RecurrentConfig):
    name: str = "lstm"
    # forget-gate bias at init; null keeps the init
    forget_bias: float | None = option(1.0, Rule(lambda v: v is None or -100 <= v <= 100,
                                                 "null or in [-100, 100]", (101.0, -101.0)))


@dataclass
class GRUConfig(RecurrentConfig):
    name: str = "gru"


@dataclass
class FNNConfig(ModelConfig):
    name: str = "fnn"
    order: int = option(5, size(2, 1000))  # n: the model conditions on the previous n-1 tokens
    emb_size: int = option(60, size())  # m in the paper
    hidden_size: int = option(50, size())  # h in the paper
    # direct connections from the embeddings to the output (W in the paper): off by default, as they
    # overfit within an epoch on small corpora; Bengio et al.'s MLP1 (conf/recipe/brown/) turns them on
    direct: bool = False
    dropout: float = option(0.0, DROPOUT)
    # the output layer multiplies by the input embedding matrix (Press & Wolf 2017), a strong
    # regulariser on small corpora; needs hidden_size == emb_size
    tie_weights: bool = False


@dataclass
class TransformerConfig(ModelConfig):
    name: str = "transformer"
    layers: int = option(2, size())
    heads: int = option(4, size())
    d_model: int = option(128, size())
    context: int = option(64, size(2))  # positions per window, <bos> included
    eval_stride: int = option(0, size(0))  # new tokens scored per sliding window; 0 means context // 2
    dropout: float = option(0.0, DROPOUT)

