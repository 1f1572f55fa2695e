"""A dataset of one's own, from a module outside the package (tests/mylab), chosen on the command line: it
trains a tiny net, its identity guards a resume, and its facts are checked like the package's."""

import pytest

from resnet_train.errors import UserError

OWN = ["data=cifar10", "data.name=mylab.datasets.stripes", "data.num_classes=2", "data.image_size=16"]
TINY_TRAINER = ["model=resnet20", "model.depth=8", "trainer.batch_size=32", "trainer.device=cpu",
                "trainer.progress=false", "trainer.max_iters=8", "trainer.eval_every=8"]  # fmt: skip


def test_a_dataset_of_ones_own_trains_a_net(train_job):
    job = train_job(*OWN, *TINY_TRAINER, tiny=False)
    assert job.metrics["dataset"] == "mylab.datasets.stripes" and job.metrics["test_error_images"] == 64
    assert "2 classes, 128 training and 64 test images" in job.log


def test_its_fixed_facts_are_checked(train_job):
    with pytest.raises(UserError, match="data.image_size=32 has no effect on data=mylab.datasets.stripes"):
        train_job(*OWN[:-1], *TINY_TRAINER, tiny=False)


def test_a_name_that_is_no_dataset_is_refused_in_one_line(train_job):
    with pytest.raises(UserError, match="data.name=svhn is none of cifar10, cifar100"):
        train_job("data=cifar10", "data.name=svhn", *TINY_TRAINER, tiny=False)
