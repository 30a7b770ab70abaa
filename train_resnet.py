"""Lecture 11, Advanced CNNs: train the small residual network (ResidualBlock, the skip connection) on MNIST.

    python train_resnet.py

Edit the constants below, or override one for a run (--help lists the flags); each run gets its own folder in runs/."""

import time

import torch

import helpers
from data import mnist_loaders
from models import ResidualNet

# The lecture's values. Each comment is also the --help of the flag that overrides the constant for one run.
EPOCHS = 10  # passes over the 60,000 training images
BATCH_SIZE = 64  # images per SGD step
LR = 0.01  # SGD learning rate
MOMENTUM = 0.5  # SGD momentum
SEED = 0  # seeds the initial weights and the shuffling: on a CPU the same seed repeats a run exactly
LOG_EVERY = 300  # print the mean training loss every LOG_EVERY batches, as the lecture does
DATA_DIR = "data"  # MNIST is read from DATA_DIR/MNIST/raw/ (downloaded there on the first run)
OUT_DIR = "runs/resnet"  # the run's folder; a new run never replaces an earlier one (it takes runs/resnet-2, ...)


def train(model, device, train_loader, optimizer, criterion, epoch, log_every):
    """One pass over the training set, as the lecture writes it; returns the mean loss of its batches."""
    running_loss = 0.0
    epoch_loss = 0.0
    for batch_idx, (inputs, target) in enumerate(train_loader, 0):
        inputs, target = inputs.to(device), target.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, target)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        if batch_idx % log_every == log_every - 1:
            print("[%d, %5d] loss: %.3f" % (epoch, batch_idx + 1, running_loss / log_every))
            epoch_loss += running_loss
            running_loss = 0.0
    return (epoch_loss + running_loss) / len(train_loader)


def test(model, device, test_loader):
    """Percent of the test images classified correctly."""
    correct = 0
    total = 0
    with torch.no_grad():
        for images, labels in test_loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            _, predicted = torch.max(outputs.data, dim=1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return 100 * correct / total


def main(argv=None):
    # Each constant becomes a flag; with --resume, the run's own values, from its checkpoint.pt. Inside `with run:`
    # a stop (Ctrl-C, a kill, a loss that is not finite, out of memory, a full disk) says why in one line.
    run = helpers.Run(
        argv,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        lr=LR,
        momentum=MOMENTUM,
        seed=SEED,
        log_every=LOG_EVERY,
        data_dir=DATA_DIR,
        out_dir=OUT_DIR,
    )
    args = run.args
    with run:
        # The lecture's torch.device("cuda:0" if torch.cuda.is_available() else "cpu"), with Apple's MPS and --device.
        device = helpers.pick_device(args.device)
        torch.manual_seed(args.seed)
        # Not the lecture's DataLoader: data.py holds MNIST on the device as one tensor (docs/performance.md).
        train_loader, test_loader = mnist_loaders(args.data_dir, args.batch_size, device, seed=args.seed)
        model = ResidualNet().to(device, memory_format=helpers.memory_format(device))
        criterion = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
        # Makes the run's folder; with --resume, puts the saved weights, momentum and shuffle order back.
        first_epoch = run.start(model, optimizer, train_loader, test_loader)
        for epoch in range(first_epoch, args.epochs + 1):
            start = time.perf_counter()
            train_loss = train(model, device, train_loader, optimizer, criterion, epoch, args.log_every)
            train_seconds = time.perf_counter() - start
            accuracy = test(model, device, test_loader)
            # Prints the epoch's line; writes checkpoint.pt, model.pt, metrics.csv, settings.json and accuracy.png.
            run.save(epoch, train_loss, accuracy, train_seconds)
    # In a window, a notebook or an IDE's plot pane; always in the run's accuracy.png.
    run.show_plot()


if __name__ == "__main__":
    main()
