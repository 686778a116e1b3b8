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

    :meth:`count_on_device` moves the count into a float64 device tensor, for a captured training step: the
    decay is then computed on the device, with the same float64 arithmetic, and a graph replay advances it.
    """

    def __init__(self, network: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise SSGANError(f"model.ema_decay={decay} must be in [0, 1)")
        self.decay = decay
        self.average = copy.deepcopy(network)
        self.average.requires_grad_(False)
        self.device_updates: torch.Tensor | None = None  # the count, while counted on the device
        self.num_updates = 0

    @property
    def num_updates(self) -> int:
        """Updates so far (read from the device, one sync, while counted there)."""
        if self.device_updates is not None:
            return int(self.device_updates.item())
        return self._num_updates

    @num_updates.setter
    def num_updates(self, value: int) -> None:
        self._num_updates = int(value)
        if self.device_updates is not None:
            self.device_updates.fill_(float(value))

    def count_on_device(self, device: torch.device) -> None:
        """Keep the count on ``device`` from now on, so no host value enters the update."""
        if self.device_updates is None:
            self.device_updates = torch.tensor(float(self._num_updates), dtype=torch.float64, device=device)

    def count_on_host(self) -> None:
        """Bring the count back to the host (one sync)."""
        if self.device_updates is not None:
            self._num_updates = int(self.device_updates.item())
            self.device_updates = None

    @torch.no_grad()
    def reset(self, network: nn.Module) -> None:
        """Start the average again from ``network``'s current weights (after data-dependent init)."""
        self.average.load_state_dict(network.state_dict())
        self.num_updates = 0

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        if self.device_updates is not None:
            self._update_counted_on_device(network)
            return
        decay = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        self.num_updates += 1
        torch._foreach_lerp_(list(self.average.parameters()), list(network.parameters()), 1.0 - decay)
        for average_buffer, live_buffer in zip(self.average.buffers(), network.buffers()):
            average_buffer.copy_(live_buffer)

    def _update_counted_on_device(self, network: nn.Module) -> None:
        """:meth:`update` with the count on the device: the same float64 decay, rounded once to each parameter's
        dtype, as the host path's Python float is; torch's lerp takes a tensor weight per parameter."""
        count = self.device_updates
        assert count is not None
        weight = 1.0 - torch.clamp((1.0 + count) / (10.0 + count), max=self.decay)
        averages, live = list(self.average.parameters()), list(network.parameters())
        weights = {dtype: weight.to(dtype) for dtype in {p.dtype for p in averages}}
        torch._foreach_lerp_(averages, live, [weights[p.dtype] for p in averages])
        count.add_(1.0)
        for average_buffer, live_buffer in zip(self.average.buffers(), network.buffers()):
            average_buffer.copy_(live_buffer)

    def get_extra_state(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.num_updates = int(state["num_updates"])
