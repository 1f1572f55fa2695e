"""Process-group setup for DistributedDataParallel. Ranks are values (a `World`), never globals; they come
from our own spawn (`trainer.devices=N`, engine/launch.py), torchrun's variables, or SLURM's (a task per
GPU, MASTER_ADDR from the first host of the job's node list).
"""

from __future__ import annotations

import datetime
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()


def slurm_hostnames() -> list[str]:
    """The hosts of this SLURM job ('gpu[003-005,9]' -> gpu003, ...), as submitit expands them."""
    try:
        from submitit.slurm.slurm import SlurmJobEnvironment
    except ImportError:
        raise UserError(
            "a SLURM job without MASTER_ADDR needs submitit to read its node list: "
            "pip install 'resnet-train[slurm]' (or export MASTER_ADDR)"
        ) from None
    return SlurmJobEnvironment().hostnames


def world_from_env(environ: dict | None = None) -> World | None:
    """The World of torchrun's or SLURM's variables, or None for a single process (a one-task SLURM
    allocation, an interactive shell, is one: it may still spawn its own workers)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return World(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return None


def export_slurm_rendezvous() -> None:
    """Set MASTER_ADDR/MASTER_PORT for a SLURM job from its first host and job id, unless already set."""
    if "SLURM_JOB_NODELIST" in os.environ:
        if "MASTER_ADDR" not in os.environ:
            os.environ["MASTER_ADDR"] = slurm_hostnames()[0]
        os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))


class LostContact(UserError):
    """Another rank stopped answering in a collective (it died): one line rather than a traceback."""

    exit_code = 1

    def __init__(self, rank: int, reason: str, where: str = ""):
        super().__init__(f"rank {rank}: lost contact with another rank ({reason}){where}; stopping")
        self.rank, self.reason = rank, reason

    def at(self, iteration: int, checkpoint_iteration: int | None) -> LostContact:  # placed in the loop
        saved = "no checkpoint yet" if checkpoint_iteration is None else (
            f"the last checkpoint is iteration {checkpoint_iteration}")  # fmt: skip
        return LostContact(self.rank, self.reason, f" at iteration {iteration}; {saved}")


# What gloo's TCP transport raises (as a RuntimeError) when the other end of a connection has gone.
_PEER_GONE = re.compile(r"Connection (?:closed|reset) by peer|Broken pipe")


@contextmanager
def peers_answering() -> Iterator[None]:
    """Around collectives (DDP's too): a peer that went away becomes `LostContact`."""
    try:
        yield
    except RuntimeError as error:
        gone = _PEER_GONE.search(str(error))
        if gone is None or not dist.is_initialized():
            raise
        raise LostContact(dist.get_rank(), f"{dist.get_backend()}: {gone[0]}") from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_process_group(world: World, device: torch.device, timeout_s: float = 300.0) -> None:
    """Join the process group: NCCL on GPUs, gloo on CPU; `timeout_s` bounds a wait for a dead peer."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        **({"device_id": device} if device.type == "cuda" else {}),
    )  # fmt: skip


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        with peers_answering():
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any rank."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=device)
    with peers_answering():
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
