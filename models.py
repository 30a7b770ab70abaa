"""The two nets of lecture 11 (Advanced CNNs), exactly as the lecture builds them for 1x28x28 MNIST.

InceptionNet: conv 5x5 -> pool -> InceptionA -> conv 5x5 -> pool -> InceptionA -> linear  (97,298 parameters)
ResidualNet:  conv 5x5 -> pool -> ResidualBlock -> conv 5x5 -> pool -> ResidualBlock -> linear  (41,514)

Both return logits (no softmax): CrossEntropyLoss applies log-softmax itself.

    python models.py  # each net layer by layer: output shape, parameters, multiply-adds per image
"""

import contextlib
import warnings

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
        return torch.cat([branch1x1, branch5x5, branch3x3, branch_pool], dim=1)  # 16+24+24+24 = 88 channels


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
        return F.relu(x + y)  # the skip connection


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


def layer_table(model, input_shape):
    """(layer, output shape, parameters, multiply-adds) for one input, a row per layer call in the order the
    layers run, then the model's totals. Measured, not typed in: forward hooks see each layer's output, and
    torch's FLOP counter counts the convolutions' and linear layers' work (a multiply-add is 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode  # only `python models.py` needs it

    with warnings.catch_warnings():  # torch 2.2 counts per layer only for the model it is given; later ones warn that
        warnings.simplefilter("ignore", UserWarning)  # they need no model
        counter = FlopCounterMode(model, display=False)
    rows, calls = [], {}
    with contextlib.ExitStack() as hooks, counter, torch.no_grad():  # the hooks are removed on the way out
        for name, module in model.named_modules():
            if name and not list(module.children()):  # a layer, not a container of layers

                def hook(module, inputs, output, name=name):
                    rows.append((name, tuple(output.shape[1:]), sum(p.numel() for p in module.parameters())))
                    calls[name] = calls.get(name, 0) + 1

                hooks.enter_context(module.register_forward_hook(hook))
        model(torch.zeros(1, *input_shape))
    flops = {name.split(".", 1)[1]: sum(ops.values()) for name, ops in counter.get_flop_counts().items() if "." in name}
    table = [(name, shape, params, flops.get(name, 0) // 2 // calls[name]) for name, shape, params in rows]
    return table, (count_parameters(model), counter.get_total_flops() // 2)


def main():
    for net in (InceptionNet, ResidualNet):
        table, totals = layer_table(net(), (1, 28, 28))
        print(f"{net.__name__}, per 1x28x28 image:")
        print(f"  {'layer':<22} {'output':>10} {'parameters':>12} {'multiply-adds':>15}")
        for name, shape, params, macs in table:
            print(f"  {name:<22} {'x'.join(map(str, shape)):>10} {params:>12,} {macs:>15,}")
        print(f"  {'total':<22} {'':>10} {totals[0]:>12,} {totals[1]:>15,}\n")
    # The lecture's case for 1x1 convolutions: 192 channels of 28x28 in, 32 channels out through a 5x5 kernel.
    direct = nn.Conv2d(192, 32, kernel_size=5, padding=2)
    squeezed = nn.Sequential(nn.Conv2d(192, 16, kernel_size=1), nn.Conv2d(16, 32, kernel_size=5, padding=2))
    (_, (_, direct_macs)), (_, (_, squeezed_macs)) = (layer_table(m, (192, 28, 28)) for m in (direct, squeezed))
    print("The lecture's 1x1-convolution example, a 192x28x28 input to 32x28x28:")
    print(f"  {'5x5 convolution':<46}{direct_macs:>12,} multiplications")
    print(
        f"  {'1x1 convolution to 16 channels, then the 5x5':<46}{squeezed_macs:>12,} multiplications"
        f" ({squeezed_macs / direct_macs:.2f}x: about a tenth)"
    )


if __name__ == "__main__":
    main()
