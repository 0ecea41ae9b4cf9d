"""Data: dataset folders, image I/O and normalisation, synthetic micrographs."""
from pscl.data.folders import DatasetFolder, list_images, load_dataset
from pscl.data.labels import check_dataset
from pscl.data.io import (IGNORE_INDEX, DataError, load_micrograph, normalize_intensity,
                          read_image, read_mask)
from pscl.data.synth import CLASSES as SYNTH_CLASSES, synth_micrograph, synthesize_dataset

__all__ = ["DatasetFolder", "check_dataset", "list_images", "load_dataset", "IGNORE_INDEX",
           "DataError", "load_micrograph", "normalize_intensity", "read_image", "read_mask",
           "SYNTH_CLASSES", "synth_micrograph", "synthesize_dataset"]
