"""The epoch sampler (data/sampler.py): sharding of each global batch, mid-epoch resume, seed and epoch."""

from __future__ import annotations

from resnet_train.data.sampler import EpochSampler


def test_sampler_shards_each_global_batch_resumes_mid_epoch_and_depends_on_seed_and_epoch():
    full = EpochSampler(40, 8, seed=3)
    ranks = [EpochSampler(40, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    batches = list(full)
    assert len(batches) == full.iters_per_epoch == 5
    for step, (a, b) in enumerate(zip(*ranks)):
        assert a + b == batches[step]
    assert sorted(i for batch in batches for i, _ in batch) == list(range(40))
    full.set_epoch(0, start=3)
    assert list(full) == batches[3:] and len(full) == 2  # skipped batches are never asked for
    full.set_epoch(1)
    assert list(full) != batches
    assert list(EpochSampler(40, 8, seed=4)) != batches
