"""Collation (data/collate.py): a GPU-decode batch travels from the workers as one byte tensor."""

from __future__ import annotations

import torch

from resnet_train.data.collate import collate_bytes, split_bytes


def test_gpu_decode_batches_travel_as_one_byte_tensor():
    # Workers send one tensor per batch (each tensor costs a shared-memory file descriptor).
    first, last = torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([9], dtype=torch.uint8)
    items = [
        (first, 0, 5, "a"),
        (None, 1, 6, "b"),
        (torch.empty(0, dtype=torch.uint8), 2, 7, "c"),
        (last, 1, 8, "d"),
    ]
    (joined, lengths), labels, seeds, paths = collate_bytes(items)
    assert joined.tolist() == [1, 2, 3, 9] and lengths.tolist() == [3, -1, 0, 1]
    parts = split_bytes(joined, lengths)
    assert (
        parts[0].tolist() == [1, 2, 3]
        and parts[1] is None
        and parts[2].numel() == 0
        and parts[3].tolist() == [9]
    )
    assert labels.tolist() == [0, 1, 2, 1] and seeds == [5, 6, 7, 8] and paths == ["a", "b", "c", "d"]
