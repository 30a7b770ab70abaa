"""Lecture 11, Advanced CNNs: train the GoogLeNet-style network (InceptionA, four branches side by side) on MNIST.

    python train_inception.py

Edit the hyperparameters below, or override one for a single run: python train_inception.py --help lists the flags.
Every run gets its own folder under runs/: the accuracy plot, metrics.csv, the weights and a checkpoint."""
import time

import torch

import helpers
from data import mnist_loaders
from models import InceptionNet

# Hyperparameters: the lecture's values.
EPOCHS = 10  # passes over the 60,000 training images
BATCH_SIZE = 64  # images per SGD step
LR = 0.01  # SGD learning rate
MOMENTUM = 0.5  # SGD momentum
SEED = 0  # seeds the initial weights and the shuffling: on a CPU the same seed repeats a run exactly
LOG_EVERY = 300  # print the mean training loss every LOG_EVERY batches, as the lecture does
DATA_DIR = "data"  # MNIST lives in DATA_DIR/MNIST/raw/ (downloaded there on the first run)
OUT_DIR = "runs/inception"  # the run's folder; a new run never replaces an earlier one (runs/inception-2, ...)

NET = InceptionNet  # the model this script trains


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
    run = helpers.Run(NET, argv, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, momentum=MOMENTUM, seed=SEED,
                      log_every=LOG_EVERY, data_dir=DATA_DIR, out_dir=OUT_DIR)  # the flags; with --resume, the run's own
    args = run.args
    device = helpers.pick_device(args.device)  # the lecture's torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    with run:  # a stop (Ctrl-C, kill, divergence, out of memory, a full disk) says why and keeps the finished epochs
        torch.manual_seed(args.seed)
        # Not the lecture's DataLoader: data.py holds MNIST on the device as one tensor (docs/performance.md).
        train_loader, test_loader = mnist_loaders(args.data_dir, args.batch_size, device, seed=args.seed)
        model = NET().to(device, memory_format=helpers.memory_format(device))  # channels_last on a CPU
        criterion = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
        first_epoch = run.start(model, optimizer, train_loader, test_loader)  # 1; with --resume, after the saved epochs

        for epoch in range(first_epoch, args.epochs + 1):
            start = time.perf_counter()
            train_loss = train(model, device, train_loader, optimizer, criterion, epoch, args.log_every)
            train_seconds = time.perf_counter() - start
            accuracy = test(model, device, test_loader)
            run.save(epoch, train_loss, accuracy, train_seconds)  # prints the epoch's line, writes its files and checkpoint
    run.show_plot()  # the accuracy plot: in a window, a notebook or an IDE's plot pane; always in the run's accuracy.png


if __name__ == "__main__":
    main()
