"""Lecture 11, Advanced CNNs: train the small residual network (ResidualNet) on MNIST.

    python train_resnet.py  # 10 epochs; MNIST downloads into ./data on first run
    python train_resnet.py --epochs 2 --lr 0.05 --no-show  # flags override the constants below
    python train_resnet.py --epochs 30 --resume  # the latest run goes on to 30 epochs

Edit the hyperparameters below, or override any of them on the command line (--help lists the flags).
Every run gets a folder of its own: OUT_DIR, or OUT_DIR-2, OUT_DIR-3, ... where OUT_DIR holds an earlier run.
It gets settings.json (what the run was), and after every epoch the results so far: accuracy.png,
metrics.csv, model.pt and checkpoint.pt. `python runs.py` compares the runs by what changed.
This file is the lesson; runs.py does the rest (flags, device, folders, Ctrl-C, ...).
train_inception.py and train_resnet.py are twins: `diff train_inception.py train_resnet.py` shows what the net changes.
"""
import time

import torch
import torch.nn.functional as F

import runs
from data import mnist_loaders
from models import ResidualNet

# Hyperparameters: the lecture's values.
EPOCHS = 10  # passes over the 60,000 training images
BATCH_SIZE = 64  # images per SGD step
LR = 0.01  # SGD learning rate
MOMENTUM = 0.5  # SGD momentum
SEED = 0  # seeds the initial weights and the shuffling: on a CPU the same seed repeats a run exactly
LOG_EVERY = 300  # print the mean training loss every LOG_EVERY batches, as the lecture does
DATA_DIR = "data"  # MNIST lives in DATA_DIR/MNIST/raw/
OUT_DIR = "runs/resnet"  # the run's folder; a new run never replaces an earlier one

NET = ResidualNet  # the model this script trains


def train(model, loader, optimizer, epoch, log_every):
    """One pass over the training set; returns the mean loss. Raises FloatingPointError if the loss blows up."""
    model.train()
    # Losses stay on the device: reading one (.item()) would wait for the GPU on every batch.
    losses = torch.zeros(len(loader), device=loader.labels.device)
    for i, (images, labels) in enumerate(loader):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses[i] = loss.detach()
        if (i + 1) % log_every == 0:
            running = runs.check_finite(losses[i + 1 - log_every : i + 1].mean().item(), epoch, i + 1)
            print("[%d, %5d] loss: %.3f" % (epoch, i + 1, running), flush=True)
    return runs.check_finite(losses.mean().item(), epoch, len(loader))


@torch.inference_mode()
def test(model, loader):
    """Percent of test images classified correctly."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=loader.labels.device)
    for images, labels in loader:
        correct += (model(images).argmax(dim=1) == labels).sum()
    return 100 * correct.item() / len(loader.labels)


def main(argv=None):
    run = runs.Run(__file__, __doc__, NET, argv, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, momentum=MOMENTUM,
                   seed=SEED, log_every=LOG_EVERY, data_dir=DATA_DIR, out_dir=OUT_DIR)  # the flags, checked
    args = run.args
    with run:  # from here on, a stop (Ctrl-C, divergence, ...) ends with a message and keeps the finished epochs
        torch.manual_seed(args.seed)
        train_loader, test_loader = mnist_loaders(args.data_dir, args.batch_size, run.device, seed=args.seed)
        model = NET().to(run.device, memory_format=run.memory_format)
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

        for epoch in run.epochs(model, optimizer, train_loader, test_loader):  # 1..EPOCHS, or on from a checkpoint
            start = time.perf_counter()
            train_loss = train(model, train_loader, optimizer, epoch, args.log_every)
            train_seconds = time.perf_counter() - start
            accuracy = test(model, test_loader)
            run.save(epoch, train_loss, accuracy, time.perf_counter() - start)  # the files and the checkpoint
            images_per_second = len(train_loader.labels) / train_seconds
            print(f"epoch {epoch}: test accuracy {accuracy:.2f}%  (train {train_seconds:.1f} s, {images_per_second:.0f} img/s)", flush=True)


if __name__ == "__main__":
    main()
