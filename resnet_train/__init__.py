"""Config-driven reproduction of He et al., Deep Residual Learning for Image Recognition (CVPR 2016)."""

__version__ = "0.1.0"


def load_model(path, device="cpu"):
    """The trained net of a resnet-train checkpoint, in eval mode (see resnet_train.engine.restore)."""
    from .engine.restore import load_model as load

    return load(path, device)
