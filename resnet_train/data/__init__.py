"""Datasets: two backends, in memory and streamed from files, looked up once from a data config by
build.build_data.

Where a batch comes from:
    build.py        the entry point: data config -> RunData (training and evaluation batches, classes, stats);
                    the data root resolved, the backend looked up, the channels_last layout applied
    interface.py    what the loop gets (RunData: training batches, evaluation sets) and the channels_last view
    split.py        a dataset's splits and the validation hold-out, each rank's share of a global batch and
                    of an evaluation set
    files.py        ImageFolder scanning, decoding (one helper, CPU or nvJPEG), the bad-image policy
    normalize.py    mean-image (or per-channel) normalisation on the device
    stats.py        the training set's input statistics (one float64 accumulator) and their cache
    augment.py      CIFAR's pad-crop-flip (Sec. 4.2); ImageNet's scale augmentation, test views, lighting
    memory.py       in-memory backend: readers.py decodes the set into uint8 tensors, batched on the device
    stream.py       streamed backend: training and evaluation batchers over DataLoader workers
    sampler.py, samples.py, collate.py   the streamed backend's parts
    identity.py     what identifies the data (checked on resume and evaluation)
"""

from .build import BACKENDS, EvalSet, build_data, build_eval_set
from .datasets import DATASETS, Dataset, data_problems, dataset
from .interface import RunData
from .normalize import Normalizer
from .readers import ImageSet, load_splits
from .split import Shard, Splits
from .stats import InputStats

__all__ = [
    "BACKENDS",
    "DATASETS",
    "Dataset",
    "EvalSet",
    "ImageSet",
    "InputStats",
    "Normalizer",
    "RunData",
    "Shard",
    "Splits",
    "build_data",
    "build_eval_set",
    "data_problems",
    "dataset",
    "load_splits",
]
