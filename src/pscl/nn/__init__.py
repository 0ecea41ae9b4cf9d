"""Networks: the U-Net (encoder, decoder, classifier)."""
from pscl.nn.unet import UNet, UNetDecoder, UNetEncoder, UNetOutput

__all__ = ["UNet", "UNetDecoder", "UNetEncoder", "UNetOutput"]
from pscl.nn.heads import DenseHead, GlobalHead, PredictorHead  # noqa: E402

__all__ += ["DenseHead", "GlobalHead", "PredictorHead"]
