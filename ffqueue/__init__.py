"""ffqueue: a distributed job queue for model-decay experiments."""

__version__ = "0.1.0"
