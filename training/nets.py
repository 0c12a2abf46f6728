"""The MLPs, with the input normalisation (and, for regression, the output scale) as modules.

What is exported is `ServingModel`: raw inputs in, probabilities or values out. Everything a
client would otherwise have to reproduce (mean/std, softmax, target scale) lives inside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std with statistics fitted on the training split and stored as buffers."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone().to(torch.float32))
        self.register_buffer(
            "inv_std", 1.0 / std.detach().clone().to(torch.float32).clamp_min(1e-6)
        )

    @classmethod
    def fit(cls, x: torch.Tensor, per_feature: bool) -> Standardize:
        if per_feature:
            return cls(x.mean(dim=0), x.std(dim=0))
        return cls(x.mean().reshape(1), x.std().reshape(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class Rescale(nn.Module):
    """y * std + mean: maps the network's standardised output back to the target's units."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone().to(torch.float32))
        self.register_buffer("std", std.detach().clone().to(torch.float32))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


def mlp(
    in_features: int, hidden: Sequence[int], out_features: int, dropout: float
) -> nn.Sequential:
    """Linear-ReLU(-Dropout) blocks ending in a plain Linear layer (logits or values)."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class ServingModel(nn.Module):
    """normalise -> MLP -> head. The head is softmax for classifiers, Rescale for regression."""

    def __init__(self, normalize: Standardize, net: nn.Sequential, head: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net
        self.head = head

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The training-time output: logits, or standardised regression values."""
        return self.net(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(self.normalize(x)))


class Probabilities(nn.Module):
    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)
