"""The GAN's training step as one CUDA graph replay: fewer kernel launches from the host, no host sync per step.

``model.step_capture`` picks it: ``off`` runs the eager step (the reference), ``on`` captures the step or refuses
to start, ``auto`` captures on a CUDA device and, where the run has a feature the graph cannot hold
(:func:`capture_blockers`), trains eagerly after one log line saying why.

:class:`CapturedStep` runs a step function over a batch: a few eager warm-up steps on a side stream (the
optimizer's moments, cuBLAS workspaces and lazy state are allocated outside the graph), then one capture into
static input buffers, then a replay per batch after copying the batch into those buffers. What a replay cannot
change, the host values baked in at capture (a learning rate, a loss weight), is the ``settings`` key: a new key
captures again. A batch of another shape runs eagerly, so an odd-sized batch is trained, just not captured.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ssgan.errors import SSGANError

log = logging.getLogger("ssgan")

STEP_CAPTURE_MODES = ("auto", "on", "off")
WARMUP_STEPS = 3  # eager steps before the capture, as torch's whole-network example; Adam's state needs one
FP16_PRECISIONS = ("16-mixed", "16")  # the gradient scaler's inf check and skipped steps happen on the host


def step_capture_mode(value: Any) -> str:
    """``model.step_capture`` checked: one of auto, on, off (YAML reads a bare on/off as a bool: quote it)."""
    if value not in STEP_CAPTURE_MODES or isinstance(value, bool):
        raise SSGANError(f"model.step_capture={value!r} must be one of {', '.join(STEP_CAPTURE_MODES)}")
    return str(value)


def accepts_capturable(optimizer_class: type) -> bool:
    """Whether the optimizer has torch's ``capturable`` mode (its step count and bias corrections on the device)."""
    try:
        return "capturable" in inspect.signature(optimizer_class).parameters
    except (TypeError, ValueError):
        return False


def capture_blockers(
    *,
    world_size: int,
    precision: str | int,
    historical_averaging: bool,
    augmentation: type | None,
    optimizer: type | None,
) -> list[str]:
    """Why a run's step cannot be captured yet, one reason per feature (empty: it can).

    The same facts come from the config at the boundary (:mod:`ssgan.cli.checks`) and from the built objects
    when a fit starts (:class:`ssgan.models.SSGAN`).
    """
    reasons = []
    if world_size > 1:
        reasons.append(f"DDP with {world_size} processes (the gradient all-reduce is not captured)")
    if str(precision) in FP16_PRECISIONS:
        reasons.append(f"trainer.precision={precision} (fp16's gradient scaler checks for inf on the host)")
    if historical_averaging:
        reasons.append("gan.historical_averaging (its running mean counts steps on the host)")
    if augmentation is not None and not getattr(augmentation, "graph_safe", False):
        reasons.append(
            f"model.augmentation={augmentation.__name__} (not marked graph_safe: its random draws may be host values)"
        )
    if optimizer is not None and not accepts_capturable(optimizer):
        reasons.append(f"model.optimizer={optimizer.__name__} (it has no capturable mode)")
    return reasons


def resolve_step_capture(mode: str, device: torch.device, blockers: Sequence[str]) -> bool:
    """Whether this fit captures its step: ``on`` refuses a CPU or a blocker, ``auto`` logs one line and trains
    eagerly on a CUDA device with a blocker, and is silently eager elsewhere."""
    if mode == "off":
        return False
    if device.type != "cuda":
        if mode == "on":
            raise SSGANError(
                f"model.step_capture=on needs a CUDA device but this run trains on {device.type}; use auto or off"
            )
        return False
    if blockers:
        if mode == "on":
            raise SSGANError(f"model.step_capture=on cannot capture this run: {'; '.join(blockers)}; use auto or off")
        log.info("model.step_capture=auto: training step not captured: %s", "; ".join(blockers))
        return False
    return True


# ----------------------------------------------------------------------------------------------- the runner
class Graph(Protocol):
    """A captured step: ``replay`` runs it again on the static inputs and writes ``outputs`` in place."""

    outputs: Any

    def replay(self) -> None: ...


class GraphBackend(Protocol):
    """How steps are warmed up and captured (CUDA graphs on a GPU; tests stand in their own on a CPU)."""

    def warm_up(self, run: Callable[[], Any]) -> Any: ...

    def capture(self, run: Callable[[], Any]) -> Graph: ...


@dataclass
class CapturedCudaGraph:
    graph: torch.cuda.CUDAGraph
    outputs: Any

    def replay(self) -> None:
        self.graph.replay()


class CudaGraphs:
    """Warm-up on a side stream and capture with ``torch.cuda.graph``, as torch's whole-network example does."""

    def __init__(self) -> None:
        self.side_stream: torch.cuda.Stream | None = None

    def warm_up(self, run: Callable[[], Any]) -> Any:
        """One eager step on a side stream, ordered after and before the current stream's work."""
        if self.side_stream is None:
            self.side_stream = torch.cuda.Stream()
        current = torch.cuda.current_stream()
        self.side_stream.wait_stream(current)
        with torch.cuda.stream(self.side_stream):
            outputs = run()
        current.wait_stream(self.side_stream)
        return outputs

    def capture(self, run: Callable[[], Any]) -> CapturedCudaGraph:
        """Record ``run``'s kernels without running them; its outputs live in the graph's private memory pool."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = run()
        return CapturedCudaGraph(graph, outputs)


def signature_of(inputs: Sequence[Tensor]) -> tuple[tuple[tuple[int, ...], torch.dtype, torch.device], ...]:
    """What a graph's static buffers fix: each input's shape, dtype and device."""
    return tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)


class CapturedStep:
    """Runs ``step(inputs)`` eagerly for ``warmup_steps`` calls, then as replays of one captured graph.

    ``step`` must do all its work on the device given Python's one pass at capture: no host value read back,
    no host counter it relies on (``after_step`` does the host's share of every step, captured or not).
    ``before_capture`` runs before each capture (the module drops its gradients there, so the graph allocates
    its own). The returned outputs of a replay are the graph's static tensors, overwritten by the next replay:
    a caller that keeps them copies them (the epoch sums do).
    """

    def __init__(
        self,
        step: Callable[[tuple[Tensor, ...]], Any],
        after_step: Callable[[], None],
        before_capture: Callable[[], None] = lambda: None,
        backend: GraphBackend | None = None,
        warmup_steps: int = WARMUP_STEPS,
    ) -> None:
        self.step, self.after_step, self.before_capture = step, after_step, before_capture
        self.backend = backend if backend is not None else CudaGraphs()
        self.warmup_steps = warmup_steps
        self.steps_warmed = 0
        self.graph: Graph | None = None
        self.static_inputs: tuple[Tensor, ...] = ()
        self.signature: tuple | None = None
        self.settings: Hashable = None
        self.captures = 0  # how often the step was captured (once, plus once per settings change)
        self.replays = 0
        self.eager_steps = 0  # warm-up steps and batches of another shape
        self._told_shape = False

    def __call__(self, inputs: Sequence[Tensor], settings: Hashable = None) -> Any:
        inputs = tuple(inputs)
        if self.steps_warmed < self.warmup_steps:
            outputs = self.backend.warm_up(lambda: self.step(inputs))
            self.steps_warmed += 1
            self.eager_steps += 1
        elif self.graph is not None and signature_of(inputs) != self.signature:
            if not self._told_shape:
                log.info("captured training step: a batch of shapes %s, not %s, runs eagerly",
                         [s[0] for s in signature_of(inputs)], [s[0] for s in self.signature or ()])
                self._told_shape = True
            outputs = self.step(inputs)
            self.eager_steps += 1
        else:
            if self.graph is None or settings != self.settings:
                self._capture(inputs, settings)
            else:
                for static, value in zip(self.static_inputs, inputs):
                    static.copy_(value)
            self.graph.replay()
            self.replays += 1
            outputs = self.graph.outputs
        self.after_step()
        return outputs

    def _capture(self, inputs: tuple[Tensor, ...], settings: Hashable) -> None:
        self.release()
        self.before_capture()
        self.static_inputs = tuple(t.clone() for t in inputs)  # allocated outside the graph's pool
        self.graph = self.backend.capture(lambda: self.step(self.static_inputs))
        self.signature, self.settings = signature_of(inputs), settings
        self.captures += 1

    def release(self) -> None:
        """Drop the graph and its buffers (their memory goes back once nothing else holds it)."""
        self.graph, self.static_inputs, self.signature, self.settings = None, (), None, None


# ----------------------------------------------------------------------------------------------- optimizers
def make_capturable(optimizers: Sequence[torch.optim.Optimizer]) -> list[list[bool]]:
    """Switch each parameter group to ``capturable`` (step counts on the parameters' device); return the old flags.

    A restored checkpoint may hold step counts on the host (a non-fused optimizer's): they move to the device.
    The warm-up steps run uncaptured on purpose, so torch's warning about that is silenced.
    """
    configured = []
    for optimizer in optimizers:
        configured.append([bool(group.get("capturable", False)) for group in optimizer.param_groups])
        for group in optimizer.param_groups:
            group["capturable"] = True
            for parameter in group["params"]:
                state = optimizer.state.get(parameter, {})
                step = state.get("step")
                if isinstance(step, Tensor) and step.device != parameter.device:
                    state["step"] = step.to(device=parameter.device, dtype=torch.float32)
        optimizer._warned_capturable_if_run_uncaptured = True  # type: ignore[attr-defined]
    return configured


def restore_capturable(optimizers: Sequence[torch.optim.Optimizer], configured: Sequence[Sequence[bool]]) -> None:
    """Give the parameter groups back the ``capturable`` flags :func:`make_capturable` returned."""
    for optimizer, flags in zip(optimizers, configured):
        for group, flag in zip(optimizer.param_groups, flags):
            group["capturable"] = flag


def saved_as_configured(optimizer_states: Sequence[dict[str, Any]], configured: Sequence[Sequence[bool]]) -> None:
    """Write the configured ``capturable`` flags into a checkpoint's optimizer states, so it resumes captured or
    eager alike (a saved flag would otherwise override the resuming run's)."""
    for state, flags in zip(optimizer_states, configured):
        for group, flag in zip(state.get("param_groups", []), flags):
            group["capturable"] = flag
