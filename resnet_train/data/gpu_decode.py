"""data.decode=gpu: the workers read file bytes only and nvJPEG decodes the whole batch on the GPU."""

from __future__ import annotations

import torch
from torchvision.io import ImageReadMode, decode_jpeg

from ..errors import UserError
from .files import decode_rgb


def decode_on_gpu(datas: list[torch.Tensor | None], device: torch.device) -> list[tuple]:
    """Decode a batch of file bytes with nvJPEG in one call; [(image on `device` or None, reason)].

    A batch holding a file nvJPEG refuses (ImageNet has a PNG and CMYK JPEGs among its .JPEG files) or a
    corrupt one is decoded file by file, falling back to the CPU decoder for the refused ones.
    """
    if all(data is not None and data.numel() for data in datas):
        try:
            images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
            return [(image, "") for image in images]
        except RuntimeError:
            pass
    results = []
    for data in datas:
        try:
            results.append((decode_jpeg(data, mode=ImageReadMode.RGB, device=device), ""))
        except (RuntimeError, TypeError, ValueError):
            image, reason = decode_rgb(data)
            results.append((None if image is None else image.to(device), reason))
    return results


def check_gpu_decode(device: torch.device) -> None:
    if device.type != "cuda" or not torch.cuda.is_available():
        raise UserError(
            f"data.decode=gpu decodes JPEGs with nvJPEG on a CUDA device, but training runs on {device}"
            f"{'' if torch.cuda.is_available() else ' (no CUDA device is available)'}; use data.decode=cpu"
        )
