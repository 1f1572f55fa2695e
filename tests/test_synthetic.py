"""data=synthetic is learned gradually and never perfectly, so the demo's curves show a net learning."""

import pytest

from resnet_train.config import (
    Config,
    DataConfig,
    DatasetName,
    DeviceKind,
    ModelConfig,
    SchedConfig,
    TrainerConfig,
)
from resnet_train.engine import logger
from resnet_train.engine.run import train

CHANCE = 0.9  # 10 classes


@pytest.mark.slow
def test_a_small_net_learns_synthetic_data_gradually_and_not_to_zero(tmp_path, monkeypatch):
    config = Config(
        model=ModelConfig(depth=8),
        data=DataConfig(name=DatasetName.synthetic, num_classes=10, image_size=16, train_size=2048,
                        test_size=512),
        sched=SchedConfig(milestones=[150]),
        trainer=TrainerConfig(batch_size=64, max_iters=200, eval_every=50, log_every=50,
                              device=DeviceKind.cpu, progress=False),
    )  # fmt: skip
    test_errors = []
    eval_point = logger.RunLogger.eval_point

    def record(self, iteration, split, loss, error, top5_error=None):
        test_errors.append(error)
        eval_point(self, iteration, split, loss, error, top5_error)

    monkeypatch.setattr(logger.RunLogger, "eval_point", record)
    final = train(config, tmp_path).test_error
    assert len(test_errors) == 4 and final == test_errors[-1]
    assert test_errors[0] > final + 0.1  # still learning after the first evaluation
    assert 0.05 < final < CHANCE - 0.3  # well below chance; above the 9% of relabelled test images
