"""Exponential moving average of a network's weights: the paper evaluates an average of D's parameters."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ssgan.errors import SSGANError


class WeightAverage(nn.Module):
    """Holds a frozen copy of ``network`` whose parameters track an EMA of the live ones.

    The decay is warmed up as min(decay, (1 + t) / (10 + t)) so short runs are not dominated by the
    initial weights. The update count is a host integer (saved as extra state): no device sync per step.
    Buffers (none in the paper's D) are copied, not averaged.
    """

    def __init__(self, network: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise SSGANError(f"model.ema_decay={decay} must be in [0, 1)")
        self.decay = decay
        self.average = copy.deepcopy(network)
        self.average.requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def reset(self, network: nn.Module) -> None:
        """Start the average again from ``network``'s current weights (after data-dependent init)."""
        self.average.load_state_dict(network.state_dict())
        self.num_updates = 0

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        decay = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        self.num_updates += 1
        torch._foreach_lerp_(list(self.average.parameters()), list(network.parameters()), 1.0 - decay)
        for average_buffer, live_buffer in zip(self.average.buffers(), network.buffers()):
            average_buffer.copy_(live_buffer)

    def get_extra_state(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.num_updates = int(state["num_updates"])
