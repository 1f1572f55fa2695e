"""Settings that only the machine can refuse, checked before the launcher starts anything: as many workers
(`trainer.devices`) as this machine has cores or GPUs, and a `trainer.resume` that names something."""

from __future__ import annotations

from ..config import Config, DeviceKind
from ..errors import UserError


def check_worker_count(config: Config, cores: int, gpus: int) -> None:
    """Refuse more local workers than the machine can run: on a CPU, one per core (each takes a share of the
    cores; more only multiply the interpreters and the memory); on GPUs, one per visible GPU."""
    devices, kind = config.trainer.devices, config.trainer.device
    if devices <= 1:
        return
    on_cpu = kind is DeviceKind.cpu or (kind is DeviceKind.auto and gpus == 0)
    if on_cpu and devices > cores:
        raise UserError(
            f"trainer.devices={devices} CPU workers, but this machine has {cores} cores; use "
            f"trainer.devices={cores} or fewer"
        )
    if not on_cpu and devices > gpus:
        raise UserError(f"trainer.devices={devices}, but {gpus} GPUs are visible; use trainer.devices={gpus}")


def check_resume(resume: str) -> None:
    """`trainer.resume` is auto, never or a checkpoint file; an empty value is none of them."""
    if not resume.strip():
        raise UserError(
            "trainer.resume is empty: give auto (the default), never, or a checkpoint file "
            "(trainer.resume=RUN/checkpoints/last.pt)"
        )
