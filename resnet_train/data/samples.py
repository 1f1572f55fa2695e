"""The streamed backend's datasets: one image read (decoded, augmented) per item, in DataLoader workers."""

from __future__ import annotations

import signal
from collections.abc import Callable

from torch.utils.data import DataLoader, Dataset

from ..engine.signals import PREEMPTION_SIGNALS
from .augment import augment_sample
from .files import ImageFiles, decode_rgb, read_bytes


class TrainSamples(Dataset):
    """One training image from (index, seed): decoded and augmented (decode=cpu), or its bytes only."""

    def __init__(self, files: ImageFiles, transform: Callable, lighting: float, decode: bool):
        self.files, self.transform, self.lighting, self.decode = files, transform, lighting, decode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        path, label = self.files.paths[index], self.files.labels[index]
        data = read_bytes(path)
        if not self.decode:
            return data, label, seed, path
        image, reason = decode_rgb(data)
        if image is None:
            return None, label, None, (path, reason)
        image, alpha = augment_sample(image, seed, self.transform, self.lighting)
        return image, label, alpha, None


class EvalSamples(Dataset):
    """One test image through `view` (centre crop, ten crops or the list of scales)."""

    def __init__(self, files: ImageFiles, view: Callable):
        self.files, self.view = files, view

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path, label = self.files.paths[index], self.files.labels[index]
        image, reason = decode_rgb(read_bytes(path))
        if image is None:
            return None, label, None, (path, reason)
        return self.view(image), label, None, None


def ignore_preemption_signals(worker_id: int) -> None:
    """A DataLoader worker's start: ignore the pre-emption signals. `kill -TERM -- -PGID` (timeout, systemd,
    SLURM's time limit) reaches the workers as well as the main process; a worker it killed would fail the
    step the main process is finishing before its checkpoint, and one that kept the main process's handler
    would log the signal again. The main process stops its workers itself when it ends."""
    for signum in PREEMPTION_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def make_loader(
    dataset: Dataset, workers: int, pin: bool, collate_fn: Callable, persistent: bool = False, **sampling
) -> DataLoader:
    """`persistent`: the workers stay alive across epochs (the training set's; evaluation sets start theirs
    at each evaluation). `pin`: uint8 batches are pinned, for an asynchronous copy to the GPU."""
    return DataLoader(
        dataset, num_workers=workers, pin_memory=pin, persistent_workers=persistent and workers > 0,
        prefetch_factor=4 if workers > 0 else None, collate_fn=collate_fn,
        worker_init_fn=ignore_preemption_signals, **sampling,
    )  # fmt: skip
