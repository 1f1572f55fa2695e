"""The whole training step as one CUDA graph (`trainer.cuda_graph=true`).

A CIFAR ResNet's step is hundreds of small kernels; launched one by one from Python, the GPU waits on the
host. Captured once and replayed, the forward, backward, optimizer update and device-side meters of a step
cost one launch. A replay re-runs the recorded kernels on the recorded addresses, so everything a step reads
must stay where it was at capture time:

- each batch is copied into static input buffers, so every batch must have the capture's shape (the
  batchers drop an epoch's last partial batch);
- the learning rate is a one-element device tensor shared by all param groups; `set_lr` writes into it, so
  schedule changes (milestones, warm-up, cosine) need no re-capture. The fused SGD/AdamW kernels read it on
  the device;
- the meters are updated in place (`Trainer._reset_meter` zeroes them, it does not replace them).

Capture needs a step without host synchronisation, so it excludes `trainer.nan_policy=skip`, fp16 loss
scaling, and DDP (`Runtime.resolve` refuses those combinations). The first `warmup` steps run eagerly on a
side stream, as capture requires: they allocate the optimizer state, compile (with torch.compile) and let
cudnn choose its kernels. They are real training steps on real batches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

WARMUP_STEPS = 3


class StepGraph:
    def __init__(
        self,
        step: Callable[[torch.Tensor, torch.Tensor], object],
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        warmup: int = WARMUP_STEPS,
    ):
        if device.type != "cuda":
            raise ValueError("a CUDA graph needs a CUDA device")
        self.step, self.optimizer, self.device, self.warmup = step, optimizer, device, warmup
        self.lr = torch.zeros((), device=device)
        self._lr_value: float | None = None
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_steps = 0

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
        if self.static is None:
            self.static = (torch.empty_like(images), torch.empty_like(labels))
        static_images, static_labels = self.static
        if images.shape != static_images.shape or labels.shape != static_labels.shape:
            raise ValueError(
                f"the CUDA graph was captured for batches of {tuple(static_images.shape)}, "
                f"got {tuple(images.shape)}"
            )
        static_images.copy_(images)
        static_labels.copy_(labels)
        if self.graph is not None:
            self.graph.replay()
        elif self.eager_steps < self.warmup:
            self._eager_step()
        else:
            self._capture()
            self.graph.replay()  # capture records the step without running it

    def _eager_step(self) -> None:
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            self.step(*self.static)
        main.wait_stream(side)
        self.eager_steps += 1

    def _capture(self) -> None:
        # Gradients allocated inside the capture come from the graph's memory pool and are rewritten
        # (not accumulated) by every replay.
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.step(*self.static)
        self.graph = graph
