"""The fast path (bf16 autocast, an opt-in, with channels_last and torch.compile) computes what the plain fp32
eager path does: the same loss within bf16 rounding, and updates pointing the same way (bf16 gradients differ
slightly). Each Runtime is built here, so no machine detection is involved."""

from dataclasses import replace

import pytest
import torch
from clitools import make_config

from resnet_train.config import CompileMode, ModelConfig, SyntheticData, TrainerConfig
from resnet_train.engine.run import Runtime, build, build_trainer, seed_everything

CONFIG = make_config(
    model=ModelConfig(depth=8),
    data=SyntheticData(num_classes=10, image_size=16, train_size=128, test_size=32),
    trainer=TrainerConfig(batch_size=32, max_iters=3, progress=False),
)


def trainer_for(tmp_path, runtime):
    seed_everything(0)  # the same initial weights for both paths
    built = build(CONFIG, tmp_path, runtime)
    trainer, data = build_trainer(CONFIG, built, tmp_path, runtime), built.data
    return trainer, data


def compare(tmp_path, device, compile_model):
    plain_rt = Runtime(device, None, False, False, CompileMode.default)
    fast_rt = replace(plain_rt, amp_dtype=torch.bfloat16, channels_last=True, compile=compile_model)
    plain, data = trainer_for(tmp_path / "plain", plain_rt)
    fast, fast_data = trainer_for(tmp_path / "fast", fast_rt)
    start = {k: v.detach().clone() for k, v in plain.raw_model.state_dict().items()}
    batches = list(data.train.epoch(0))[:3]
    fast_batches = list(fast_data.train.epoch(0))[:3]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, fast_batches))  # same data, other layout

    images, labels = batches[0]
    with torch.no_grad():
        plain_loss = torch.nn.functional.cross_entropy(plain.model(images), labels)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            fast_loss = torch.nn.functional.cross_entropy(fast.model(fast_batches[0][0]), labels)
    torch.testing.assert_close(fast_loss.float(), plain_loss, rtol=2e-2, atol=2e-2)

    for (x, y), (fx, fy) in zip(batches, fast_batches):
        plain.step(x, y, 0.1)
        fast.step(fx, fy, 0.1)
    for name, param in plain.raw_model.named_parameters():
        slow_update = param.detach() - start[name]
        fast_update = dict(fast.raw_model.named_parameters())[name].detach() - start[name]
        cosine = torch.nn.functional.cosine_similarity(slow_update.flatten(), fast_update.flatten(), dim=0)
        assert cosine > 0.95, (name, float(cosine))
        assert (fast_update - slow_update).norm() <= 0.3 * slow_update.norm() + 1e-6, name
    for trainer in (plain, fast):
        trainer.logger.close()


def test_bf16_channels_last_matches_fp32_eager_on_cpu(tmp_path):
    compare(tmp_path, torch.device("cpu"), compile_model=False)


@pytest.mark.slow
def test_bf16_channels_last_compiled_matches_fp32_eager_on_cpu(tmp_path):
    compare(tmp_path, torch.device("cpu"), compile_model=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_channels_last_compiled_matches_fp32_eager_on_cuda(tmp_path):
    compare(tmp_path, torch.device("cuda"), compile_model=True)
