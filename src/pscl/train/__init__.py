"""Training stages: self-supervised pretraining, fine-tuning, and the Lightning trainer recipe they share."""
