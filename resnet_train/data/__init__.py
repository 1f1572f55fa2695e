"""Datasets: two backends, in memory (memory.py) and streamed from files (stream.py), looked up once from a
data config by build.build_data."""

from .build import BACKENDS, EvalSet, build_data, build_eval_set
from .datasets import DATASETS, Dataset, data_problems, dataset
from .interface import RunData
from .normalize import Normalizer
from .readers import ImageSet, load_splits
from .split import Shard, Splits
from .stats import InputStats

__all__ = [
    "BACKENDS", "DATASETS", "Dataset", "EvalSet", "ImageSet", "InputStats", "Normalizer", "RunData", "Shard",
    "Splits", "build_data", "build_eval_set", "data_problems", "dataset", "load_splits",
]  # fmt: skip
