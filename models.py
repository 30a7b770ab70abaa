"""The two nets of lecture 11 (Advanced CNNs), exactly as the lecture builds them for 1x28x28 MNIST.

InceptionNet: conv 5x5 -> pool -> InceptionA -> conv 5x5 -> pool -> InceptionA -> linear  (97,298 parameters)
ResidualNet:  conv 5x5 -> pool -> ResidualBlock -> conv 5x5 -> pool -> ResidualBlock -> linear  (41,514)

Both return logits (no softmax): CrossEntropyLoss applies log-softmax itself.
"""
import torch
import torch.nn.functional as F
from torch import nn


class InceptionA(nn.Module):
    """Four branches side by side, concatenated along channels: 16 + 24 + 24 + 24 = 88 channels out.

    Every branch keeps height and width (1x1 kernels, or padding = kernel_size // 2), so the outputs
    can be stacked. The 1x1 convolutions in front of the 5x5 and 3x3 ones shrink the channels first,
    which makes the big kernels cheap.
    """

    out_channels = 88

    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, kernel_size=1)

        self.branch5x5_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_2 = nn.Conv2d(16, 24, kernel_size=5, padding=2)

        self.branch3x3_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch3x3_2 = nn.Conv2d(16, 24, kernel_size=3, padding=1)
        self.branch3x3_3 = nn.Conv2d(24, 24, kernel_size=3, padding=1)

        self.branch_pool = nn.Conv2d(in_channels, 24, kernel_size=1)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch5x5, branch3x3, branch_pool], dim=1)


class InceptionNet(nn.Module):
    """The lecture's GoogLeNet-style net: (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)  # 28x28 -> 24x24, pooled to 12x12
        self.conv2 = nn.Conv2d(InceptionA.out_channels, 20, kernel_size=5)  # 12x12 -> 8x8, pooled to 4x4
        self.incep1 = InceptionA(in_channels=10)
        self.incep2 = InceptionA(in_channels=20)
        self.mp = nn.MaxPool2d(2)
        self.l1 = nn.Linear(InceptionA.out_channels * 4 * 4, 10)  # 1408 features

    def forward(self, x):
        x = F.relu(self.mp(self.conv1(x)))
        x = self.incep1(x)
        x = F.relu(self.mp(self.conv2(x)))
        x = self.incep2(x)
        # flatten, not view: view fails on channels_last tensors; flatten keeps the (C, H, W) order.
        return self.l1(torch.flatten(x, 1))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions whose output is added to the block's input: relu(x + conv2(relu(conv1(x)))).

    Input and output have the same shape, which is what lets the addition (the skip connection) work.
    """

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x):
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        return F.relu(x + y)


class ResidualNet(nn.Module):
    """The lecture's small residual net: (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)  # 28x28 -> 24x24, pooled to 12x12
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)  # 12x12 -> 8x8, pooled to 4x4
        self.res1 = ResidualBlock(16)
        self.res2 = ResidualBlock(32)
        self.mp = nn.MaxPool2d(2)
        self.l1 = nn.Linear(32 * 4 * 4, 10)  # 512 features

    def forward(self, x):
        # The lecture writes mp(relu(conv(x))). relu(mp(...)) gives exactly the same numbers, because
        # the max of relus is the relu of the max, but applies relu to a quarter of the values.
        x = F.relu(self.mp(self.conv1(x)))
        x = self.res1(x)
        x = F.relu(self.mp(self.conv2(x)))
        x = self.res2(x)
        return self.l1(torch.flatten(x, 1))


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
