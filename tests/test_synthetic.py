"""data=synthetic is learned gradually and never perfectly, so the demo's curves show a net learning."""

import pytest
from clitools import make_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resnet_train.config import DeviceKind, ModelConfig, SyntheticData, TrainerConfig
from resnet_train.engine.run import train
from resnet_train.engine.schedules import PaperCifarConfig

CHANCE = 0.9  # 10 classes


@pytest.mark.slow
def test_a_small_net_learns_synthetic_data_gradually_and_not_to_zero(tmp_path):
    config = make_config(
        model=ModelConfig(depth=8),
        data=SyntheticData(num_classes=10, image_size=16, train_size=2048,
                        test_size=512),
        sched=PaperCifarConfig(milestones=[150]),
        trainer=TrainerConfig(batch_size=64, max_iters=200, eval_every=50, log_every=50,
                              device=DeviceKind.cpu, progress=False),
    )  # fmt: skip
    final = train(config, tmp_path).test_error
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    points = events.Scalars("error/test")  # what the demo's TensorBoard draws
    assert [point.step for point in points] == [50, 100, 150, 200]
    test_errors = [point.value for point in points]
    assert test_errors[-1] == pytest.approx(final, abs=1e-6)  # stored as float32
    assert test_errors[0] > final + 0.1  # still learning after the first evaluation
    assert 0.05 < final < CHANCE - 0.3  # well below chance; above the 9% of relabelled test images
