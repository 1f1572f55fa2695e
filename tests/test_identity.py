"""A run never trains on other data than it started with, and a tool never labels data by position: the data
identity in every checkpoint, the class checks of resnet-eval, the mean-image cache key, the structure of a
checkpoint, hidden, empty and nested folders of an ImageFolder tree, and the net a checkpoint holds."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
import torch
from clitools import make_config
from PIL import Image
from torchvision import datasets

from resnet_train.cli.eval import main as eval_main
from resnet_train.config import (
    Config,
    DataConfig,
    DeviceKind,
    FolderData,
    Loader,
    ModelConfig,
    Precision,
    SyntheticData,
    TrainerConfig,
    config_to_plain,
    run_name,
)
from resnet_train.data import InputStats, build_data, build_eval_set, identity
from resnet_train.data.files import scan_folder
from resnet_train.data.identity import DIGEST_CACHE, Source, data_identity, identity_differences, tree_digest
from resnet_train.engine.checkpoint import (
    FORMAT_VERSION,
    TRAINING_KEYS,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from resnet_train.engine.restore import restore
from resnet_train.engine.run import train
from resnet_train.engine.rundir import ResumePoint, check_data_identity, find_resume_checkpoint
from resnet_train.engine.schedules import PaperCifarConfig
from resnet_train.errors import UserError
from resnet_train.models import build_model

CLASSES = ("cat", "dog", "emu")
LOADERS = [Loader.memory, Loader.stream]


def write_image(path, colour, seed=0, size=8):
    pixels = np.random.default_rng(seed).integers(0, 40, (size, size, 3)) + np.array(colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def write_tree(root, classes=CLASSES, per_class=3, splits=("train", "test")):
    """8x8 PNGs, each class its own colour, so a tiny net learns them."""
    for split in splits:
        for c, name in enumerate(classes):
            for i in range(per_class):
                write_image(root / split / name / f"{i}.png", (80 * c, 200 - 80 * c, 60), seed=10 * c + i)
    return root


def data_config(root, loader=Loader.memory, **changes) -> DataConfig:
    settings = dict(
        name="imagefolder", root=str(root), num_classes=len(CLASSES), image_size=8, loader=loader,
        workers=0, test_resize=8, scale_range=[8, 8], mean_samples=100,
    )  # fmt: skip
    return FolderData(**{**settings, **changes})


def run_config(root, loader=Loader.memory, max_iters=2) -> Config:
    return make_config(
        model=ModelConfig(depth=8),
        data=data_config(root, loader),
        sched=PaperCifarConfig(milestones=[100]),
        trainer=TrainerConfig(
            batch_size=4, max_iters=max_iters, eval_every=2, eval_batch_size_per_process=8, log_every=1,
            checkpoint_every=2, device=DeviceKind.cpu, precision=Precision.fp32, progress=False,
        ),
    )  # fmt: skip


def build(d: DataConfig, run_dir=None):
    return build_data(d, batch_size=4, eval_batch_size=8, seed=0, run_dir=run_dir)


# ---- resuming on other data (a run directory belongs to one dataset) ------------------------------------
@pytest.mark.parametrize("loader", LOADERS)
def test_resuming_on_a_tree_with_renamed_classes_is_refused_with_the_ways_out(tmp_path, loader):
    root, run_dir = write_tree(tmp_path / "data"), tmp_path / "run"
    train(run_config(root, loader), run_dir)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["data_identity"]["classes"] == list(CLASSES)
    for split in ("train", "test"):  # "cat" becomes "zebra": the labels 0 and 2 swap
        (root / split / "cat").rename(root / split / "zebra")
    with pytest.raises(UserError) as refused:
        train(run_config(root, loader, max_iters=4), run_dir)
    message = str(refused.value)
    assert "\n" not in message
    assert "classes differ (only the checkpoint has cat; only the data has zebra)" in message
    assert "point data.root back" in message and "hydra.run.dir=NEW_DIR" in message
    assert f"trainer.resume={run_dir / 'checkpoints' / 'last.pt'}" in message
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["trainer"]["iteration"] == 2  # untouched


def test_a_finished_run_is_not_reported_complete_on_other_data(tmp_path):
    """A sweep job (or a second single run) on another tree used to find the first one's finished run."""
    first, second, run_dir = write_tree(tmp_path / "a"), tmp_path / "b", tmp_path / "run"
    write_tree(second, per_class=4)
    train(run_config(first), run_dir)
    with pytest.raises(UserError, match=r"images train 9 -> 12, test 9 -> 12\. Either"):
        train(run_config(second), run_dir)


def test_a_replaced_image_is_other_data_and_a_moved_copy_is_the_same(tmp_path, caplog):
    root, run_dir = write_tree(tmp_path / "data"), tmp_path / "run"
    train(run_config(root), run_dir)
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    shutil.rmtree(root)
    caplog.set_level(logging.INFO, logger="resnet_train")
    train(run_config(moved, max_iters=4), run_dir)  # the same files elsewhere: resumes
    assert "resumed from iteration 2" in caplog.text
    (moved / "train" / "dog" / "1.png").rename(moved / "train" / "dog" / "1b.png")  # same count and sizes
    with pytest.raises(UserError, match="the same number of images, but other files"):
        train(run_config(moved, max_iters=6), run_dir)


def test_a_replaced_image_of_the_same_size_is_other_data(tmp_path):
    def uncompressed(colour):  # a PNG whose file size depends on its pixel count alone
        Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(image, compress_level=0)
        return image.stat().st_size

    root, run_dir = write_tree(tmp_path / "data"), tmp_path / "run"
    image = root / "train" / "dog" / "1.png"
    size = uncompressed(100)
    train(run_config(root), run_dir)
    assert uncompressed(200) == size  # replaced: the same size, other bytes
    with pytest.raises(UserError, match="the same number of images, but other files"):
        train(run_config(root, max_iters=4), run_dir)


def test_a_trees_files_are_read_once_then_known_by_size_and_time(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "data")
    paths = sorted(str(p) for p in root.rglob("*.png"))
    first = tree_digest(paths, root)
    assert (root / DIGEST_CACHE).is_file()
    read = []
    monkeypatch.setattr(identity, "_file_digest", lambda path: read.append(path) or "x")
    assert tree_digest(paths, root) == first and read == []  # a stat per file, no read
    os.utime(paths[0], ns=(1, 1))  # rewritten (same bytes): read again, the same digest
    monkeypatch.undo()
    assert tree_digest(paths, root) == first
    # A data folder one cannot write keeps its cache in the user's cache folder instead.
    monkeypatch.setattr(identity.os, "access", lambda path, mode: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert tree_digest(paths, root) == first and list((tmp_path / "cache" / "resnet-train").glob("*.json"))


def test_the_official_archive_and_an_image_tree_are_different_data():
    counts = {"train": 50000, "val": 0, "test": 10000}
    archive = data_identity("cifar10", ["airplane"], counts, Source("archive", "a"))
    tree = data_identity("cifar10", ["airplane"], counts, Source("files", "b"))
    assert identity_differences(archive, tree) == [
        "read from the official archive, now from an ImageFolder tree"
    ]
    assert identity_differences(tree, tree) == []


def resume_point(identity, own=True):
    return ResumePoint({"data_identity": identity} if identity else {}, "RUN/checkpoints", own=own)


def test_a_starting_checkpoint_may_hold_other_data_but_the_runs_own_may_not(tmp_path, caplog):
    counts = {"train": 9, "val": 0, "test": 9}
    current = data_identity("imagefolder", ["a", "b"], counts, Source("files", "x"))
    other = data_identity("imagefolder", ["b", "c"], counts, Source("files", "y"))
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        check_data_identity(resume_point(other, own=False), current, "/data", tmp_path)  # fine-tuning
    assert (
        "trained on other data: classes differ (only the checkpoint has c; only the data has a)"
        in caplog.text
    )
    with pytest.raises(UserError, match="does not hold the data"):
        check_data_identity(resume_point(other), current, "/data", tmp_path)


def test_the_same_class_names_in_another_label_order_are_other_data():
    counts = {"train": 9, "val": 0, "test": 9}
    stored = data_identity("cifar10", ["a", "b"], counts, Source("files", "x"))
    current = data_identity("cifar10", ["b", "a"], counts, Source("files", "x"))
    assert identity_differences(stored, current) == ["the same 2 class names in another label order"]


def test_each_split_s_image_count_is_logged_once(tmp_path, caplog):
    write_tree(tmp_path)
    with caplog.at_level(logging.INFO, logger="resnet_train"):
        data = build(data_config(tmp_path, val_size=2))
    assert caplog.text.count("imagefolder: 3 classes, 7 training, 2 validation and 9 test images") == 1
    assert data.identity["images"] == {"train": 7, "val": 2, "test": 9}


@pytest.mark.parametrize("loader", LOADERS)
def test_both_loaders_give_one_identity_for_one_tree(tmp_path, loader):
    write_tree(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    first, moved = (
        build(data_config(tmp_path / "a", loader)),
        build(data_config(tmp_path / "b", Loader.memory)),
    )
    assert first.identity == moved.identity and first.identity["source"] == "files"


def test_generated_images_are_identified_by_their_pixels():
    def identity(**changes):
        d = SyntheticData(num_classes=3, image_size=8, train_size=16, test_size=8)
        d.__dict__.update(changes)
        return build(d).identity

    assert identity() == identity() and identity()["source"] == "generator"
    assert identity()["digest"] != identity(image_size=9)["digest"]


# ---- sweep jobs over data.root get their own directories ------------------------------------------------
def test_data_root_names_a_sweep_job_but_not_a_single_run():
    single = [run_name(f"data.root={root},trainer.seed=1", True, 20, "cifar10") for root in ("/a", "/b")]
    assert single[0] == single[1] == "resnet20-cifar10,trainer.seed=1"  # a moved copy resumes
    jobs = [run_name(f"data.root={root},trainer.seed=1", True, 20, "cifar10", True) for root in ("/a", "/b")]
    assert jobs[0] != jobs[1]
    assert run_name("data.root=a,trainer.seed=1", sweep=True) == "resnet20-cifar10,data.root=a,trainer.seed=1"
    # A name that needs a digest is the same as before data.root counted in sweeps.
    assert run_name("data.root=/a,x=a*b") == run_name("x=a*b")


# ---- resnet-eval on another tree labels by the checkpoint's class names ---------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run on a three-class tree: (its data root, its checkpoint)."""
    base = tmp_path_factory.mktemp("trained")
    root = write_tree(base / "data")
    train(run_config(root, max_iters=4), base / "run")
    return root, base / "run" / "checkpoints" / "last.pt"


@pytest.mark.parametrize("loader", LOADERS)
def test_eval_refuses_a_tree_whose_classes_the_checkpoint_does_not_know(trained, tmp_path, caplog, loader):
    other = write_tree(tmp_path / "other", classes=("ant", "bee", "cow"))
    with pytest.raises(SystemExit) as exit_code:
        eval_main([str(trained[1]), f"data.root={other}", f"data.loader={loader.value}"])
    assert exit_code.value.code == 2
    assert (
        "has class folders that the training set lacks: ant, bee, cow (its classes: cat, dog, emu)"
        in caplog.text
    )


@pytest.mark.parametrize("loader", LOADERS)
def test_eval_labels_a_test_tree_with_fewer_classes_by_name_without_train(trained, tmp_path, loader):
    subset = tmp_path / "subset"
    shutil.copytree(trained[0], subset)
    shutil.rmtree(subset / "train")  # an evaluation reads the test split alone
    shutil.rmtree(subset / "test" / "cat")
    d = data_config(subset, loader, num_classes=None)
    restored = restore(trained[1])
    evals = build_eval_set(
        d, stats=restored.stats, classes=restored.classes, batch_size=8, device=torch.device("cpu")
    )
    labels = torch.cat([labels for _, labels in evals.batches])
    assert labels.tolist() == [1, 1, 1, 2, 2, 2]  # dog and emu, as the checkpoint numbers them


# ---- checkpoints that lack a part, and nets that do not fit the weights ---------------------------------
@pytest.mark.parametrize("missing", ["trainer", "rng", "model", "schedule", "optimizer"])
def test_a_checkpoint_missing_a_part_is_one_line_naming_it(trained, tmp_path, missing, caplog):
    state = load_checkpoint(trained[1])
    del state[missing]
    path = save_checkpoint(tmp_path / "bad", state)
    config = config_to_plain(run_config(trained[0]))
    with pytest.raises(CheckpointError, match=f"is incomplete: it lacks {missing} "):
        find_resume_checkpoint(str(path), tmp_path / "new", config)
    if missing == "model":  # resnet-eval needs the weights and the config only
        with pytest.raises(SystemExit) as exit_code:
            eval_main([str(path)])
        assert exit_code.value.code == 2 and "it lacks model" in caplog.text


def test_a_checkpoint_in_the_run_directory_missing_a_part_falls_back_or_is_named(trained, tmp_path):
    state = load_checkpoint(trained[1])
    del state["rng"]
    save_checkpoint(tmp_path / "checkpoints", state)
    config = config_to_plain(run_config(trained[0], max_iters=4))
    with pytest.raises(CheckpointError, match="no usable checkpoint .* it lacks rng"):
        find_resume_checkpoint("auto", tmp_path, config)
    assert set(TRAINING_KEYS) <= set(load_checkpoint(trained[1]))


def test_a_net_override_that_does_not_fit_the_weights_names_the_checkpoints_net(trained):
    with pytest.raises(UserError) as refused:
        restore(trained[1], ["model.depth=14"])
    message = str(refused.value)
    assert message == (
        f"{trained[1]} holds a resnet8 (cifar family, shortcut A); model.depth=14 does not fit its weights: "
        f"drop the override"
    )


def test_resnet_eval_with_a_deeper_net_exits_2_in_one_line(trained, caplog):
    with pytest.raises(SystemExit) as exit_code:
        eval_main([str(trained[1]), "model.depth=14", "model.residual=false"])
    assert exit_code.value.code == 2
    assert "holds a resnet8" in caplog.text and "size mismatch" not in caplog.text


def test_weights_that_do_not_fit_their_own_config_are_one_line():
    config = make_config(model=ModelConfig(depth=8), data=SyntheticData(num_classes=3))
    weights = build_model(config.model.family, 14, True, 3).state_dict()
    with pytest.raises(UserError, match="holds a resnet8 .* but its weights do not fit that net"):
        stats = InputStats.fit(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).state_dict()
        inputs = {"classes": ["a", "b", "c"], "stats": stats}
        config = config_to_plain(config)
        restore({"format": FORMAT_VERSION, "config": config, "model": weights, "input": inputs})


# ---- hidden, empty and nested folders ------------------------------------------------------------------
@pytest.mark.parametrize("loader", LOADERS)
def test_hidden_folders_and_files_are_not_classes_or_images(tmp_path, loader):
    write_tree(tmp_path)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # empty: torchvision refused the whole tree
    write_image(tmp_path / "test" / ".cache" / "0.png", (0, 0, 0))
    (tmp_path / "train" / "dog" / "._0.png").write_bytes(b"macOS metadata, not an image")
    write_image(tmp_path / "train" / "emu" / ".thumbnails" / "0.png", (0, 0, 0))
    data = build(data_config(tmp_path, loader))
    assert data.classes == list(CLASSES) and data.identity["images"]["train"] == 9


@pytest.mark.parametrize("loader", LOADERS)
def test_an_empty_class_folder_is_named(tmp_path, loader):
    write_tree(tmp_path)
    (tmp_path / "train" / "fox" / ".ipynb_checkpoints").mkdir(parents=True)
    with pytest.raises(UserError, match=r"train: Found no valid file for the classes fox\. \(image files: "):
        build(data_config(tmp_path, loader, num_classes=4))


def test_images_in_sub_folders_count_for_their_class_in_torchvisions_order_and_are_said(tmp_path, caplog):
    write_tree(tmp_path, splits=("train",))
    write_image(tmp_path / "train" / "dog" / "more" / "a.png", (0, 0, 0))
    write_image(tmp_path / "train" / "dog" / "0a" / "b.png", (0, 0, 0))
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        files = scan_folder(tmp_path / "train")
    reference = datasets.ImageFolder(str(tmp_path / "train"))
    assert list(zip(files.paths, files.labels)) == reference.samples  # the same images, labels and order
    assert "2 sub-folder(s) of class folders hold images (first: " in caplog.text
    assert caplog.text.count("sub-folder(s)") == 1


# ---- the mean-image cache beside the data ---------------------------------------------------------------
def test_the_mean_image_cache_is_recomputed_when_the_images_change_but_not_their_count(tmp_path):
    write_tree(tmp_path)
    d = data_config(tmp_path, Loader.stream)
    first = build(d).stats.mean_image
    assert list(tmp_path.glob("input_stats_*.pt")), "the cache sits beside the data"
    assert torch.equal(build(d).stats.mean_image, first)  # a cache hit gives the same statistics
    for path in (tmp_path / "train").rglob("*.png"):
        stamp = path.stat().st_mtime_ns
        write_image(path, (250, 250, 250))
        os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # rewritten: whatever the clock's resolution
    assert build(d).stats.mean_image.mean() > first.mean() + 50


@pytest.mark.slow
def test_a_sweep_over_data_root_trains_each_tree_in_its_own_directory(tmp_path):
    from clitools import run_cli

    ten = [f"c{i}" for i in range(10)]
    trees = [write_tree(tmp_path / name, classes=ten, per_class=1) for name in ("a", "b")]
    result = run_cli(
        "-m", "model=resnet20", "model.depth=8", "data=cifar10", f"data.root={trees[0]},{trees[1]}",
        "data.image_size=8", "trainer.batch_size=4", "trainer.max_iters=2", "trainer.eval_every=2",
        "trainer.device=cpu", "trainer.precision=fp32", "trainer.progress=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert "already complete" not in result.stdout
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert len(runs) == 2, result.stdout
    roots = {load_checkpoint(run / "checkpoints" / "last.pt")["config"]["data"]["root"] for run in runs}
    assert roots == {str(tree) for tree in trees}
