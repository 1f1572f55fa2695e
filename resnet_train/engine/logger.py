"""What a run shows and leaves behind: TensorBoard events, a progress bar (on a terminal; else a log line
per logging point with the lr, elapsed time and ETA), log lines and metrics.json. Only the main rank writes.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from ..config import model_name
from ..outputs import write_text

if TYPE_CHECKING:
    from ..config import Config
    from .run import Runtime
    from .summary import RunSummary

log = logging.getLogger("resnet_train")

# Stable TensorBoard tags; the plotting tools read these names. TensorBoard groups and orders its cards by the
# part before the "/", alphabetically: "error/" first puts every run's train, val and test error on top.
TRAIN_ERROR, TRAIN_LOSS, LR = "error/train", "loss/train", "lr"


def eval_tags(split: str) -> tuple[str, str]:
    return f"error/{split}", f"loss/{split}"


# The Custom Scalars tab: one chart with the train (dashed in the paper's Fig. 6) and test error of every run.
ERROR_LAYOUT = {"error": {"train and val/test error": ["Multiline", [r"^error/(train|val|test)$"]]}}


def wait_for_a_later_second(run_dir: Path) -> None:
    """Return once the clock has passed the second in the name of the run's newest events file: TensorBoard
    reads the files in name order (events.out.tfevents.<second>.<host>.<pid>), so a resumed run's file opened
    in the same second could sort first (a lower pid) and its points be dropped as orphans."""
    seconds = [int(p.name.split(".")[3]) for p in run_dir.glob("events.out.tfevents.*")
               if p.name.split(".")[3].isdigit()]  # fmt: skip
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


class RunLogger:
    def __init__(
        self, run_dir: Path, *, enabled: bool, start_iteration: int, max_iters: int, progress: bool,
        synthetic: bool,
    ):  # fmt: skip
        self.run_dir, self.enabled, self.synthetic = Path(run_dir), enabled, synthetic
        self.start_iteration, self.max_iters = start_iteration, max_iters
        self.started = time.perf_counter()
        self._writer = self.bar = None
        if not enabled:
            return
        if progress:
            # disable=None: no bar when stderr is not a terminal (batch jobs, CI).
            bar = tqdm(total=max_iters, initial=start_iteration, disable=None, unit="it", dynamic_ncols=True)
            self.bar = None if bar.disable else bar
        if synthetic:
            log.warning("data=synthetic: this run trains on generated images, not a real dataset")

    @property
    def writer(self):
        """The run's TensorBoard writer, opened at the first point it records (a complete run adds none)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # Events go straight into the run directory, so TensorBoard's run list shows the run's own name.
            # purge_step drops points a killed run logged after its last checkpoint (on a fresh start, every
            # point of an attempt that left none), so a resumed curve has neither duplicates nor gaps.
            wait_for_a_later_second(self.run_dir)
            self._writer = SummaryWriter(str(self.run_dir), purge_step=self.start_iteration + 1)
            self._writer.add_custom_scalars(ERROR_LAYOUT)
        return self._writer

    def advance(self, iterations: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(iterations)

    def train_point(self, iteration: int, loss: float, error: float, lr: float, images_per_s: float) -> None:
        if not self.enabled:
            return
        self.writer.add_scalar(TRAIN_LOSS, loss, iteration)
        self.writer.add_scalar(TRAIN_ERROR, error, iteration)
        self.writer.add_scalar(LR, lr, iteration)
        if self.bar is not None:
            self.bar.set_postfix(
                {"loss": f"{loss:.3f}", "train error": f"{error:.2%}", "images/s": rate(images_per_s)}
            )
            return
        elapsed = time.perf_counter() - self.started
        done = iteration - self.start_iteration
        eta = elapsed / done * (self.max_iters - iteration) if done else 0.0
        log.info(
            "iteration %d/%d | loss %.4f | train error %.2f%% | lr %.4g | %s images/s | elapsed %s | ETA %s",
            iteration, self.max_iters, loss, 100 * error, lr, rate(images_per_s), duration(elapsed),
            duration(eta),
        )  # fmt: skip

    def eval_point(
        self, iteration: int, split: str, loss: float, error: float, top5_error: float | None = None
    ) -> None:
        if not self.enabled:
            return
        error_tag, loss_tag = eval_tags(split)
        self.writer.add_scalar(error_tag, error, iteration)
        self.writer.add_scalar(loss_tag, loss, iteration)
        if top5_error is not None:
            self.writer.add_scalar(f"top5_error/{split}", top5_error, iteration)
        self.writer.flush()
        log.info("iteration %d: %s error %.2f%% loss %.4f", iteration, split, 100 * error, loss)

    def finish(self, summary: RunSummary) -> None:
        """Write metrics.json and this run's HPARAMS row (session summaries only: TensorBoard builds the view
        from every run's row and takes each metric as the last point of its scalar curve)."""
        if not self.enabled:
            return
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        _experiment, session_start, session_end = hparams_summary(summary.hparams(), {})
        for session in (session_start, session_end):
            self.writer.file_writer.add_summary(session)
        self.close()
        write_text(self.run_dir / "metrics.json", json.dumps(summary.metrics(), indent=2) + "\n")
        log_summary(summary, self.run_dir)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def log_loading(config: Config, rt: Runtime) -> None:  # the run's first line
    m, d = config.model, config.data
    log.info("%s in %s on %s: loading %s (%s) and building the net ...", model_name(m.residual, m.depth),
             rt.precision, rt.device, d.name, getattr(d, "root", "generated images"))  # fmt: skip
    if rt.emulated_bf16:
        log.warning("trainer.precision=bf16 on a CPU without native bf16 (AVX512_BF16 or AMX): emulated, "
                    "with bf16's rounding but about 5x slower than fp32")  # fmt: skip


def log_start(config: Config, rt: Runtime, params: int, synthetic: bool) -> None:  # what is about to train
    m, t = config.model, config.trainer
    log.info(
        "%s on %s%s: %s parameters, %d iterations, batch %d on %d process(es), %s, precision %s%s",
        model_name(m.residual, m.depth), config.data.name, " (SYNTHETIC)" if synthetic else "", f"{params:,}",
        t.max_iters, t.batch_size, rt.world.world_size, rt.device, rt.precision,
        f", compiled ({rt.compile_mode.torch_name})" if rt.compile else "",
    )  # fmt: skip


def log_summary(summary: RunSummary, run_dir: Path) -> None:  # what was trained, its errors, where to look
    label = " (SYNTHETIC DATA)" if summary.synthetic else ""
    speed = f", {rate(summary.images_per_s)} images/s" if summary.images_per_s else ""
    log.info(
        "done%s: %s on %s, %d iterations in %s%s", label, summary.model, summary.dataset, summary.iterations,
        duration(summary.wall_time_s), speed,
    )  # fmt: skip
    final = {"train": summary.train_error, "val": summary.val_error, "test": summary.test_error}
    errors = [f"{split} error {100 * error:.2f}%" for split, error in final.items() if error is not None]
    log.info("final %s", ", ".join(errors))
    where = shown_path(run_dir)
    log.info("run directory %s; view it with: tensorboard --logdir %s", where, where)


def rate(images_per_s: float) -> str:  # as metrics.json rounds it, without the decimal from 100 up
    return f"{images_per_s:,.1f}" if images_per_s < 100 else f"{images_per_s:,.0f}"


def duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def shown_path(path: Path) -> str:  # relative to the working directory when below it, else absolute
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
