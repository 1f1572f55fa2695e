"""The whole training step as one CUDA graph (`trainer.cuda_graph=true`).

A CIFAR ResNet's step is hundreds of small kernels; launched one by one from Python, the GPU waits on the
host. Captured once and replayed, the forward, backward, optimizer update and device-side meters of a step
cost one launch. A replay re-runs the recorded kernels on the recorded addresses, so everything a step reads
must stay where it was at capture time:

- each batch is copied into static input buffers. The batchers drop an epoch's last partial batch, so every
  batch has the full size; a smaller one (the streamed loader's, after skipping an unreadable image) runs
  eagerly, outside the graph, with a warning;
- the learning rate is a one-element device tensor shared by all param groups; `set_lr` writes into it, so
  schedule changes (milestones, warm-up, cosine) need no re-capture. The fused SGD/AdamW kernels read it on
  the device;
- the meters are updated in place (`Trainer._reset_meter` zeroes them, it does not replace them).

Capture needs a step without host synchronisation, so it excludes `trainer.nan_policy=skip`, fp16 loss
scaling, and DDP (`Runtime.resolve` refuses those combinations). The first `warmup` steps run eagerly on a
side stream, as capture requires: they allocate the optimizer state, compile (with torch.compile) and let
cudnn choose its kernels. They are real training steps on real batches. The capture tolerates CUDA calls
from other threads (the streamed loader's pin-memory thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger("resnet_train")

WARMUP_STEPS = 3


class StepGraph:
    def __init__(
        self,
        step: Callable[[torch.Tensor, torch.Tensor], object],
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        batch_size: int,
        warmup: int = WARMUP_STEPS,
    ):
        if device.type != "cuda":
            raise ValueError("a CUDA graph needs a CUDA device")
        if warmup < 1:  # the optimizer state must exist before the capture, or it is re-created every replay
            raise ValueError("a CUDA graph needs at least one eager warm-up step")
        self.step, self.optimizer, self.device = step, optimizer, device
        self.batch_size, self.warmup = batch_size, warmup
        self.lr = torch.zeros((), device=device, dtype=torch.float32)  # what the fused kernels read
        self._lr_value: float | None = None
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmup_steps = 0
        self.odd_batches = 0  # batches of another size, run eagerly

    def set_lr(self, lr: float) -> None:
        """Point every param group at the lr tensor and write `lr` into it (one small copy, when it changed).

        Re-pointed on every call because `optimizer.load_state_dict` puts plain numbers back into the groups.
        """
        for group in self.optimizer.param_groups:
            if group["lr"] is not self.lr:
                group["lr"] = self.lr
        if lr != self._lr_value:
            self.lr.fill_(lr)
            self._lr_value = lr

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if len(labels) != self.batch_size:
            self.odd_batches += 1
            if self.odd_batches == 1:
                log.warning(
                    "a batch of %d images (not %d) ran outside the CUDA graph (warned once; the run's log "
                    "counts them at the end)", len(labels), self.batch_size,
                )  # fmt: skip
            self._eager_step(images, labels)
            return
        if self.static is None:
            self.static = (torch.empty_like(images), torch.empty_like(labels))
        static_images, static_labels = self.static
        if images.shape != static_images.shape:
            raise ValueError(
                f"the CUDA graph is for batches of {tuple(static_images.shape)}, got {tuple(images.shape)}"
            )
        static_images.copy_(images)
        static_labels.copy_(labels)
        if self.graph is not None:
            self.graph.replay()
        elif self.warmup_steps < self.warmup:
            self._eager_step(static_images, static_labels)
            self.warmup_steps += 1
        else:
            self._capture()
            self.graph.replay()  # capture records the step without running it

    def _eager_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """The step without the graph, on a side stream, as warm-up before a capture must run.

        After the capture this is still safe: it updates the same weights and optimizer state in place, and
        its gradients come from the ordinary memory pool, not the graph's.
        """
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            self.step(images, labels)
        main.wait_stream(side)

    def _capture(self) -> None:
        # Gradients allocated inside the capture come from the graph's memory pool and are rewritten
        # (not accumulated) by every replay.
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.step(*self.static)
        self.graph = graph
