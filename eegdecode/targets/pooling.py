"""Pooling of a layer's activations into one feature vector per image.

Token sequences ``(batch, n_tokens, dim)`` (vision transformers) and feature maps ``(batch, channels, h, w)``
(convolutional stages) are pooled by name:

- ``cls``: the class token (token 0). Only for token sequences whose model has one (``n_prefix >= 1``).
- ``mean``: the mean over the patch tokens (the ``n_prefix`` leading class/register tokens excluded), or the spatial
  mean of a feature map.
- ``tokens:N``: the first ``N`` tokens (class token included), concatenated: ``N * dim`` values. For a feature map
  ``N`` must be a square ``s * s``: the map is average-pooled to an ``s x s`` grid and flattened position-major
  (``s * s * channels`` values).

Vectors ``(batch, dim)`` (a model's final embedding) pass through unchanged whatever the pooling.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

POOLINGS = ("cls", "mean", "tokens:N")
_TOKENS = re.compile(r"^tokens:([1-9][0-9]*)$")


def check_pooling(pooling: str) -> str:
    """Return ``pooling`` if it is ``cls``, ``mean`` or ``tokens:N`` (N >= 1); raise ValueError otherwise."""
    if pooling in ("cls", "mean") or _TOKENS.match(str(pooling)):
        return pooling
    raise ValueError(f"Invalid value for pooling: {pooling!r}; allowed values are {list(POOLINGS)} (N >= 1)")


def pooling_slug(pooling: str) -> str:
    """A file-name friendly form: ``tokens:4`` -> ``tokens4``."""
    return check_pooling(pooling).replace(":", "")


def pool(x: torch.Tensor, pooling: str, n_prefix: int = 1) -> torch.Tensor:
    """Pool activations ``x`` into ``(batch, features)``.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, dim)``, ``(batch, n_tokens, dim)`` or ``(batch, channels, h, w)``.
    pooling : str
        ``cls``, ``mean`` or ``tokens:N`` (see the module docstring).
    n_prefix : int
        Leading non-patch tokens (class, registers) of a token sequence; 0 for models without a class token.

    Returns
    -------
    torch.Tensor
        ``(batch, features)``, same dtype as ``x``.
    """
    check_pooling(pooling)
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        n_tokens = x.shape[1]
        if pooling == "cls":
            if n_prefix < 1:
                raise ValueError(
                    "Invalid value for pooling: 'cls'; this model has no class token, use 'mean' or 'tokens:N'"
                )
            return x[:, 0]
        if pooling == "mean":
            return x[:, n_prefix:].mean(dim=1)
        n = int(pooling.split(":")[1])
        if n > n_tokens:
            raise ValueError(f"Invalid value for pooling: {pooling!r}; the layer has only {n_tokens} tokens")
        return x[:, :n].reshape(x.shape[0], -1)
    if x.ndim == 4:
        if pooling == "cls":
            raise ValueError(
                "Invalid value for pooling: 'cls'; a convolutional feature map has no class token"
            )
        if pooling == "mean":
            return x.mean(dim=(2, 3))
        n = int(pooling.split(":")[1])
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(
                f"Invalid value for pooling: {pooling!r}; a feature map needs a square N (1, 4, 9, ...)"
            )
        grid = F.adaptive_avg_pool2d(x, side)  # (batch, channels, side, side)
        return grid.flatten(2).transpose(1, 2).reshape(x.shape[0], -1)
    raise ValueError(f"cannot pool activations of shape {tuple(x.shape)}; expected 2, 3 or 4 dimensions")
