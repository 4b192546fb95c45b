"""The torch families: their config schemas and registrations, kept apart from their torch code
(named by import path), so that composing a config and running a count-based model never import torch."""

from __future__ import annotations

from dataclasses import dataclass

from lmbench.config import Choice, ModelConfig
from lmbench.models import register


class Nonlinearity(Choice):
    tanh = "tanh"
    relu = "relu"


@dataclass
class RecurrentConfig(ModelConfig):
    layers: int = 1
    emb_size: int = 128
    hidden_size: int = 128
    dropout: float = 0.0  # on embeddings, between layers and before the decoder
    tie_weights: bool = False  # decoder shares the embedding matrix (needs emb_size == hidden_size)
    init_range: float = 0.1  # uniform(-r, r) for every weight and bias; 0 keeps PyTorch's init


@dataclass
class RNNConfig(RecurrentConfig):
    name: str = "rnn"
    nonlinearity: Nonlinearity = Nonlinearity.tanh


@dataclass
class LSTMConfig(RecurrentConfig):
    name: str = "lstm"
    forget_bias: float | None = 1.0  # forget-gate bias at init; null keeps the init


@dataclass
class GRUConfig(RecurrentConfig):
    name: str = "gru"


@dataclass
class FNNConfig(ModelConfig):
    name: str = "fnn"
    order: int = 5  # n: the model conditions on the previous n-1 tokens
    emb_size: int = 60  # m in the paper
    hidden_size: int = 50  # h in the paper
    # direct connections from the embeddings to the output (W in the paper): off by default, as they
    # overfit within an epoch on small corpora; Bengio et al.'s MLP1 (conf/recipe/brown/) turns them on
    direct: bool = False
    dropout: float = 0.0
    # the output layer multiplies by the input embedding matrix (Press & Wolf 2017), a strong
    # regulariser on small corpora; needs hidden_size == emb_size
    tie_weights: bool = False


@dataclass
class TransformerConfig(ModelConfig):
    name: str = "transformer"
    layers: int = 2
    heads: int = 4
    d_model: int = 128
    context: int = 64  # positions per window, <bos> included
    eval_stride: int = 0  # new tokens scored per sliding window; 0 means context // 2
    dropout: float = 0.0


register("rnn", schema=RNNConfig, factory="lmbench.models.recurrent:make_rnn")
register("lstm", schema=LSTMConfig, factory="lmbench.models.recurrent:make_lstm")
register("gru", schema=GRUConfig, factory="lmbench.models.recurrent:make_gru")
register("fnn", schema=FNNConfig, factory="lmbench.models.fnn:FNN")
register("transformer", schema=TransformerConfig, factory="lmbench.models.transformer:Transformer")
