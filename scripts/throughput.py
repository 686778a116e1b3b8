"""Time the SSGAN's training step alone and compare its FLOP rate with a plain fp32 matmul in the same process.

    python scripts/throughput.py                        # the paper's MNIST networks on 28x28 inputs, CPU
    python scripts/throughput.py --accelerator gpu --steps 300
    python scripts/throughput.py --precision bf16-mixed    # bf16 autocast (default: fp32, as the recipes)
    python scripts/throughput.py --accelerator gpu --step-capture on    # the step as one CUDA graph replay

The config is composed and built by ``ssgan.build`` (overrides as for ``ssgan-train``), with random tensors of
the Fashion-MNIST shape as its data (speed does not depend on them) and no callbacks or logger but the timer.
Reports samples/s (unlabeled examples; each step also uses as many labeled and generated ones), seconds per
epoch of ``EPOCH_EXAMPLES`` unlabeled examples, FLOPs per step (counted by torch's FlopCounterMode) and the
achieved FLOP rate as a fraction of a square fp32 matmul's rate measured on the same threads: a ratio that
stays meaningful on a noisy or shared machine. Also reports page faults per timed step: memory the step hands
back to the OS and faults in again (see ssgan/runtime/allocator.py, which this script applies on CPU).
"""

from __future__ import annotations

import argparse
import json
import time

import pytorch_lightning as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

from ssgan.build import build_datamodule, build_model, build_trainer, compose
from ssgan.cli.checks import check_config
from ssgan.data.sources.base import ArrayDataset, SourceData
from ssgan.errors import SSGANError
from ssgan.runtime.allocator import keep_freed_memory
from ssgan.runtime.hardware import device_name, training_device_type

EPOCH_EXAMPLES = 60_000


class RandomImages:
    """A source of random 28x28 images with random labels, the shape of (Fashion-)MNIST.

    A plain class, not a dataclass: Hydra would merge a dataclass given to ``build_datamodule`` into the
    config's own ``data.source`` instead of using it as it is.
    """

    def __init__(self, num_train: int = EPOCH_EXAMPLES, shape: tuple[int, ...] = (1, 28, 28),
                 num_classes: int = 10) -> None:
        self.num_train, self.shape, self.num_classes = num_train, shape, num_classes

    def load(self) -> SourceData:
        generator = torch.Generator().manual_seed(0)
        inputs = torch.rand(self.num_train, *self.shape, generator=generator)
        labels = torch.randint(0, self.num_classes, (self.num_train,), generator=generator)
        test = ArrayDataset(inputs[:1000], labels[:1000])
        return SourceData(ArrayDataset(inputs, labels), test, tuple(str(k) for k in range(self.num_classes)))


def page_faults() -> int | None:
    """Minor page faults of this process so far (None where the OS does not report them)."""
    try:
        import resource
    except ImportError:  # not a Unix system
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class StepTimer(pl.Callback):
    """Wall time of training steps after ``warmup`` steps; FLOPs of one step counted by FlopCounterMode."""

    def __init__(self, warmup: int, profile: bool = False, profile_by: str = "total") -> None:
        self.warmup = warmup
        self.profile_by = profile_by
        self.profiler: torch.profiler.profile | None = None
        if profile:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
        self.started = 0.0
        self.timed_steps = 0
        self.seconds = 0.0
        self.flops_per_step = 0
        self.batch_size = 0
        self.faults_at_start: int | None = None
        self.faults: int | None = None  # page faults during the timed steps
        self._counter: FlopCounterMode | None = None

    def _sync(self, module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.batch_size = int(batch[2].shape[0])
        if batch_idx == 1:  # count one step's FLOPs, outside the timed window
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()
        if batch_idx == self.warmup:
            self._sync(module)
            self.faults_at_start = page_faults()
            self.started = time.perf_counter()
            if self.profiler is not None:
                self.profiler.__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops_per_step = self._counter.get_total_flops()
            self._counter = None
        if batch_idx >= self.warmup:
            self.timed_steps += 1

    def on_train_epoch_end(self, trainer, module) -> None:
        self._sync(module)
        self.seconds = time.perf_counter() - self.started
        faults = page_faults()
        if faults is not None and self.faults_at_start is not None:
            self.faults = faults - self.faults_at_start
        self.device = module.device
        if self.profiler is not None:
            self.profiler.__exit__(None, None, None)
            device = "cuda" if module.device.type == "cuda" else "cpu"
            sort = f"{device}_time_total" if self.profile_by == "total" else f"self_{device}_time_total"
            print(self.profiler.key_averages().table(sort_by=sort, row_limit=30))


def matmul_flop_rate(device: torch.device, size: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of a square fp32 matmul on this process's threads (the reference for the ratio)."""
    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    for _ in range(3):
        a @ b
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
        if device.type == "cuda" and count % 50:
            continue
        sync()
    sync()
    return 2 * size**3 * count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true",
                        help="Lightning precision: 32-true (the recipes' default) or bf16-mixed, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    parser.add_argument("--step-capture", choices=("auto", "on", "off"), default=None,
                        help="model.step_capture: the training step as a CUDA graph replay (default: the config's)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of the timed steps")
    parser.add_argument("--profile-by", choices=("total", "self"), default="total",
                        help="sort the profile by time including callees (total) or by each op's own time (self)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides as for ssgan-train, e.g. model.ema_decay=null")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if training_device_type(args.accelerator) == "cpu":
        keep_freed_memory()  # as CPU training does: glibc keeps each step's freed memory for the next
    cfg = compose([
        "data.num_labeled=100", f"data.batch_size={args.batch_size}", "~callbacks", "~logger",
        f"trainer.accelerator={args.accelerator}", f"trainer.precision={args.precision}", "trainer.devices=1",
        "trainer.max_epochs=1", f"trainer.limit_train_batches={args.warmup + args.steps}",
        "trainer.limit_val_batches=0", "++trainer.enable_checkpointing=false", "trainer.enable_progress_bar=false",
        *([f"model.step_capture={args.step_capture}"] if args.step_capture else []),
        *args.overrides,
    ])
    try:
        check_config(cfg)  # e.g. --step-capture on without a GPU: one line, before the data is built
    except SSGANError as error:
        parser.error(str(error))
    pl.seed_everything(0, verbose=False)
    datamodule = build_datamodule(cfg, source=RandomImages())
    model = build_model(cfg, datamodule)
    timer = StepTimer(args.warmup, args.profile, args.profile_by)
    trainer = build_trainer(cfg, extra_callbacks=[timer])
    trainer.fit(model, datamodule=datamodule)

    step_seconds = timer.seconds / timer.timed_steps
    samples_per_second = timer.batch_size / step_seconds
    achieved = timer.flops_per_step / step_seconds
    reference = matmul_flop_rate(timer.device)  # the model is back on the CPU after fit
    figures = {
        "device": device_name(timer.device),
        "precision": args.precision,
        "step_capture": "on" if getattr(model, "capture_active", False) else "off",
        "batch_size": timer.batch_size,
        "timed_steps": timer.timed_steps,
        "step_ms": 1000 * step_seconds,
        "samples_per_second": samples_per_second,
        "seconds_per_60k_epoch": EPOCH_EXAMPLES / samples_per_second,
        "gflop_per_step": timer.flops_per_step / 1e9,
        "achieved_gflops": achieved / 1e9,
        "matmul_gflops": reference / 1e9,
        "fraction_of_matmul": achieved / reference,
        # memory the step keeps handing back to the OS and faulting in again (see ssgan/runtime/allocator.py)
        "page_faults_per_step": None if timer.faults is None else timer.faults / timer.timed_steps,
    }
    for key, value in figures.items():
        print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
