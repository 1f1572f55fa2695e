"""The ImageNet pipeline (Sec. 3.4) on a generated ImageFolder tree of real JPEG files of varied sizes:
scale augmentation, mean image, 10-crop and multi-scale testing, top-5 with ties, the plateau schedule, the
sampler's sharding and resume, unreadable images, and a tiny run through resnet-train and resnet-eval."""

from __future__ import annotations

import json
import logging
import os
import subprocess

import numpy as np
import pytest
import torch
from clitools import console_script
from hydra import compose, initialize_config_dir
from PIL import Image

from resnet_train.cli.eval import main as eval_main
from resnet_train.config import (
    Augment,
    BadImage,
    Decode,
    Normalize,
    ScheduleName,
    config_dir,
    register_configs,
)
from resnet_train.data import SINGLE_PROCESS, Shard
from resnet_train.data.augment import (
    augment_sample,
    center_view,
    lighting_offsets,
    scale_views,
    ten_views,
    train_transform,
)
from resnet_train.data.collate import collate_bytes, split_bytes
from resnet_train.data.files import BadImages, decode_rgb, eval_folder, read_bytes, scan_folder
from resnet_train.data.normalize import Normalizer
from resnet_train.data.sampler import EpochSampler
from resnet_train.data.stats import InputStats, compute_input_stats, load_cached, save_cached
from resnet_train.data.stream import StreamEvalBatches, StreamTrainBatches
from resnet_train.engine.eval_views import evaluate_views, view_scores
from resnet_train.engine.evaluate import EvalResult, evaluate, topk_wrong
from resnet_train.engine.optim import LrSchedule
from resnet_train.errors import UserError

CPU = torch.device("cpu")
SIZES = [(500, 375), (375, 500), (320, 240), (640, 360), (300, 300), (260, 400)]  # (width, height)
CLASSES = ["n01", "n02", "n03"]


def write_jpeg(path, width, height, colour, seed):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=85)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """train/<class>/ 4 JPEGs each, val/<class>/ 2 each, of varied sizes and aspect ratios."""
    root = tmp_path_factory.mktemp("imagefolder")
    for split, count in (("train", 4), ("val", 2)):
        for c, name in enumerate(CLASSES):
            for i in range(count):
                width, height = SIZES[(c * count + i) % len(SIZES)]
                colour = (60 * c + 40, 120, 200 - 60 * c)
                write_jpeg(root / split / name / f"{name}_{i}.JPEG", width, height, colour, seed=c * 10 + i)
    return root


def tiny_stats(size):
    return InputStats(torch.full((3, size, size), 128.0), torch.full((3,), 128.0), torch.ones(3), 1.0, 1)


# ---- augmentation -----------------------------------------------------------------------------------------
def test_scale_augmentation_keeps_the_shorter_side_in_range_and_crops_224(tree):
    transform = train_transform(Augment.paper, 224, (256, 480))
    resize = transform.transforms[0]  # RandomShortestSize: the scale augmentation itself
    shorter_sides = set()
    for index, path in enumerate(scan_folder(tree / "train").paths):
        image, _ = decode_rgb(read_bytes(path))
        height, width = image.shape[1:]
        for seed in range(3):
            torch.manual_seed(index * 3 + seed)
            resized = resize(image)
            shorter = min(resized.shape[1:])
            assert 256 <= shorter <= 480
            assert resized.shape[2] / resized.shape[1] == pytest.approx(width / height, rel=0.01)
            shorter_sides.add(shorter)
            crop, alpha = augment_sample(image, index * 3 + seed, transform, 0.1)
            assert crop.shape == (3, 224, 224) and crop.dtype == torch.uint8 and alpha.shape == (3,)
    assert len(shorter_sides) > 10  # drawn from the whole range, not a few fixed sizes


def test_a_sample_depends_only_on_its_seed():
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    transform = train_transform(Augment.paper, 224, (256, 480))
    torch.manual_seed(123)
    first = augment_sample(image, 7, transform, 0.1)
    state = torch.get_rng_state()
    second = augment_sample(image, 7, transform, 0.1)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(state, torch.get_rng_state())  # the caller's generator is untouched
    assert not torch.equal(first[0], augment_sample(image, 8, transform, 0.1)[0])


def test_inception_crop_option():
    transform = train_transform(Augment.inception, 224, (256, 480))
    crop, _ = augment_sample(torch.zeros(3, 100, 300, dtype=torch.uint8), 0, transform, 0.0)
    assert crop.shape == (3, 224, 224)


def test_lighting_adds_alexnets_pca_offsets():
    alphas = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    offsets = lighting_offsets(alphas)
    expected = 0.2175 * torch.tensor([-0.5675, -0.5808, -0.5836]) * 255  # lambda_1 * p_1, in pixel units
    assert torch.allclose(offsets[0], expected, atol=1e-4) and torch.equal(offsets[1], torch.zeros(3))
    normalize = Normalizer(tiny_stats(4), Normalize.mean_image, CPU)
    images = torch.full((2, 3, 4, 4), 128, dtype=torch.uint8)
    out = normalize(images, alphas)
    assert torch.allclose(out[0, :, 0, 0], expected, atol=1e-4) and torch.equal(out[1], torch.zeros(3, 4, 4))


# ---- the mean image ---------------------------------------------------------------------------------------
def test_mean_image_and_channel_statistics_of_known_images(tmp_path):
    # Two 6x6 PNGs (lossless) per class; resize 6 and crop 6 leave them as they are.
    ramp = torch.arange(36, dtype=torch.float64).view(6, 6)
    images = [
        torch.stack([ramp, ramp * 2, torch.full((6, 6), 10.0)]),
        torch.stack([ramp.flip(1), ramp * 3, torch.full((6, 6), 30.0)]),
        torch.stack([ramp.T, ramp, torch.full((6, 6), 50.0)]),
    ]
    for i, image in enumerate(images):
        path = tmp_path / "train" / CLASSES[i % 2] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy().astype(np.uint8)).save(path)
    files = scan_folder(tmp_path / "train")
    stats = compute_input_stats(
        files,
        6,
        6,
        100,
        workers=0,
        bad_images=BadImages(BadImage.error),
        shard=Shard(),
        collectives=SINGLE_PROCESS,
    )
    stack = torch.stack(images)
    assert torch.allclose(stats.mean_image.double(), stack.mean(dim=0), atol=1e-4)
    assert torch.allclose(stats.channel_mean.double(), stack.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(
        stats.channel_std.double(), stack.transpose(0, 1).flatten(1).std(1, False), atol=1e-3
    )
    assert stats.pixel_std == pytest.approx(float(stack.std(unbiased=False)), rel=1e-4)
    assert stats.samples == 3
    normalized = Normalizer(stats, Normalize.mean_image, CPU)(stack.to(torch.uint8))
    assert normalized.mean(dim=0).abs().max() < 1e-4  # zero mean at every pixel
    per_channel = Normalizer(stats, Normalize.channel, CPU)(stack.to(torch.uint8))
    assert torch.allclose(per_channel.transpose(0, 1).flatten(1).std(1, False), torch.ones(3), atol=1e-3)


def test_mean_image_of_varied_jpegs_has_the_crop_size_and_is_cached(tree, tmp_path):
    files = scan_folder(tree / "train")
    stats = compute_input_stats(
        files,
        32,
        40,
        5,
        workers=0,
        bad_images=BadImages(BadImage.error),
        shard=Shard(),
        collectives=SINGLE_PROCESS,
    )
    assert stats.mean_image.shape == (3, 32, 32) and stats.samples == 5
    # The data folder unwritable (here: under a file) -> the next folder, the run directory, holds the cache.
    blocked = tmp_path / "file"
    blocked.write_text("")
    path = save_cached(stats, [blocked / "sub", tmp_path / "run"], "stats.pt", len(files))
    assert path == tmp_path / "run" / "stats.pt"
    cached = load_cached([blocked / "sub", tmp_path / "run"], "stats.pt", len(files))
    assert torch.equal(cached.mean_image, stats.mean_image)
    assert load_cached([tmp_path / "run"], "stats.pt", len(files) + 1) is None  # another training set


def test_a_view_of_another_size_subtracts_the_resized_mean_image():
    stats = tiny_stats(4)
    stats.mean_image = torch.arange(48, dtype=torch.float32).view(3, 4, 4)
    normalize = Normalizer(stats, Normalize.mean_image, CPU)
    out = normalize(torch.zeros(3, 8, 12, dtype=torch.uint8))
    expected = -torch.nn.functional.interpolate(stats.mean_image[None], size=(8, 12), mode="bilinear")[0]
    assert out.shape == (3, 8, 12) and torch.allclose(out, expected)
    stats.mean_image = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1).expand(3, 4, 4)
    out = Normalizer(stats, Normalize.mean_image, CPU)(torch.zeros(3, 8, 12, dtype=torch.uint8))
    assert torch.allclose(out, -torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1).expand(3, 8, 12))


# ---- test views -------------------------------------------------------------------------------------------
def test_ten_crop_gives_the_corners_centre_and_their_flips_of_a_known_image():
    image = torch.arange(3 * 8 * 10).view(3, 8, 10).to(torch.uint8)  # shorter side 8 = resize: no resize
    views = ten_views(image, resize=8, size=4)
    assert views.shape == (10, 3, 4, 4)
    flipped = image.flip(-1)
    expected = []
    for source in (image, flipped):
        expected += [
            source[:, 0:4, 0:4],  # top left
            source[:, 0:4, 6:10],  # top right
            source[:, 4:8, 0:4],  # bottom left
            source[:, 4:8, 6:10],  # bottom right
            source[:, 2:6, 3:7],  # centre
        ]
    for view, want in zip(views, expected):
        assert torch.equal(view, want)
    # The five crops of the flip are the flips of the five crops (corners swap sides).
    assert torch.equal(views[5], views[1].flip(-1)) and torch.equal(views[9], views[4].flip(-1))
    assert torch.equal(center_view(image, 8, 4), views[4])


class MeanColour(torch.nn.Module):
    """Logits = the mean of each channel: a 'network' whose scores are easy to compute by hand."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x.float().mean(dim=(2, 3))


def test_ten_crop_scores_are_the_mean_of_the_ten_softmaxes():
    views = torch.randn(2, 10, 3, 4, 4)
    scores = view_scores(MeanColour(), views)
    expected = views.mean(dim=(3, 4)).softmax(dim=2).mean(dim=1)
    assert torch.allclose(scores, expected, atol=1e-6)


def test_multiscale_scores_every_scale_and_its_flip(tree):
    image, _ = decode_rgb(read_bytes(scan_folder(tree / "val").paths[0]))
    scales = [224, 256, 384, 480, 640]
    views = scale_views(image, scales)
    assert [min(v.shape[1:]) for v in views] == scales
    model = MeanColour()
    scores = view_scores(model, [views])
    assert [shape[0] for shape in model.shapes] == [2] * 5  # each scale with its flip
    assert [min(shape[2:]) for shape in model.shapes] == scales
    expected = torch.stack([v.float().mean(dim=(1, 2)).softmax(0) for v in views]).mean(0)
    assert torch.allclose(scores[0], expected, atol=1e-6)


def test_a_resnet_runs_fully_convolutionally_at_every_scale(tree):
    from resnet_train.models import build_model

    net = build_model("imagenet", 18, True, 3, shortcut="A", bottleneck_stride="v1", stem="imagenet")
    files = scan_folder(tree / "val")
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    view = lambda image: scale_views(image, [32, 48, 64])  # noqa: E731  (small scales keep the test fast)
    batches = StreamEvalBatches(files, view, normalize, 3)
    result = evaluate_views(net, batches, CPU)
    assert 0 <= result.error <= 1 and result.top5_error == 0.0  # 3 classes: the truth is always in the top 5


# ---- top-1 / top-5 ----------------------------------------------------------------------------------------
def test_top5_tie_rule_ranks_equal_scores_by_class_index():
    labels = torch.tensor([5, 0, 6, 2])
    scores = torch.tensor(
        [
            [
                0.0,
                1,
                1,
                1,
                1,
                1,
                1,
            ],  # true class 5 tied with 1..4 (lower indices win) -> rank 4: in the top 5
            [0.0, 1, 1, 1, 1, 1, 0],  # five classes strictly above class 0 -> rank 5: wrong
            [1.0, 1, 1, 1, 1, 0, 1],  # class 6 tied with 0..4, all lower -> rank 5: wrong
            [2.0, 2, 2, 9, 9, 9, 9],  # class 2: four above, 0 and 1 tie lower -> rank 6: wrong
        ]
    )
    assert topk_wrong(scores, labels, 5).tolist() == [False, True, True, True]
    assert topk_wrong(scores, labels, 7).tolist() == [False] * 4
    assert torch.equal(topk_wrong(scores, labels, 1), scores.argmax(dim=1) != labels)
    random_scores = torch.randint(0, 3, (200, 6)).float()  # many ties
    random_labels = torch.randint(0, 6, (200,))
    assert torch.equal(topk_wrong(random_scores, random_labels, 1), random_scores.argmax(1) != random_labels)
    assert topk_wrong(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), 5).item()


def test_evaluate_reports_loss_error_and_top5_by_name():
    net = torch.nn.Linear(4, 7)
    batches = [(torch.randn(16, 4), torch.randint(0, 7, (16,))) for _ in range(2)]
    result = evaluate(net, batches, CPU)
    assert isinstance(result, EvalResult)
    assert result.loss > 0 and 0 <= result.top5_error <= result.error <= 1
    with pytest.raises(TypeError):
        loss, error = result  # three fields: read them by name, never two of them by position


# ---- schedule ---------------------------------------------------------------------------------------------
def test_paper_imagenet_divides_by_ten_on_a_plateau_and_keeps_its_state():
    schedule = LrSchedule(ScheduleName.paper_imagenet, 0.1, 1000, gamma=0.1, patience=2, threshold=0.01)
    for error in (0.60, 0.50, 0.495, 0.49):  # 0.495 and 0.49 are not 0.01 better than 0.50
        schedule.observe_val_error(error)
    assert schedule.lr(10) == pytest.approx(0.01)
    restored = LrSchedule(ScheduleName.paper_imagenet, 0.1, 1000, patience=2, threshold=0.01)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr(10) == pytest.approx(0.01) and restored.best_val_error == 0.50
    for error in (0.30, 0.31, 0.30):
        restored.observe_val_error(error)
    assert restored.lr(10) == pytest.approx(0.001)
    old = LrSchedule(ScheduleName.paper_imagenet, 0.1, 1000)
    old.load_state_dict({"warming_up": False})  # a checkpoint from before the plateau schedule
    assert old.lr(0) == 0.1
    step = LrSchedule(ScheduleName.paper_cifar, 0.1, 1000, milestones=[5])
    step.observe_val_error(0.9)  # other schedules ignore the val error
    assert step.lr(0) == 0.1


@pytest.fixture(scope="module")
def hydra_context():
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield


def test_imagenet_configs_compose(hydra_context):
    cfg = compose("config", overrides=["data=imagenet", "sched=paper_imagenet", "trainer=imagenet"])
    assert (
        cfg.data.num_classes == 1000
        and cfg.data.image_size == 224
        and list(cfg.data.scale_range) == [256, 480]
    )
    assert cfg.data.loader.name == "stream" and cfg.data.augment.name == "paper" and cfg.data.lighting == 0.1
    assert list(cfg.data.test_scales) == [224, 256, 384, 480, 640] and cfg.data.test_resize == 256
    assert cfg.sched.name.name == "paper_imagenet" and cfg.optim.lr == 0.1 and cfg.trainer.max_iters == 600000
    assert cfg.trainer.batch_size == 256
    step = compose("config", overrides=["data=imagenet", "sched=step"])
    assert step.sched.step_every == 30 * (1_281_167 // 256) == 150120 and step.sched.gamma == 0.1
    folder = compose("config", overrides=["data=imagefolder", "data.root=/x", "data.num_classes=3"])
    assert folder.data.loader.name == "stream" and folder.data.name.name == "imagefolder"


# ---- sampler, batches, bad images -------------------------------------------------------------------------
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


def test_training_batches_are_uint8_crops_normalised_and_the_same_with_workers(tree):
    files = scan_folder(tree / "train")
    transform = train_transform(Augment.paper, 32, (36, 48))
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    common = {"seed": 0, "lighting": 0.1}
    serial = StreamTrainBatches(files, transform, normalize, 4, workers=0, **common)
    parallel = StreamTrainBatches(files, transform, normalize, 4, workers=2, **common)
    assert serial.iters_per_epoch == 3
    first = list(serial.epoch(1))
    assert [x.shape for x, _ in first] == [(4, 3, 32, 32)] * 3 and first[0][0].dtype == torch.float32
    for (x, y), (x2, y2) in zip(first, parallel.epoch(1)):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    resumed = list(serial.epoch(1, start=2))
    assert len(resumed) == 1 and torch.equal(resumed[0][0], first[2][0])


def test_gpu_decode_without_cuda_is_refused_clearly(tree):
    files = scan_folder(tree / "train")
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    transform = train_transform(Augment.paper, 32, (36, 48))
    with pytest.raises(UserError, match="data.decode=gpu.*data.decode=cpu"):
        StreamTrainBatches(files, transform, normalize, 4, seed=0, decode=Decode.gpu)


def test_gpu_decode_batches_travel_as_one_byte_tensor():
    # Workers send one tensor per batch (each tensor costs a shared-memory file descriptor).
    first, last = torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([9], dtype=torch.uint8)
    items = [
        (first, 0, 5, "a"),
        (None, 1, 6, "b"),
        (torch.empty(0, dtype=torch.uint8), 2, 7, "c"),
        (last, 1, 8, "d"),
    ]
    (joined, lengths), labels, seeds, paths = collate_bytes(items)
    assert joined.tolist() == [1, 2, 3, 9] and lengths.tolist() == [3, -1, 0, 1]
    parts = split_bytes(joined, lengths)
    assert (
        parts[0].tolist() == [1, 2, 3]
        and parts[1] is None
        and parts[2].numel() == 0
        and parts[3].tolist() == [9]
    )
    assert labels.tolist() == [0, 1, 2, 1] and seeds == [5, 6, 7, 8] and paths == ["a", "b", "c", "d"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_decode_matches_cpu_decode(tree):
    cuda = torch.device("cuda")
    files = scan_folder(tree / "train")
    normalize = Normalizer(tiny_stats(224), Normalize.mean_image, cuda)
    transform = train_transform(Augment.paper, 224, (256, 480))
    cpu_path = StreamTrainBatches(
        files, transform, normalize, 4, seed=0, shard=Shard(cuda), decode=Decode.cpu
    )
    gpu_path = StreamTrainBatches(
        files, transform, normalize, 4, seed=0, shard=Shard(cuda), decode=Decode.gpu
    )
    for (x, y), (x2, y2) in zip(cpu_path.epoch(0), gpu_path.epoch(0)):
        assert x2.device.type == "cuda" and x2.shape == x.shape == (4, 3, 224, 224) and torch.equal(y, y2)
        assert (x - x2).abs().mean() < 3.0  # same crops; nvJPEG and the float resize differ by a few levels


@pytest.fixture
def tree_with_a_corrupt_jpeg(tree, tmp_path):
    root = tmp_path / "corrupt"
    for path in scan_folder(tree / "train").paths[:4]:
        target = root / "train" / os.path.relpath(path, tree / "train")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(open(path, "rb").read())
    bad = root / "train" / CLASSES[0] / "truncated.JPEG"
    bad.write_bytes(open(path, "rb").read()[:300])
    return root, bad


def test_a_corrupt_jpeg_is_named_and_skipped_or_refused(tree_with_a_corrupt_jpeg, caplog):
    root, bad = tree_with_a_corrupt_jpeg
    files = scan_folder(root / "train")
    transform = train_transform(Augment.paper, 32, (36, 48))
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    skip = BadImages(BadImage.skip)
    batches = StreamTrainBatches(files, transform, normalize, 5, seed=0, bad_images=skip)
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        for _ in range(2):
            ((images, labels),) = list(batches.epoch(0))
    assert images.shape[0] == labels.shape[0] == 4  # the batch goes on without the unreadable image
    assert skip.count == 1 and skip.paths == [str(bad)]
    warnings = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert len(warnings) == 1 and "1 unreadable" in warnings[0]  # named once, not every epoch
    refuse = BadImages(BadImage.error)
    batches = StreamTrainBatches(files, transform, normalize, 5, seed=0, bad_images=refuse)
    with pytest.raises(UserError, match=f"unreadable image {bad}"):
        list(batches.epoch(0))


def test_test_split_folder(tmp_path):
    from resnet_train.config import DatasetName

    (tmp_path / "val").mkdir()
    assert eval_folder(tmp_path, DatasetName.imagenet) == tmp_path / "val"
    assert eval_folder(tmp_path, DatasetName.imagefolder) == tmp_path / "val"
    (tmp_path / "test").mkdir()
    assert eval_folder(tmp_path, DatasetName.imagefolder) == tmp_path / "test"
    with pytest.raises(UserError, match="val/"):
        eval_folder(tmp_path / "test", DatasetName.imagenet)


# ---- end to end -------------------------------------------------------------------------------------------
def run(script, *args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two shared cores: one thread each is faster
    return subprocess.run(
        [console_script(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.slow
def test_train_resnet18_on_an_imagefolder_tree_then_evaluate_every_protocol(tree, tmp_path, capsys, caplog):
    bad = tree / "train" / CLASSES[1] / "corrupt.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    try:
        small = ["data.image_size=16", "data.scale_range=[18,24]", "data.test_resize=18", "data.workers=0"]
        trained = run(
            "resnet-train", "model=resnet18", "data=imagefolder", f"data.root={tree}", "data.num_classes=3",
            *small, "trainer.max_iters=4", "trainer.batch_size=4", "trainer.eval_every=4",
            "trainer.log_every=2", "trainer.device=cpu", "trainer.progress=false", "sched=paper_imagenet",
            "optim.lr=0.01",
            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
        )  # fmt: skip
    finally:
        bad.unlink()
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert str(bad) in trained.stdout + trained.stderr  # the corrupt JPEG is named, and the run goes on
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["iterations"] == 4 and metrics["dataset"] == "imagefolder"
    assert 0 <= metrics["test_error"] <= 1 and metrics["test_top5_error"] == 0.0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    # resnet-eval through its console script once (10-crop), then in-process for the other protocols.
    out = tmp_path / "ten.json"
    evaluated = run("resnet-eval", str(checkpoint), "eval.crops=ten", "--out", str(out), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    reports = {"ten": json.loads(evaluated.stdout)}
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
