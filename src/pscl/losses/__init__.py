"""Losses as pure tensor functions, formula in each docstring."""
from pscl.losses.segmentation import class_weights, segmentation_loss, soft_dice_loss

__all__ = ["class_weights", "segmentation_loss", "soft_dice_loss"]
