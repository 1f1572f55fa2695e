"""The networks against the paper (He et al. 2016): sizes, compute, shortcut options, plain twins, init."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from paper import CIFAR_PARAMS, IMAGENET_MACS
from torch import nn
from torch.overrides import TorchFunctionMode

from resnet_train.config import BottleneckStride, Family, ModelConfig, Stem, config_dir
from resnet_train.errors import UserError
from resnet_train.models import (
    ResNet,
    build_model,
    count_macs,
    count_parameters,
    make_shortcut,
    model_name,
    parse_model_name,
)
from resnet_train.models.blocks import BasicBlock, Bottleneck
from resnet_train.models.shortcuts import PadShortcut, ProjectionShortcut

CIFAR, IMAGENET = Family.cifar, Family.imagenet


def on_meta(*args, **kwargs) -> ResNet:
    """A net with shape-only weights: for counting, where the values do not matter."""
    with torch.device("meta"):
        return build_model(*args, **kwargs)


def seeded(*args, seed: int = 0, **kwargs) -> ResNet:
    torch.manual_seed(seed)
    return build_model(*args, **kwargs)


def projections(model: nn.Module) -> int:
    return sum(isinstance(m, ProjectionShortcut) for m in model.modules())


# --- sizes and compute --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "depth", [pytest.param(d, marks=pytest.mark.slow) if d == 1202 else d for d in CIFAR_PARAMS]
)
def test_cifar_parameter_counts_match_the_paper(depth):
    for residual in (True, False):  # plain twins have the same parameters under option A
        model = build_model(CIFAR, depth, residual, 10, shortcut="A")
        assert count_parameters(model) == CIFAR_PARAMS[depth], model_name(residual, depth)


@pytest.mark.parametrize("depth", IMAGENET_MACS)
def test_imagenet_macs_match_table_1(depth):
    model = on_meta(IMAGENET, depth, True, 1000, shortcut="B", input_size=224)
    assert count_macs(model, 224) == pytest.approx(IMAGENET_MACS[depth], rel=0.02)


def test_v1_5_resnet50_costs_more():
    # Striding the 3x3 instead of the first 1x1: about 4.09e9 multiply-adds (torchvision's ResNet-50).
    v1_5 = on_meta(IMAGENET, 50, True, 1000, shortcut="B", bottleneck_stride=BottleneckStride.v1_5)
    assert count_macs(v1_5, 224) == pytest.approx(4.09e9, rel=0.01)


# The counts of the forward-hook counter that FlopCounterMode replaced (conv: outputs x in/groups x kh x kw;
# linear: in x out), exact: the library's count must be the same number, not an approximation of it.
HOOK_COUNTS = [
    ((CIFAR, 20, True), {}, 32, 40_614_400),
    ((CIFAR, 56, False), {}, 32, 125_549_056),
    ((CIFAR, 110, True), {"shortcut": "B"}, 32, 253_213_184),
    ((IMAGENET, 18, True), {"shortcut": "C"}, 224, 1_878_298_624),
    ((IMAGENET, 34, False), {}, 64, 4_612_935_680),
    ((IMAGENET, 50, True), {"shortcut": "B"}, 224, 3_857_973_248),
    ((IMAGENET, 50, True), {"shortcut": "B", "bottleneck_stride": "v1_5"}, 224, 4_089_184_256),
    ((IMAGENET, 152, True), {"shortcut": "B"}, 224, 11_282_415_616),
]


@pytest.mark.parametrize(("net", "options", "size", "macs"), HOOK_COUNTS)
def test_macs_are_exactly_the_convolutions_and_the_fc_layer(net, options, size, macs):
    model = on_meta(*net, 1000, input_size=size, **options)
    assert count_macs(model, size) == macs


def test_count_macs_leaves_the_model_as_it_was():
    model = build_model(CIFAR, 8, True, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert count_macs(model, 32) > 0 and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- shortcut options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family,depth", [(CIFAR, 20), (CIFAR, 56), (IMAGENET, 18), (IMAGENET, 34)])
def test_option_a_adds_no_parameters(family, depth):
    residual = on_meta(family, depth, True, 10, shortcut="A")
    plain = on_meta(family, depth, False, 10)
    assert count_parameters(residual) == count_parameters(plain)
    assert projections(residual) == 0


@pytest.mark.parametrize(
    "depth,option,expected",
    [
        (34, "B", 3),  # conv3_1, conv4_1, conv5_1: where the dimensions increase
        (50, "B", 4),  # and conv2_1, whose bottleneck widens 64 -> 256 (as the released Caffe models)
        (34, "C", 16),  # every block: 3 + 4 + 6 + 3
        (50, "C", 16),
    ],
)
def test_projection_shortcuts_sit_where_the_paper_puts_them(depth, option, expected):
    model = on_meta(IMAGENET, depth, True, 1000, shortcut=option)
    assert projections(model) == expected
    extra = count_parameters(model) - count_parameters(on_meta(IMAGENET, depth, False, 1000))
    assert extra == sum(count_parameters(m) for m in model.modules() if isinstance(m, ProjectionShortcut))


def test_make_shortcut_choices():
    assert make_shortcut(None, 16, 32, 2) is None
    assert isinstance(make_shortcut("A", 16, 16, 1), nn.Identity)
    assert isinstance(make_shortcut("A", 16, 32, 2), PadShortcut)
    assert isinstance(make_shortcut("B", 16, 16, 1), nn.Identity)
    assert isinstance(make_shortcut("B", 64, 256, 1), ProjectionShortcut)
    assert isinstance(make_shortcut("C", 16, 16, 1), ProjectionShortcut)
    pad = make_shortcut("A", 64, 256, 1)  # a bottleneck's first stage under option A: zeros, no stride
    assert (pad.pad_before, pad.pad_after, pad.stride) == (96, 96, 1)
    with pytest.raises(UserError, match="A, B, C"):
        make_shortcut("D", 16, 32, 2)
    with pytest.raises(UserError, match="A, B, C"):
        build_model(CIFAR, 20, True, 10, shortcut="a")


def test_option_a_layout():
    x = torch.arange(1, 1 + 2 * 2 * 5 * 5, dtype=torch.float32).reshape(2, 2, 5, 5)
    y = PadShortcut(2, 5, stride=2)(x)
    assert y.shape == (2, 5, 3, 3)  # ceil(5 / 2), the size of a 3x3 stride-2 conv with padding 1
    # Channels: (5 - 2) // 2 = 1 zero channel before the input's two, the other 2 after.
    assert torch.count_nonzero(y[:, [0, 3, 4]]) == 0
    # Spatial: rows and columns 0, 2, 4 of the input.
    torch.testing.assert_close(y[:, 1:3], x[:, :, 0::2, 0::2])
    assert y[0, 1, 1, 2].item() == x[0, 0, 2, 4].item()


# --- plain nets ---------------------------------------------------------------------------------------------


class CountAdditions(TorchFunctionMode):
    ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__,
            torch.Tensor.__radd__}  # fmt: skip

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func in self.ADDS
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("residual,expected", [(False, 0), (True, 9)])  # resnet20: 3 stages x 3 blocks
def test_only_residual_nets_add(residual, expected):
    model = build_model(CIFAR, 20, residual, 10).eval()  # eval: BN's train-mode counter update is an add
    with torch.no_grad(), CountAdditions() as mode:
        model(torch.randn(2, 3, 32, 32))
    assert mode.count == expected


def test_plain_net_is_a_plain_stack_of_its_layers():
    model = seeded(CIFAR, 14, False, 10).eval()
    layers = [model.stem]
    for block in (b for stage in model.stages for b in stage):
        layers += [block.conv1, block.bn1, nn.ReLU(), block.conv2, block.bn2, nn.ReLU()]
    stack = nn.Sequential(*layers, model.pool, nn.Flatten(), model.fc)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), stack(x), rtol=0, atol=0)


def test_residual_block_adds_its_input_to_the_plain_branch():
    residual = BasicBlock(16, 16, 1, "A", BottleneckStride.v1, False).eval()
    plain = BasicBlock(16, 16, 1, None, BottleneckStride.v1, False).eval()
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        branch = residual.bn2(residual.conv2(torch.relu(residual.bn1(residual.conv1(x)))))
        torch.testing.assert_close(residual(x), torch.relu(branch + x))
        torch.testing.assert_close(plain(x), torch.relu(branch))
        assert not torch.allclose(residual(x), plain(x))


def test_a_net_name_parses_back_to_what_it_names():
    for residual, depth in [(True, 20), (False, 56), (True, 1202), (False, 18)]:
        assert parse_model_name(model_name(residual, depth)) == (residual, depth)
    for name in ("resnet", "resnet-50", "Resnet50", "plain20x", "vgg16"):
        with pytest.raises(ValueError, match="not a net's name"):
            parse_model_name(name)


# --- every model config -------------------------------------------------------------------------------------

CONFIGS = sorted((Path(config_dir()) / "model").glob("*.yaml"))
BIG = ("101", "110", "152")  # slow on 2 CPU cores
GRADIENT_CHECKED = {"resnet18", "resnet50"} | {
    f"{k}{d}" for k in ("resnet", "plain") for d in (20, 32, 44, 56)
}


def load_model_config(path: Path):
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path))


def config_params(path: Path):
    marks = [pytest.mark.slow] if path.stem.endswith(BIG) else []
    return pytest.param(path, marks=marks, id=path.stem)


@pytest.mark.parametrize("path", [config_params(p) for p in CONFIGS if p.stem != "resnet1202"])
def test_every_model_config_builds_and_runs(path):
    m = load_model_config(path)
    num_classes = 10 if m.family is CIFAR else 1000
    # ImageNet nets: a 64 px input through the real 7x7/2 stem keeps the test fast and still exercises it.
    size, stem = (32, m.stem) if m.family is CIFAR else (64, Stem.imagenet)
    model = seeded(
        m.family, m.depth, m.residual, num_classes, shortcut=m.shortcut,
        bottleneck_stride=m.bottleneck_stride, stem=stem, input_size=size,
        zero_init_residual=m.zero_init_residual,
    )  # fmt: skip
    assert model.residual == m.residual and model_name(m.residual, m.depth) == path.stem
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, num_classes) and torch.isfinite(out).all()
    if path.stem in GRADIENT_CHECKED:
        out.logsumexp(dim=1).sum().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


@pytest.mark.slow
def test_resnet1202_config_builds():
    m = load_model_config(Path(config_dir()) / "model" / "resnet1202.yaml")
    assert (
        count_parameters(on_meta(m.family, m.depth, m.residual, 10, shortcut=m.shortcut))
        == CIFAR_PARAMS[1202]
    )


# --- stems, depths ------------------------------------------------------------------------------------------


def test_auto_stem_follows_the_input_size():
    small = on_meta(IMAGENET, 18, True, 10, input_size=32)
    assert small.stem.conv.kernel_size == (3, 3) and small.stem.conv.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.stem)
    full = on_meta(IMAGENET, 18, True, 1000, input_size=224)
    assert full.stem.conv.kernel_size == (7, 7) and full.stem.conv.stride == (2, 2)
    assert isinstance(full.stem.pool, nn.MaxPool2d)
    assert on_meta(IMAGENET, 18, True, 1000).stem.conv.kernel_size == (7, 7)  # None: ImageNet's 224
    forced = on_meta(IMAGENET, 18, True, 10, stem=Stem.imagenet, input_size=32)
    assert forced.stem.conv.kernel_size == (7, 7)
    cifar = on_meta(CIFAR, 20, True, 10)
    assert cifar.stem.conv.kernel_size == (3, 3) and cifar.stem.conv.out_channels == 16
    with pytest.raises(ValueError, match="CIFAR nets always use"):
        build_model(CIFAR, 20, True, 10, stem=Stem.imagenet)


@pytest.mark.parametrize(
    "family,depth,message",
    [(CIFAR, 21, r"6n\+2 layers.*20, 32, 44, 56, 110, 1202.*got 21"), (CIFAR, 2, "got 2"),
     (IMAGENET, 40, "18, 34, 50, 101 or 152.*got 40"), (IMAGENET, 20, "got 20")],
)  # fmt: skip
def test_wrong_depth_is_refused_with_the_valid_ones(family, depth, message):
    with pytest.raises(ValueError, match=message):
        build_model(family, depth, True, 10)


def test_smallest_cifar_net_runs():
    model = build_model(CIFAR, 8, True, 10)  # n = 1
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bottleneck_stride_placement():
    v1 = Bottleneck(256, 128, 2, "B", BottleneckStride.v1, False)
    assert (v1.conv1.stride, v1.conv2.stride) == ((2, 2), (1, 1))  # the paper's: on the first 1x1
    v1_5 = Bottleneck(256, 128, 2, "B", BottleneckStride.v1_5, False)
    assert (v1_5.conv1.stride, v1_5.conv2.stride) == ((1, 1), (2, 2))  # torchvision's: on the 3x3


def test_response_layers_are_the_3x3_layers_before_the_addition():
    model = build_model(CIFAR, 20, True, 10).eval()
    layers = model.response_layers()
    assert len(layers) == 19  # 6n+2 layers = 6n+1 3x3 convs and the fc
    seen = []
    handles = [
        bn.register_forward_hook(lambda mod, i, out: seen.append(out.min().item())) for _, bn in layers
    ]
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    for handle in handles:
        handle.remove()
    assert len(seen) == 19 and all(v < 0 for v in seen)  # before the ReLU: negative values survive


# --- init -----------------------------------------------------------------------------------------------


def test_he_init():
    model = seeded(CIFAR, 20, True, 10)
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 9000):
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_zero_init_residual_zeroes_only_the_last_bn_of_residual_blocks():
    model = build_model(CIFAR, 8, True, 10, zero_init_residual=True)
    for block in (b for stage in model.stages for b in stage):
        assert torch.all(block.bn2.weight == 0) and torch.all(block.bn1.weight == 1)
    assert torch.all(model.stem.bn.weight == 1)
    bottleneck = Bottleneck(64, 64, 1, "B", BottleneckStride.v1, True)
    assert torch.all(bottleneck.bn3.weight == 0) and torch.all(bottleneck.shortcut.bn.weight == 1)
    plain = build_model(CIFAR, 8, False, 10, zero_init_residual=True)  # zeroing a plain block cuts the signal
    assert all(torch.all(m.weight == 1) for m in plain.modules() if isinstance(m, nn.BatchNorm2d))
