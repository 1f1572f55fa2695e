"""Test-time views (engine/evaluate.py): 10-crop and multi-scale scores, and a ResNet run fully
convolutionally at every scale (Sec. 3.4)."""

from __future__ import annotations

import torch
from imagetree import CPU, tiny_stats

from resnet_train.config import Normalize
from resnet_train.data.augment import scale_views
from resnet_train.data.files import decode_rgb, read_bytes, scan_folder
from resnet_train.data.normalize import Normalizer
from resnet_train.data.stream import StreamEvalBatches
from resnet_train.engine.evaluate import evaluate, view_scores


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
    result = evaluate(net, batches, CPU)
    assert 0 <= result.error <= 1 and result.top5_error == 0.0  # 3 classes: the truth is always in the top 5
