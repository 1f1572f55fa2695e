"""Learning on real data: a short CPU run on the CIFAR-10 JPEG tree (../shared/data)."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_short_cpu_run_on_cifar10_jpegs_learns(cifar10_jpeg, train_job):
    job = train_job(
        "model=resnet20", "model.depth=8", "data=cifar10", f"data.root={cifar10_jpeg}", "trainer.device=cpu",
        "trainer.batch_size=64", "trainer.max_iters=200", "trainer.eval_every=200", "trainer.log_every=50",
        "sched.milestones=[150]", "trainer.progress=false", tiny=False,
    )  # fmt: skip
    metrics = json.loads((job.run_dir / "metrics.json").read_text())
    assert metrics["synthetic"] is False and metrics["dataset"] == "cifar10" and metrics["iterations"] == 200
    print(f"test error {metrics['test_error']:.2%} after 200 iterations in {metrics['wall_time_s']:.0f} s")
    assert metrics["test_error"] < 0.7  # chance is 0.90
