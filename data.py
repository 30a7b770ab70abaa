"""MNIST for the lecture-11 scripts: each split held once, as one uint8 tensor on the training device, and normalized
batch by batch.

Why not the lecture's DataLoader + ToTensor() + Normalize()? For 28x28 images that per-image pipeline (a PIL image,
two transforms and a collate for every image) takes a large part of a CPU epoch. Here a batch is one indexing of a
tensor that already sits where the model runs. The numbers are the same: tests/test_data.py checks the batches
against torchvision's own transforms. (The lecture's DataLoader still slots in: docs/performance.md shows how.)
"""

import math

import torch

# Finds the four files in DATA_DIR, checks them, downloads them on a first run: the machinery, not the lesson.
from helpers import read_mnist

MEAN, STD = 0.1307, 0.3081  # mean and std of MNIST's training pixels, on ToTensor's 0..1 scale
TEST_BATCH_SIZE = 200  # evaluation: fewer steps than 64; far larger batches fall out of CPU cache (slower, more memory)


def normalize(images):
    """uint8 pixels -> float32, the same numbers as torchvision's ToTensor() then Normalize((MEAN,), (STD,))."""
    return images.float().div_(255).sub_(MEAN).div_(STD)


class Batches:
    """(images, labels) batches cut from two tensors on the device; images are normalized per batch.

    With shuffle=True every pass visits all images once in a new order drawn from its own seeded
    generator; otherwise the order is fixed. The last batch may be smaller.
    """

    def __init__(self, images, labels, batch_size, shuffle=False, seed=0):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed) if shuffle else None

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        # The permutation is drawn on the CPU, so a seed gives the same order on every device.
        order = None if self.generator is None else torch.randperm(n, generator=self.generator).to(self.labels.device)
        for start in range(0, n, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start : start + self.batch_size]
            yield normalize(self.images[index]), self.labels[index]


def mnist_loaders(data_dir, batch_size, device, seed=0):
    """Train and test batches of MNIST from data_dir (downloaded there first if missing) on device."""
    # uint8 images (N, 1, 28, 28) and int64 labels, on the CPU: 47 MB for the training set, moved once to the device.
    (train_images, train_labels), (test_images, test_labels) = read_mnist(data_dir)
    return (
        Batches(train_images.to(device), train_labels.to(device), batch_size, shuffle=True, seed=seed),
        Batches(test_images.to(device), test_labels.to(device), TEST_BATCH_SIZE),
    )
