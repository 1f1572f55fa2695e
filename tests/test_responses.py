"""Layer responses (Fig. 7): the numbers of resnet-responses against a hand computation on tiny nets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from matplotlib.image import imread
from torchvision.io import write_png

from resnet_train.analysis.responses import RunningStd, layer_responses
from resnet_train.cli import responses
from resnet_train.config import Family, config_from_plain, config_to_plain
from resnet_train.data import InputStats, Normalizer, load_splits
from resnet_train.engine.checkpoint import FORMAT_VERSION, save_checkpoint
from resnet_train.models import build_model, model_name


def hand_responses(model, images: torch.Tensor) -> list[torch.Tensor]:
    """Each 3x3 layer's output after BN, before the addition and the ReLU, by re-running the CIFAR net's
    layers one at a time (no hooks): stem conv-BN, then per block conv1-BN1 and conv2-BN2."""
    outputs = []
    response = model.stem.bn(model.stem.conv(images))
    outputs.append(response)
    x = F.relu(response)
    for stage in model.stages:
        for block in stage:
            first = block.bn1(block.conv1(x))
            second = block.bn2(block.conv2(F.relu(first)))
            outputs += [first, second]
            x = F.relu(second + block.shortcut(x) if block.shortcut is not None else second)
    return outputs


def population_std(tensors: list[torch.Tensor]) -> float:
    """The documented definition: std of all elements pooled, divisor N, in float64."""
    return torch.cat([t.flatten().double() for t in tensors]).std(correction=0).item()


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial running statistics and affine weights, so eval mode matters."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)


def test_running_std_matches_a_one_shot_std():
    generator = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 4, generator=generator) * 3 + 1000 for n in (1, 7, 30, 2)]  # a large offset
    running = RunningStd()
    for part in parts:
        running.update(part)
    assert running.count == sum(p.numel() for p in parts)
    assert running.std == pytest.approx(population_std(parts), rel=1e-12)


@pytest.mark.parametrize("residual", [True, False])
def test_layer_responses_match_a_hand_computation(residual):
    torch.manual_seed(0)
    model = build_model(Family.cifar, 8, residual, 10)
    randomize_bn(model)
    model.train()  # the tool must switch to eval mode itself, and switch back
    images = torch.randn(10, 3, 16, 16)
    batches = [(images[i : i + 3], None) for i in range(0, 10, 3)]  # 3, 3, 3, 1
    layers, seen = layer_responses(model, batches)
    assert model.training and seen == 10
    model.eval()
    with torch.no_grad():
        expected = hand_responses(model, images)
    assert len(layers) == len(expected) == 7  # the stem and two 3x3 convs in each of 3 blocks
    assert [layer.index for layer in layers] == list(range(1, 8))
    assert layers[0].name == "stem.bn" and layers[-1].name == "stages.2.0.bn2"
    for layer, output in zip(layers, expected):
        assert layer.std == pytest.approx(population_std([output]), rel=1e-5)


def test_max_images_stops_early():
    model = build_model(Family.cifar, 8, True, 10)
    images = torch.randn(10, 3, 16, 16)
    layers, seen = layer_responses(model, [(images[:4], None), (images[4:], None)], max_images=6)
    model.eval()
    with torch.no_grad():
        expected = hand_responses(model, images[:6])
    assert seen == 6 and layers[3].std == pytest.approx(population_std([expected[3]]), rel=1e-5)


def plain_config(**changes) -> dict:
    """A resolved config as the engine stores it in a checkpoint: plain values, enums by name."""

    return config_to_plain(config_from_plain(changes))


def write_checkpoint(directory: Path, config: dict, seed: int) -> tuple[Path, torch.nn.Module]:
    m = config["model"]
    torch.manual_seed(seed)
    model = build_model(
        Family[m["family"]], m["depth"], m["residual"], 10, input_size=config["data"]["image_size"]
    )
    randomize_bn(model, seed)
    identity = {"model": model_name(m["residual"], m["depth"])}
    size = config["data"]["image_size"]
    splits = load_splits("synthetic", "", num_classes=10, image_size=size, train_size=64, test_size=12)
    inputs = {"classes": splits.classes, "stats": InputStats.fit(splits.train.images).state_dict()}
    state = {"format": FORMAT_VERSION, "model": model.state_dict(), "config": config, "input": inputs}
    path = save_checkpoint(directory, {**state, "identity": identity})
    return path, model.eval()


SYNTHETIC = {"name": "synthetic", "num_classes": 10, "image_size": 16, "train_size": 64, "test_size": 12}


def test_cli_numbers_match_a_hand_computation_on_the_runs_test_set(tmp_path):
    paths, expected = [], []
    for seed, residual in enumerate([True, False]):
        config = plain_config(model={"depth": 8, "residual": residual}, data=SYNTHETIC)
        path, model = write_checkpoint(tmp_path / f"run{seed}" / "checkpoints", config, seed)
        paths.append(str(path))
        # The test set the run used, normalised with its training set's statistics, as the trainer does.
        splits = load_splits(
            "synthetic", "unused", num_classes=10, image_size=16, train_size=64, test_size=12
        )
        with torch.no_grad():
            normalize = Normalizer(InputStats.fit(splits.train.images))
            outputs = hand_responses(model, normalize(splits.test.images))
        expected.append([population_std([output]) for output in outputs])

    out, out_json, out_csv = tmp_path / "fig7.png", tmp_path / "fig7.json", tmp_path / "fig7.csv"
    argv = [*paths, "--batch-size", "5", "--out", str(out), "--json", str(out_json), "--csv", str(out_csv)]
    assert responses.main(argv) == 0

    results = json.loads(out_json.read_text())
    assert [r["model"] for r in results] == ["resnet8", "plain8"]
    assert [r["images"] for r in results] == [12, 12]
    for result, stds in zip(results, expected):
        assert [layer["std"] for layer in result["layers"]] == pytest.approx(stds, rel=1e-5)
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 14
    first = [row for row in rows if row["model"] == "resnet8"]
    assert [float(row["std"]) for row in first] == pytest.approx(expected[0], rel=1e-5)
    by_rank = sorted(first, key=lambda row: int(row["rank"]))
    assert [float(row["std"]) for row in by_rank] == pytest.approx(
        sorted(expected[0], reverse=True), rel=1e-5
    )
    image = imread(out)
    assert image[..., :3].std() > 0.05


def test_data_root_replaces_the_stored_one(tmp_path):
    """A CIFAR-10 run whose data moved: --data-root points at a tiny ImageFolder tree (train/, test/)."""
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 2), ("test", 1)):
        for label in range(10):
            folder = tmp_path / "data" / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=generator)
                write_png(image, str(folder / f"{index}.png"))
    config = plain_config(model={"depth": 8}, data={"name": "cifar10", "root": str(tmp_path / "moved")})
    path, _ = write_checkpoint(tmp_path / "run" / "checkpoints", config, 0)
    assert responses.main([str(path), "--json", str(tmp_path / "r.json")]) == 2  # the stored root is gone
    assert (
        responses.main([str(path), "--data-root", str(tmp_path / "data"), "--json", str(tmp_path / "r.json")])
        == 0
    )
    (result,) = json.loads((tmp_path / "r.json").read_text())
    assert result["images"] == 10 and result["dataset"] == "cifar10" and len(result["layers"]) == 7


def test_a_file_that_is_not_a_checkpoint_is_an_error(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    assert responses.main([str(tmp_path / "x.pt")]) == 2
    assert responses.main([str(tmp_path / "missing.pt")]) == 2
