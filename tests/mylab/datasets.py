"""A dataset of one's own, held in memory: an entry of resnet_train's `Dataset` with a reader, chosen with
`data.name=mylab.datasets.stripes`. An SVHN would read `torchvision.datasets.SVHN(root, split=...)` the
same way; this one is made from a seed, as no download is possible in the tests."""

import torch

from resnet_train.data import Dataset
from resnet_train.data.readers import ImageSet


def read_stripes(d, root):
    """(train, test): 16x16 images of horizontal or vertical stripes, with noise."""
    generator = torch.Generator().manual_seed(0)

    def draw(count):
        labels = torch.randint(2, (count,), generator=generator)
        stripes = (torch.arange(16) % 4 < 2).float()
        patterns = torch.stack([stripes[:, None].expand(16, 16), stripes[None, :].expand(16, 16)])
        images = patterns[labels][:, None].expand(count, 3, 16, 16) * 180 + 40
        images = images + 30 * torch.randn(count, 3, 16, 16, generator=generator)
        return ImageSet(images.clamp(0, 255).to(torch.uint8), labels, ["horizontal", "vertical"])

    return draw(128), draw(64)


stripes = Dataset(read=read_stripes, num_classes=2, image_size=16)
