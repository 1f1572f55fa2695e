"""Collation of the streamed backend's items into batches: decoded images, or raw bytes for GPU decoding."""

from __future__ import annotations

import torch


def collate(items: list) -> tuple:
    """Stack the good samples (a list when views differ in size); the failures go along by name."""
    good = [item for item in items if item[0] is not None]
    failures = [item[3] for item in items if item[0] is None]
    labels = torch.tensor([item[1] for item in good], dtype=torch.int64)
    images = [item[0] for item in good]
    if images and isinstance(images[0], torch.Tensor):
        images = torch.stack(images)
    alphas = torch.stack([item[2] for item in good]) if good and good[0][2] is not None else None
    return images, labels, alphas, failures


def collate_bytes(items: list) -> tuple:
    """The batch's file bytes as one tensor and their lengths (-1: unreadable). One tensor per batch, not one
    per file: each tensor a worker returns costs a shared-memory file descriptor."""
    datas, labels, seeds, paths = zip(*items)
    lengths = torch.tensor([-1 if d is None else d.numel() for d in datas], dtype=torch.int64)
    joined = torch.cat([d for d in datas if d is not None] or [torch.empty(0, dtype=torch.uint8)])
    return (joined, lengths), torch.tensor(labels, dtype=torch.int64), list(seeds), list(paths)


def split_bytes(joined: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor | None]:
    parts = iter(torch.split(joined, [n for n in lengths.tolist() if n >= 0]))
    return [None if n < 0 else next(parts) for n in lengths.tolist()]
