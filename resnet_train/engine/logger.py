"""What a run shows and leaves behind: TensorBoard events, a progress bar, log lines and metrics.json.

Only the main rank writes; on other ranks a `RunLogger(enabled=False)` does nothing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("resnet_train")

# Stable TensorBoard tags; the plotting tools read these names. TensorBoard groups and orders its cards by the
# part before the "/", alphabetically: "error/" first puts every run's train, val and test error on top.
TRAIN_ERROR, TRAIN_LOSS, LR = "error/train", "loss/train", "lr"


def eval_tags(split: str) -> tuple[str, str]:
    return f"error/{split}", f"loss/{split}"


# The Custom Scalars tab: one chart with the train (dashed in the paper's Fig. 6) and test error of every run.
ERROR_LAYOUT = {"error": {"train and val/test error": ["Multiline", [r"^error/(train|val|test)$"]]}}


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool,
        start_iteration: int,
        max_iters: int,
        progress: bool,
        synthetic: bool,
    ):
        self.run_dir, self.enabled, self.synthetic = Path(run_dir), enabled, synthetic
        self.writer = self.bar = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        # Events go straight into the run directory, so TensorBoard's run list shows the run's own name.
        # purge_step drops points a killed run logged after its last checkpoint (on a fresh start, every
        # point of an attempt that left none), so a resumed curve has neither duplicates nor gaps.
        self.writer = SummaryWriter(str(self.run_dir), purge_step=start_iteration + 1)
        self.writer.add_custom_scalars(ERROR_LAYOUT)
        if progress:
            # disable=None: no bar when stderr is not a terminal (batch jobs, CI).
            self.bar = tqdm(
                total=max_iters, initial=start_iteration, disable=None, unit="it", dynamic_ncols=True
            )
        if synthetic:
            log.warning("data=synthetic: this run trains on generated images, not a real dataset")

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
                loss=f"{loss:.3f}", err=f"{error:.2%}", img_s=f"{images_per_s:,.0f}", refresh=False
            )

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

    def finish(self, metrics: dict, hparams: dict) -> None:
        """Write metrics.json and this run's row of the HPARAMS view (into its own event file, no sub-run).

        Only the session summaries are written, not an experiment summary: TensorBoard then builds the
        view from every run's row, puts the columns whose values differ between runs first, and takes each
        metric's value as the last point of the run's scalar curves (error/train, error/test, ...), so the
        final errors need no one-point scalars of their own."""
        if not self.enabled:
            return
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        _experiment, session_start, session_end = hparams_summary(hparams, {})
        for summary in (session_start, session_end):
            self.writer.file_writer.add_summary(summary)
        self.close()
        write_json(self.run_dir / "metrics.json", metrics)
        label = " (SYNTHETIC DATA)" if self.synthetic else ""
        log.info("done%s: %s", label, json.dumps(metrics))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
