"""Datasets: one pipeline with two backends (in memory, streamed from files) behind the Protocols of
interface.py, built from a data config by build.build_data.

Where a batch comes from:
    build.py        the entry point: data config -> RunData (training and evaluation batches, classes, stats)
    interface.py    the Protocols the loop programs against (TrainBatches, EvalBatches, Collectives), RunData
    split.py        validation hold-out, each rank's share of a global batch and of an evaluation set
    files.py        ImageFolder scanning, decoding, the bad-image policy
    normalize.py    mean-image (or per-channel) normalisation on the device
    stats.py        the training set's input statistics and their cache
    readers.py      in-memory backend: CIFAR archives, ImageFolder trees and synthetic sets into uint8 tensors
    memory.py       in-memory backend: batches gathered, cropped and flipped on the device
    stream.py       streamed backend: training and evaluation batchers over DataLoader workers
    sampler.py, samples.py, collate.py, augment.py   the streamed backend's parts
"""

from .build import EvalSet, build_data, build_eval_set
from .interface import SINGLE_PROCESS, Collectives, EvalBatches, RunData, SingleProcess, TrainBatches
from .normalize import Normalizer
from .readers import ImageSet, Splits, load_splits
from .split import Shard
from .stats import InputStats

__all__ = [
    "Collectives",
    "EvalBatches",
    "EvalSet",
    "ImageSet",
    "InputStats",
    "Normalizer",
    "RunData",
    "SINGLE_PROCESS",
    "Shard",
    "SingleProcess",
    "Splits",
    "TrainBatches",
    "build_data",
    "build_eval_set",
    "load_splits",
]
