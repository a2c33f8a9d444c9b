"""Self-supervised pretraining for the network nnU-Net v2 plans."""

__version__ = "0.1.0"
