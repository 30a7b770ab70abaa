import torch
from torchvision import datasets, transforms

from data import MEAN, STD, TEST_BATCH_SIZE, Batches, mnist_loaders, normalize


def test_batches_equal_torchvisions_totensor_and_normalize(mnist_dir):
    reference = datasets.MNIST(
        mnist_dir,
        train=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]),
    )
    expected_images = torch.stack([reference[i][0] for i in range(len(reference))])
    expected_labels = torch.tensor([reference[i][1] for i in range(len(reference))])
    _, test_loader = mnist_loaders(mnist_dir, batch_size=64, device=torch.device("cpu"))
    images, labels = map(torch.cat, zip(*test_loader))
    assert images.shape == (80, 1, 28, 28) and images.dtype == torch.float32
    torch.testing.assert_close(images, expected_images, atol=1e-6, rtol=0)
    assert torch.equal(labels, expected_labels)
    assert (MEAN, STD) == (0.1307, 0.3081)


def test_train_batches_are_shuffled_images_with_their_own_labels(mnist_dir):
    train_loader, _ = mnist_loaders(mnist_dir, batch_size=64, device=torch.device("cpu"), seed=1)
    raw = datasets.MNIST(mnist_dir, train=True)
    lookup = {bytes(image.numpy()): int(label) for image, label in zip(raw.data, raw.targets)}
    images, labels = next(iter(train_loader))
    assert images.shape == (64, 1, 28, 28) and labels.shape == (64,)
    pixels = (images * STD + MEAN).mul(255).round().to(torch.uint8)
    assert [lookup[bytes(p.squeeze(0).numpy())] for p in pixels] == labels.tolist()
    assert len(train_loader) == 5  # 320 / 64
    # Shuffled: the first batch is not the file's first 64 images, nor any 64 in a row.
    index = {bytes(image.numpy()): i for i, image in enumerate(raw.data)}
    positions = [index[bytes(p.squeeze(0).numpy())] for p in pixels]
    assert positions != sorted(positions) and max(positions) - min(positions) > 64


def test_train_loader_visits_every_image_once_per_epoch_and_reshuffles():
    n, batch_size = 1000, 64
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    loader = Batches(images, torch.arange(n), batch_size, shuffle=True, seed=0)
    epochs = [torch.cat([labels for _, labels in loader]) for _ in range(3)]
    sizes = [len(labels) for _, labels in loader]
    assert sizes == [64] * 15 + [40]  # the last, partial batch is kept
    for order in epochs:
        assert torch.equal(order.sort().values, torch.arange(n))
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])
    assert not torch.equal(epochs[0], torch.arange(n))
    again = Batches(images, torch.arange(n), batch_size, shuffle=True, seed=0)
    assert torch.equal(torch.cat([labels for _, labels in again]), epochs[0])  # seeded: the same order


def test_test_loader_keeps_order():
    n = 2 * TEST_BATCH_SIZE + 7
    loader = Batches(torch.zeros(n, 1, 28, 28, dtype=torch.uint8), torch.arange(n), TEST_BATCH_SIZE)
    batches = [labels for _, labels in loader]
    assert [len(b) for b in batches] == [TEST_BATCH_SIZE, TEST_BATCH_SIZE, 7]
    assert torch.equal(torch.cat(batches), torch.arange(n))
    assert torch.equal(torch.cat([labels for _, labels in loader]), torch.arange(n))


def test_normalize_maps_black_and_white_pixels():
    out = normalize(torch.tensor([0, 255], dtype=torch.uint8))
    torch.testing.assert_close(out, torch.tensor([-MEAN / STD, (1 - MEAN) / STD]))
