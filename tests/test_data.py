import pytest
import torch
from PIL import Image

from resnet_train.data import ImageSet, InputStats, Normalizer, Shard, load_splits
from resnet_train.data.augment import PAD, crop_and_flip
from resnet_train.data.memory import MemoryEvalBatches, MemoryTrainBatches
from resnet_train.errors import UserError

CPU = torch.device("cpu")


def tiny_set(count=40, size=8, classes=4):
    images = torch.arange(count * 3 * size * size, dtype=torch.int64).reshape(count, 3, size, size) % 251
    return ImageSet(images.to(torch.uint8), torch.arange(count) % classes, [str(c) for c in range(classes)])


def test_crop_and_flip_matches_a_hand_crop():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    offsets = torch.tensor([[0, 0], [2 * PAD, 3]])
    flips = torch.tensor([False, True])
    out = crop_and_flip(images, offsets, flips)
    padded = torch.nn.functional.pad(images, (PAD,) * 4)
    assert torch.equal(out[0], padded[0, :, 0:6, 0:6])
    assert torch.equal(out[1], padded[1, :, 8:14, 3:9].flip(-1))


def test_center_offset_without_flip_is_the_identity():
    images = torch.randn(3, 3, 5, 5)
    out = crop_and_flip(images, torch.full((3, 2), PAD), torch.zeros(3, dtype=torch.bool))
    assert torch.equal(out, images)


def test_normalizer_subtracts_the_per_pixel_mean():
    data = tiny_set()
    normalize = Normalizer(InputStats.fit(data.images))
    out = normalize(data.images)
    assert out.mean(dim=0).abs().max() < 1e-4  # every pixel position has zero mean
    assert out.std().item() == pytest.approx(1.0, rel=0.05)


def test_each_sample_once_per_epoch_across_ranks_and_same_batches_as_one_rank():
    data = tiny_set(count=40)
    normalize = Normalizer(InputStats.fit(data.images))
    single = MemoryTrainBatches(data, normalize, 8, seed=3, augment=False)
    shards = [
        MemoryTrainBatches(data, normalize, 8, seed=3, shard=Shard(CPU, r, 2), augment=False)
        for r in range(2)
    ]
    seen = []
    for (x, y), (x0, y0), (x1, y1) in zip(single.epoch(0), shards[0].epoch(0), shards[1].epoch(0)):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
        seen.append(x)
    assert len(seen) == single.iters_per_epoch == 5
    rows = torch.cat(seen).flatten(1)
    assert len(torch.unique(rows, dim=0)) == 40  # no repeats: every sample exactly once


def test_order_depends_on_seed_and_epoch_and_resumes_mid_epoch():
    data = tiny_set(count=40)
    normalize = Normalizer(InputStats.fit(data.images))
    batches = MemoryTrainBatches(data, normalize, 8, seed=1)
    epoch0 = [y for _, y in batches.epoch(0)]
    assert not all(torch.equal(a, b) for a, b in zip(epoch0, [y for _, y in batches.epoch(1)]))
    again = [x for x, _ in batches.epoch(0)]
    resumed = [x for x, _ in batches.epoch(0, start=3)]
    assert all(torch.equal(a, b) for a, b in zip(again[3:], resumed))


def test_eval_batches_cover_every_sample_once_across_ranks():
    data = tiny_set(count=23)
    normalize = Normalizer(InputStats.fit(data.images))
    labels = []
    for rank in range(3):
        labels += [y for _, y in MemoryEvalBatches(data, normalize, 4, shard=Shard(CPU, rank, 3))]
    assert sorted(torch.cat(labels).tolist()) == sorted(data.labels.tolist())


def test_batch_must_divide_among_ranks():
    data = tiny_set()
    with pytest.raises(UserError, match="does not divide"):
        MemoryTrainBatches(data, Normalizer(InputStats.fit(data.images)), 9, seed=0, shard=Shard(CPU, 0, 2))


def test_a_training_set_smaller_than_one_batch_is_refused():
    data = tiny_set(count=10)
    with pytest.raises(UserError, match="fewer than one batch of 16"):
        MemoryTrainBatches(data, Normalizer(InputStats.fit(data.images)), 16, seed=0)


def test_synthetic_splits_are_labelled_synthetic():
    splits = load_splits(
        "synthetic", "", num_classes=3, image_size=8, train_size=30, test_size=10, val_size=6
    )
    assert splits.synthetic and splits.num_classes == 3
    assert len(splits.train) == 24 and len(splits.val) == 6 and len(splits.test) == 10


def test_missing_cifar_names_what_and_where(tmp_path):
    with pytest.raises(UserError) as error:
        load_splits("cifar10", str(tmp_path))
    message = str(error.value)
    assert (
        "cifar-10-python.tar.gz" in message and str(tmp_path) in message and "data.download=true" in message
    )


def test_partial_cifar_folder_lists_missing_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(UserError, match="missing data_batch_2.*test_batch"):
        load_splits("cifar10", str(tmp_path))


def write_tree(root, classes=2, per_class=3, size=8, splits=("train", "test")):
    for split in splits:
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (size, size), (40 * c, 10 * i, 100)).save(folder / f"{i}.jpg")


def test_image_folder_tree_is_read_with_sorted_class_labels(tmp_path):
    write_tree(tmp_path)
    splits = load_splits("cifar10", str(tmp_path), num_classes=2)
    assert splits.train.images.shape == (6, 3, 8, 8) and splits.train.images.dtype == torch.uint8
    assert splits.train.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_an_in_memory_image_folder_tests_on_val_when_there_is_no_test_folder(tmp_path):
    write_tree(tmp_path, per_class=3, splits=("train",))
    write_tree(tmp_path, per_class=2, splits=("val",))
    splits = load_splits("imagefolder", str(tmp_path), num_classes=2)
    assert len(splits.train) == 6 and splits.test.labels.tolist() == [0, 0, 1, 1]


def test_image_folder_with_wrong_class_count_is_refused(tmp_path):
    write_tree(tmp_path, classes=3)
    with pytest.raises(UserError, match="3 class folders but the config expects 10"):
        load_splits("cifar10", str(tmp_path), num_classes=10)


def test_undecodable_image_is_named(tmp_path):
    write_tree(tmp_path)
    bad = tmp_path / "train" / "class1" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg at all")
    with pytest.raises(UserError, match="broken.jpg"):
        load_splits("cifar10", str(tmp_path), num_classes=2)


def test_a_test_folder_whose_classes_differ_from_trains_is_refused(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "test" / "class1").rename(tmp_path / "test" / "zeppelin")
    with pytest.raises(UserError, match="class folders that the training set lacks: zeppelin"):
        load_splits("cifar10", str(tmp_path), num_classes=2)


def test_an_empty_image_in_a_tree_is_one_error_naming_it(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "test" / "class0" / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="empty.jpg: empty file"):
        load_splits("cifar10", str(tmp_path), num_classes=2)


def test_a_tree_without_test_names_the_missing_folder(tmp_path):
    write_tree(tmp_path, splits=("train",))
    with pytest.raises(UserError, match="test is missing: an ImageFolder tree needs test/"):
        load_splits("cifar10", str(tmp_path), num_classes=2)


def test_an_image_of_another_size_is_named(tmp_path):
    write_tree(tmp_path)
    Image.new("RGB", (64, 64)).save(tmp_path / "train" / "class1" / "big.jpg")
    with pytest.raises(UserError, match="big.jpg is 64x64, but .*0.jpg is 8x8"):
        load_splits("cifar10", str(tmp_path), num_classes=2)
