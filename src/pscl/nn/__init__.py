"""Networks: the U-Net (encoder, decoder, classifier)."""
from pscl.nn.unet import UNet, UNetDecoder, UNetEncoder, UNetOutput

__all__ = ["UNet", "UNetDecoder", "UNetEncoder", "UNetOutput"]
