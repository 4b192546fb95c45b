"""The decoder's cross-entropy fused for bf16 training, in its own module because it is a
performance measure with a measured reason: on CPUs with native bf16 matmuls it keeps the (N, V)
logits in bf16 for the products and float32 only for the softmax (see ``benchmarks/precision.py``).
Used only under bf16 autocast (``train.precision``); float32 training takes plain ``F.linear`` and
``F.cross_entropy``."""

from __future__ import annotations

import torch


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of the logits ``features @ weight.T + bias`` against ``targets``, fused for
    bf16 training: bf16 matrix products (the bias as one more column, so its gradient comes out of
    the weight's product), a float32 softmax, and the logits' gradient (softmax minus one-hot) formed
    in the forward pass. The (tokens x vocabulary) logits are made and read once, instead of passing
    through autocast's log-softmax, NLL and their backward kernels."""

    @staticmethod
    def forward(ctx, features, weight, bias, targets):
        n, width = features.shape
        x = features.new_ones((n, width + (bias is not None)), dtype=torch.bfloat16)
        w = weight.new_empty((len(weight), x.size(1)), dtype=torch.bfloat16)
        x[:, :width], w[:, :width] = features, weight
        if bias is not None:
            w[:, width] = bias
        p = torch.softmax(torch.mm(x, w.t()).float(), -1)  # (N, V) float32
        rows = torch.arange(n, device=p.device)
        loss = -p[rows, targets].clamp_min(torch.finfo(p.dtype).tiny).log().mean()
        p[rows, targets] -= 1  # n x (d loss / d logits)
        ctx.width, ctx.has_bias = width, bias is not None
        ctx.save_for_backward(x, w, p.to(torch.bfloat16))
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        x, w, grad_logits = ctx.saved_tensors
        scale = grad_loss / len(x)
        grad_features = (grad_logits @ w)[:, :ctx.width].float().mul_(scale)
        grad_weight = (grad_logits.t() @ x).float().mul_(scale)  # (V, width [+ 1 for the bias])
        bias = grad_weight[:, ctx.width] if ctx.has_bias else None
        return grad_features, grad_weight[:, :ctx.width], bias, None
