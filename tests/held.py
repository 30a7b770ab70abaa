"""A training run held at one moment before its first epoch is saved, for the tests of a stop at that moment
(tests/test_stops.py). `python tests/held.py MOMENT ARGS...`, with the repository on PYTHONPATH, prints "held" there
and waits a minute, long enough for a signal to reach it for sure."""

import sys
import time

import data
import train_resnet

MOMENTS = ("data", "model", "batches")


def hold(moment, then, setattr=setattr):
    """train_resnet calls then() as MNIST loads ("data", before the run's folder is made), as the net moves to the
    device ("model"), or as epoch 1 begins ("batches", the folder there and empty). Tests pass monkeypatch.setattr."""

    def held(real):
        def call(*args, **kwargs):
            print("held", flush=True)
            then()
            return real(*args, **kwargs)

        return call

    if moment == "data":
        setattr(data, "read_mnist", held(data.read_mnist))
    elif moment == "model":
        net = train_resnet.ResidualNet
        setattr(train_resnet, "ResidualNet", type(net.__name__, (net,), {"to": held(net.to)}))
    else:
        setattr(train_resnet, "train", held(train_resnet.train))


if __name__ == "__main__":
    hold(sys.argv[1], lambda: time.sleep(60))
    train_resnet.main(sys.argv[2:])
