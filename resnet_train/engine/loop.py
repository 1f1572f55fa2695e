"""The training loop: iterations, logging points, evaluation, checkpoints, pre-emption and divergence
(the signals themselves: signals.py).

The step itself never waits for the GPU: loss and error counts accumulate in device tensors and are read
only at logging points, and the lr is written into the optimizer as a Python float.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..config import NanPolicy
from ..errors import UserError
from . import distributed
from .checkpoint import FORMAT_VERSION, rng_state, save_checkpoint, set_rng_state
from .evaluate import evaluate
from .logger import RunLogger
from .signals import Preempted, SignalFlag

if TYPE_CHECKING:
    from .run import Built, Runtime

log = logging.getLogger("resnet_train")


class EmptyEpoch(UserError):  # an epoch yielded no batch: the loop would otherwise spin forever
    pass


class CheckpointNotWritten(UserError):  # raised on the other ranks when rank 0 could not write a checkpoint
    pass


class Diverged(UserError):
    pass


# A cross-entropy beyond this has diverged: a uniform guess over the classes costs ln(classes), under 7 for
# ImageNet's 1,000; a loss of 1e4 means logits 1e4 apart on the wrong class.
MAX_LOSS = 1e4


@dataclass
class LoopState:
    """Everything besides the weights, optimizer and schedule that decides the rest of a run."""

    iteration: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_val_error: float | None = None
    skipped_steps: int = 0
    train_time_s: float = 0.0
    train_images: int = 0
    wall_time_s: float = 0.0

    @property
    def images_per_s(self) -> float | None:
        """All training images over all training time (evaluation and checkpoints excluded), rounded once
        to the decimal metrics.json keeps, so the bar, the log lines and metrics.json show one figure."""
        return round(self.train_images / self.train_time_s, 1) if self.train_time_s > 0 else None


@dataclass(kw_only=True)
class LoopSettings:
    """When the loop logs, evaluates and saves, and how it steps; keyword-only, so no two can be swapped."""

    max_iters: int
    eval_every: int
    log_every: int
    checkpoint_every: int
    nan_policy: NanPolicy = NanPolicy.stop
    checkpoint_dir: Path
    extra_state: dict = field(default_factory=dict)  # identity and config, stored in every checkpoint


class Trainer:
    """Trains `built` (engine/run.py `build`) on the process `rt`: logs through `logger`, evaluates and
    saves as `settings` say."""

    def __init__(self, built: Built, logger: RunLogger, settings: LoopSettings, rt: Runtime):
        self.model, self.raw_model = built.model, built.raw_model  # raw_model: without DDP/compile wrappers
        self.optimizer, self.schedule = built.optimizer, built.schedule
        self.train_batches, self.eval_sets = built.data.train, built.data.evals
        self.logger, self.settings, self.checkpoint_dir = logger, settings, settings.checkpoint_dir
        self.device, self.world, self.amp_dtype = rt.device, rt.world, rt.amp_dtype
        self.state = LoopState()
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype is torch.float16)
        self.lr: float | None = None  # the lr of the latest step
        self.saved_iteration: int | None = None  # of the latest checkpoint written or resumed from
        self.last_metrics: dict = {}
        # Device meters of the current logging window, zeroed in place.
        self.loss_sum = torch.zeros((), device=rt.device)
        self.wrong_sum = torch.zeros((), device=rt.device, dtype=torch.int64)
        self.window_steps = torch.zeros((), device=rt.device, dtype=torch.int64)
        self.first_bad = torch.zeros((), device=rt.device, dtype=torch.int64)
        self._reset_meter()

    # ---- state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "trainer": asdict(self.state),
            "metrics": dict(self.last_metrics),
            "rng": rng_state(),
            **self.settings.extra_state,
        }

    def load_state_dict(self, checkpoint: dict) -> None:
        self.raw_model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        # A checkpoint also carries the implementation flags of the machine that wrote it (foreach on a CPU,
        # fused on a GPU); this machine's choice wins.
        flags = {f: self.optimizer.defaults[f] for f in ("foreach", "fused") if f in self.optimizer.defaults}
        for group in self.optimizer.param_groups:
            group.update(flags)
        self.schedule.load_state_dict(checkpoint["schedule"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = LoopState(**checkpoint["trainer"])
        self.last_metrics = dict(checkpoint.get("metrics", {}))
        set_rng_state(checkpoint["rng"])
        self._restore_window(checkpoint.get("window"))
        self.saved_iteration = self.state.iteration

    def _update_wall_time(self) -> None:
        now = time.perf_counter()
        self.state.wall_time_s, self._wall_mark = self.state.wall_time_s + now - self._wall_mark, now

    def save(self) -> None:
        self._update_wall_time()
        window = self._window_state()  # a collective: every rank takes part before any can stop below
        self._check_finite()  # (a skipped step never marks one)
        # The weights and BN's running statistics: a loss can stay finite while running_var overflows.
        tensors = [t for t in self.raw_model.state_dict().values() if t.is_floating_point()]
        if not torch.isfinite(torch.stack([t.detach().float().abs().sum() for t in tensors]).sum()):
            raise Diverged(
                f"the weights or BN statistics became non-finite by iteration {self.state.iteration}; "
                f"stopped without overwriting the last checkpoint (lower optim.lr)"
            )
        failure = None
        if self.world.is_main:
            try:
                path = save_checkpoint(self.checkpoint_dir, {**self.state_dict(), "window": window})
                log.info("checkpoint %s at iteration %d", path, self.state.iteration)
            except Exception as error:  # raised below, once every rank knows
                failure = error
        # A collective in place of a barrier: no rank leaves (or exits on a signal) before the checkpoint is
        # on disk, and if rank 0 could not write it every rank stops here, not at the process-group timeout.
        if distributed.any_rank(failure is not None, self.device):
            if failure is not None:
                raise failure
            iteration = self.state.iteration
            raise CheckpointNotWritten(f"rank 0 could not write the checkpoint at iteration {iteration}")
        self.saved_iteration = self.state.iteration

    # ---- the step ----------------------------------------------------------------------------------------
    def _reset_meter(self) -> None:  # a new logging window
        for meter in (self.loss_sum, self.wrong_sum, self.window_steps):
            meter.zero_()
        self.first_bad.fill_(-1)  # the window's first step (1, 2, ...) with a non-finite loss
        self.window_start, self.seen, self.meter_start = self.state.iteration, 0, time.perf_counter()
        self.resumed_window_s = 0.0  # training time of the window before the checkpoint it resumed from

    def _window_totals(self) -> list[float]:
        """The logging window so far, summed over ranks: [loss sum, wrong count, images]."""
        local = [self.loss_sum.double(), self.wrong_sum.double()]
        seen = torch.tensor(float(self.seen), device=self.device, dtype=torch.float64)
        return distributed.all_reduce_sum(torch.stack([*local, seen])).tolist()

    def _window_state(self) -> dict:
        """The unfinished logging window, stored in a checkpoint: a run resumed between two logging points
        then reports the same first point as the uninterrupted run, not an average of the steps since."""
        loss_sum, wrong, seen = self._window_totals()
        return {
            "start": self.window_start, "end": self.state.iteration, "steps": int(self.window_steps),
            "loss_sum": loss_sum, "wrong": wrong, "seen": int(seen),
            "time_s": time.perf_counter() - self.meter_start,
        }  # fmt: skip

    def _restore_window(self, window: dict | None) -> None:
        self._reset_meter()
        if not window or window["end"] != self.state.iteration:
            return  # no window stored (a state dict taken outside a save): the window starts here
        self.window_start, self.resumed_window_s = window["start"], window["time_s"]
        self.window_steps.fill_(window["steps"])
        if self.world.is_main:  # the sums are over all ranks: one rank carries them
            self.loss_sum.fill_(window["loss_sum"])
            self.wrong_sum.fill_(int(window["wrong"]))
            self.seen = window["seen"]

    def step(self, images: torch.Tensor, labels: torch.Tensor, lr: float) -> None:
        """Forward, backward and update at `lr`, and the meters (a skipped step counts no images). Without
        trainer.nan_policy=skip nothing here waits for the device."""
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        amp = self.amp_dtype
        with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels)
        loss_value = loss.detach().float()
        diverged = ~(loss_value <= MAX_LOSS)  # NaN and inf too
        if self.settings.nan_policy is NanPolicy.skip and diverged:
            self.state.skipped_steps += 1
            log.warning("loss %g at iteration %d: step skipped", loss_value, self.state.iteration + 1)
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.window_steps += 1
        bad = diverged & (self.first_bad < 0)
        self.first_bad.copy_(torch.where(bad, self.window_steps, self.first_bad))
        self.loss_sum += loss_value * len(labels)
        self.wrong_sum += (logits.argmax(dim=1) != labels).sum()
        self.seen += len(labels)

    def _check_finite(self) -> None:
        first_bad = int(self.first_bad)
        if first_bad >= 0:
            raise Diverged(
                f"the loss became non-finite or beyond {MAX_LOSS:g} at iteration "
                f"{self.window_start + first_bad}; stopped without overwriting the last checkpoint (lower "
                f"optim.lr, or set trainer.nan_policy=skip)"
            )

    # ---- the loop ----------------------------------------------------------------------------------------
    def fit(self) -> dict:
        self._wall_mark = time.perf_counter()
        self.meter_start = time.perf_counter() - self.resumed_window_s
        try:
            with distributed.peers_answering():  # also DDP's all-reduce, which runs in the backward
                self._iterate()
        except distributed.LostContact as lost:  # a peer died: one line, with where this run can resume
            raise lost.at(self.state.iteration, self.saved_iteration) from None
        self._update_wall_time()
        return self.last_metrics

    def _iterate(self) -> None:
        s, st = self.settings, self.state
        with SignalFlag() as signals:
            while st.iteration < s.max_iters:
                fresh_epoch, batches = st.batch_in_epoch == 0, 0
                for images, labels in self.train_batches.epoch(st.epoch, st.batch_in_epoch):
                    batches += 1
                    self.step(images, labels, self.schedule.lr(st.iteration))
                    st.iteration += 1
                    st.batch_in_epoch += 1
                    self.logger.advance()
                    if self._after_step(signals):
                        break
                else:
                    if fresh_epoch and not batches:  # (a resumed epoch may legitimately have none left)
                        raise EmptyEpoch(
                            f"epoch {st.epoch} yielded no training batch (is the training set smaller than "
                            f"one batch per process?)"
                        )
                    st.epoch, st.batch_in_epoch = st.epoch + 1, 0

    def _after_step(self, signals: SignalFlag) -> bool:
        """Logging, evaluation, checkpoints and pre-emption at the end of a step; True to stop."""
        s, st = self.settings, self.state
        final = st.iteration >= s.max_iters
        at_log = final or st.iteration % s.log_every == 0
        if at_log:
            self._log_train_point()
        if final or st.iteration % s.eval_every == 0:
            self._evaluate_all()
        stop = signals.received() is not None
        if self.world.distributed:
            # Ranks agree at logging points only, to keep a collective out of every step.
            stop = at_log and distributed.any_rank(stop, self.device)
        if final or st.iteration % s.checkpoint_every == 0 or stop:
            self.save()
        if stop and not final:
            raise Preempted(signals.signum or signal.SIGTERM, st.iteration)
        return final

    def _log_train_point(self) -> None:
        st = self.state
        loss_sum, wrong, seen = self._window_totals()
        self._check_finite()
        elapsed = time.perf_counter() - self.meter_start
        if seen:
            train_error, train_loss = wrong / seen, loss_sum / seen
            st.train_time_s += elapsed
            st.train_images += int(seen)
            self.logger.train_point(st.iteration, train_loss, train_error, self.lr, st.images_per_s or 0.0)
            self.schedule.observe_train_error(train_error)
            self.last_metrics.update(  # train_error_images: the window the error is over
                train_error=train_error, train_loss=train_loss, train_error_images=int(seen)
            )
        self._reset_meter()

    def _evaluate_all(self) -> None:
        st = self.state
        improved = False
        for split, batches in self.eval_sets.items():
            result = evaluate(self.raw_model, batches, self.device, self.amp_dtype)
            error = result.error
            self.logger.eval_point(st.iteration, split, result.loss, error, result.top5_error)
            self.last_metrics.update({f"{split}_error": error, f"{split}_loss": result.loss,
                                      f"{split}_top5_error": result.top5_error,
                                      f"{split}_error_images": result.images})  # fmt: skip
            # a schedule that follows the evaluations watches the held-out val error, else the test split's
            if split == ("val" if "val" in self.eval_sets else "test"):
                self.schedule.observe_val_error(error)
            if split == "val" and (st.best_val_error is None or error < st.best_val_error):
                st.best_val_error, improved = error, True
        if improved and self.world.is_main:  # best.pt: the weights with the lowest val error so far
            save_checkpoint(self.checkpoint_dir, self.state_dict(), name="best", previous=None)
        self.meter_start = time.perf_counter()  # evaluation time is not training time
