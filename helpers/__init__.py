"""The machinery around lecture 11's two scripts (flags, device, run folders, checkpoints and --resume, stops, figures,
the comparison of runs, finding and fetching MNIST's files). A learner need not read it: train_inception.py and
train_resnet.py are the lesson."""

from .device import memory_format, pick_device
from .mnist import read_mnist
from .run import Run

__all__ = ["Run", "memory_format", "pick_device", "read_mnist"]
