"""A shortcut option and a block of one's own, from a module outside the package (tests/mylab), chosen on
the command line: each trains a tiny net, and the net is built from it."""

import pytest
from torch import nn

from resnet_train.engine.restore import restore
from resnet_train.errors import UserError
from resnet_train.models import build_model
from resnet_train.models.export import torchvision_mismatch


def test_a_shortcut_option_of_ones_own_trains_and_is_stored_with_the_run(train_job):
    job = train_job("model.shortcut=mylab.shortcuts.avg_pool_projection", "trainer.max_iters=4")
    net = restore(job.run_dir / "checkpoints" / "last.pt").model
    down = net.stages[1][0].shortcut
    assert isinstance(down.pool, nn.AvgPool2d) and down.conv.stride == (1, 1)
    assert isinstance(net.stages[0][0].shortcut, nn.Identity)
    assert 0 <= job.metrics["test_error"] <= 1


def test_a_block_of_ones_own_trains_in_every_stage(train_job):
    job = train_job("model.block=mylab.blocks.PreActBlock", "trainer.max_iters=4")
    net = restore(job.run_dir / "checkpoints" / "last.pt").model
    assert {type(block).__name__ for stage in net.stages for block in stage} == {"PreActBlock"}
    assert job.metrics["params"] > 0


def test_only_option_b_exports_to_torchvision_whatever_options_exist():
    net = build_model("imagenet", 18, True, 10, shortcut="mylab.shortcuts.avg_pool_projection")
    assert "option mylab.shortcuts.avg_pool_projection" in torchvision_mismatch(net)


def test_a_name_that_is_no_option_is_refused_in_one_line(train_job):
    with pytest.raises(UserError, match="model.shortcut=D is none of A, B, C"):
        train_job("model.shortcut=D")
    with pytest.raises(UserError, match="model.block=mylab.blocks.Missing names nothing"):
        train_job("model.block=mylab.blocks.Missing")
