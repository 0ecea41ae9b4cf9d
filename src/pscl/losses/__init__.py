"""Losses as pure tensor functions, formula in each docstring."""
from pscl.losses.contrastive import (alignment_uniformity, byol_loss, dense_correspondence, info_nce,
                                     nt_xent, prototype_info_nce)
from pscl.losses.segmentation import (affinity_loss, class_counts, class_weights, segmentation_loss,
                                      soft_dice_loss)

__all__ = ["affinity_loss", "alignment_uniformity", "byol_loss", "class_counts", "class_weights", "dense_correspondence", "info_nce", "nt_xent", "prototype_info_nce",
           "segmentation_loss", "soft_dice_loss"]
