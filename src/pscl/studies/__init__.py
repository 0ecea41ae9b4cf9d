"""Studies of a dataset and of pretrained features: the linear probe, and which image to annotate."""
