"""One way back from a checkpoint: `restore` and `resnet_train.load_model` give the trainer's own net, and
the checkpoint carries the classes and input statistics, so nothing is recomputed from the training set."""

import json

import pytest
import torch
import torch.nn.functional as F

import resnet_train
from resnet_train.cli.eval import main as eval_main
from resnet_train.data import InputStats, load_splits
from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.restore import restore


def test_load_model_gives_the_trainers_test_error_and_resnet_evals_numbers(train_job, capsys):
    run_dir = train_job("trainer.max_iters=8", "trainer.eval_every=8").run_dir
    path = run_dir / "checkpoints" / "last.pt"

    stored = load_checkpoint(path)["input"]  # an in-memory dataset carries its inputs too
    splits = load_splits("synthetic", "", num_classes=10, image_size=16, train_size=256, test_size=128)
    assert stored["classes"] == splits.classes
    assert torch.equal(stored["stats"]["mean_image"], InputStats.fit(splits.train.images).mean_image)

    model = resnet_train.load_model(path)
    assert not model.training
    normalize = restore(path).normalizer()
    with torch.no_grad():
        logits = model(normalize(splits.test.images))
    error = (logits.argmax(1) != splits.test.labels).float().mean().item()
    loss = F.cross_entropy(logits, splits.test.labels).item()

    metrics = json.loads((run_dir / "metrics.json").read_text())  # the trainer's raw model, same weights
    assert error == pytest.approx(metrics["test_error"], abs=1e-9)
    assert loss == pytest.approx(metrics["test_loss"], rel=1e-4)

    eval_main([str(path)])
    report = json.loads(capsys.readouterr().out)
    assert report["top1_error"] == pytest.approx(error, abs=1e-9)
    assert report["loss"] == pytest.approx(loss, rel=1e-4)
    assert report["iteration"] == 8


def test_a_checkpoint_without_a_config_is_one_clear_error(tmp_path):
    from resnet_train.engine.checkpoint import FORMAT_VERSION, save_checkpoint
    from resnet_train.errors import UserError

    path = save_checkpoint(tmp_path, {"format": FORMAT_VERSION, "model": {}})
    with pytest.raises(UserError, match="is incomplete: it lacks config, input"):
        restore(path)
