"""The ImageNet pipeline end to end (Sec. 3.4): a tiny ResNet-18 trained on a generated ImageFolder tree with
a corrupt JPEG, then resnet-eval's three test protocols (centre crop, 10-crop, multi-scale)."""

from __future__ import annotations

import json

import pytest
from imagetree import CLASSES

from resnet_train.cli.eval import main as eval_main


def test_train_resnet18_on_an_imagefolder_tree_then_evaluate_every_protocol(
    tree, tmp_path, train_job, capsys, caplog
):
    bad = tree / "train" / CLASSES[1] / "corrupt.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    try:
        small = ["data.image_size=16", "data.scale_range=[18,24]", "data.test_resize=18", "data.workers=0"]
        trained = train_job(
            "model=resnet18", "data=imagefolder", f"data.root={tree}", "data.num_classes=3",
            *small, "trainer.max_iters=4", "trainer.batch_size=4", "trainer.eval_every=4",
            "trainer.log_every=2", "trainer.device=cpu", "trainer.progress=false", "sched=paper_imagenet",
            "optim.lr=0.01", run_dir=tmp_path / "run", tiny=False,
        )  # fmt: skip
    finally:
        bad.unlink()
    assert str(bad) in trained.log  # the corrupt JPEG is named, and the run goes on
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics == trained.metrics
    assert metrics["iterations"] == 4 and metrics["dataset"] == "imagefolder"
    assert 0 <= metrics["test_error"] <= 1 and metrics["test_top5_error"] == 0.0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    out = tmp_path / "ten.json"
    eval_main([str(checkpoint), "eval.crops=ten", "--out", str(out)])
    reports = {"ten": json.loads(capsys.readouterr().out)}
    assert json.loads(out.read_text()) == reports["ten"]
    for crops in ("center", "multiscale"):
        eval_main([str(checkpoint), f"eval.crops={crops}", "data.test_scales=[16,20,24]", "data.workers=0"])
        reports[crops] = json.loads(capsys.readouterr().out)
    for crops, report in reports.items():
        assert report["images"] == 6 and report["crops"] == crops and report["iteration"] == 4
        assert 0 <= report["top1_error"] <= 1 and report["top5_error"] == 0.0
    assert reports["center"]["top1_error"] == pytest.approx(metrics["test_error"])  # the in-loop protocol
    assert reports["multiscale"]["scales"] == [16, 20, 24]
    with pytest.raises(SystemExit) as refused:
        eval_main([str(checkpoint), "eval.crops=twelve"])
    assert refused.value.code == 2 and "twelve" in caplog.text
