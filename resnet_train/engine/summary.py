"""What a finished run reports: one value that metrics.json, the HPARAMS row of TensorBoard and the closing
log lines are all written from."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import torch

from ..config import Config
from ..models import model_name

if TYPE_CHECKING:
    from .loop import LoopState
    from .run import Runtime

# Settings that tell the runs of a sweep apart in the HPARAMS view; not results, so not in metrics.json.
_SETTING = {"setting": True}


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """A run's final numbers and what produced them."""

    model: str  # resnet20, plain56, ... (models.model_name)
    family: str
    depth: int
    shortcut: str | None  # None for a plain net
    dataset: str
    synthetic: bool
    iterations: int
    train_error: float | None
    train_loss: float | None
    test_error: float | None
    test_top5_error: float | None
    test_loss: float | None
    val_error: float | None
    best_val_error: float | None
    # How many images each final error is over: a single run's binomial noise floor (analysis/claims.py).
    train_error_images: int | None
    test_error_images: int | None
    val_error_images: int | None
    params: int
    seed: int
    batch_size: int
    world_size: int
    device: str
    precision: str
    compiled: bool
    skipped_steps: int
    wall_time_s: float
    images_per_s: float | None
    lr: float = field(metadata=_SETTING)
    schedule: str = field(metadata=_SETTING)
    max_iters: int = field(metadata=_SETTING)

    @classmethod
    def of(cls, config: Config, rt: Runtime, state: LoopState, last: dict, *, params: int,
           synthetic: bool) -> RunSummary:  # fmt: skip
        m, t = config.model, config.trainer
        return cls(
            model=model_name(m.residual, m.depth), family=m.family.value, depth=m.depth,
            shortcut=m.shortcut if m.residual else None, dataset=config.data.name,
            synthetic=synthetic, iterations=state.iteration,
            **{key: last.get(key) for key in _LOOP_METRICS},
            best_val_error=state.best_val_error, params=params, seed=t.seed, batch_size=t.batch_size,
            world_size=rt.world.world_size,
            device=torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
            precision=rt.precision, compiled=rt.compile,
            skipped_steps=state.skipped_steps, wall_time_s=round(state.wall_time_s, 3),
            images_per_s=state.images_per_s,
            lr=config.optim.lr, schedule=config.sched._target_.rpartition(".")[2], max_iters=t.max_iters,
        )  # fmt: skip

    def metrics(self) -> dict:  # metrics.json
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata}

    def hparams(self) -> dict:
        """TensorBoard's HPARAMS columns: strings for yes/no (the view shows a bool as 0.0/1.0)."""
        return {
            "model": self.model, "depth": self.depth, "residual": "no" if self.shortcut is None else "yes",
            "shortcut": self.shortcut or "none", "dataset": self.dataset, "lr": self.lr,
            "batch": self.batch_size, "schedule": self.schedule, "seed": self.seed,
            "iterations": self.max_iters, "precision": self.precision,
        }  # fmt: skip


# The final values the loop keeps (Trainer.last_metrics), taken over as they are.
_LOOP_METRICS = (
    "train_error", "train_loss", "test_error", "test_top5_error", "test_loss", "val_error",
    "train_error_images", "test_error_images", "val_error_images",
)  # fmt: skip
