"""Historical averaging (Salimans et al. 2016, section 3.3): each player is pulled towards the mean of its own
past parameters, which damps the orbits that gradient descent can follow in a game."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class HistoricalAverage(nn.Module):
    """The running mean of a network's trainable parameters and the penalty lambda ||theta - mean_t||^2.

    At the player's t-th step, mean_t = (1/t) sum_{i=1..t} theta_i over the parameters its loss was evaluated
    at (this step's included, so the first step costs nothing). The mean is a constant of the step: the
    penalty's gradient 2 lambda (theta - mean_t) is added to the loss's gradient. The means are buffers and
    the step count is extra state, so both are in checkpoints; all updates are ``torch._foreach`` ops.
    """

    def __init__(self, network: nn.Module, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)
        # the parameters the player's optimizer updates, named once: optimizer toggling flips requires_grad later
        self.names = [name for name, parameter in network.named_parameters() if parameter.requires_grad]
        for index, parameter in enumerate(self.tracked(network)):
            self.register_buffer(f"mean_{index}", torch.zeros_like(parameter))
        self.num_steps = 0

    def tracked(self, network: nn.Module) -> list[nn.Parameter]:
        named = dict(network.named_parameters())
        return [named[name] for name in self.names]

    @torch.no_grad()
    def add_penalty_gradient(self, network: nn.Module) -> Tensor:
        """Fold theta into the mean, add 2 lambda (theta - mean_t) to each ``.grad``; return the penalty (0-dim)."""
        parameters = self.tracked(network)
        means = list(self.buffers())
        self.num_steps += 1
        torch._foreach_lerp_(means, parameters, 1.0 / self.num_steps)
        differences = torch._foreach_sub(parameters, means)
        for parameter in parameters:
            if parameter.grad is None:  # unused in this step's loss: the penalty alone moves it
                parameter.grad = torch.zeros_like(parameter)
        torch._foreach_add_([p.grad for p in parameters], differences, alpha=2.0 * self.weight)
        return self.weight * torch.stack(torch._foreach_norm(differences)).square().sum()

    def get_extra_state(self) -> dict[str, Any]:
        return {"num_steps": self.num_steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.num_steps = int(state["num_steps"])
