"""look_inside.py: its knock-outs against an independent forward pass on the same weights, its measurements, the
net left as it was, the figures (inside.png, mistakes.png), and the refusals."""

import shutil
import signal

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

import look_inside
import models
import train_inception
import train_resnet
from conftest import ROOT, edited, load_script, run_main, says, start, train
from data import MEAN, STD, Batches, mnist_loaders

SLICES = {
    "1x1": slice(0, 16),
    "5x5": slice(16, 40),
    "3x3 -> 3x3": slice(40, 64),
    "pool": slice(64, 88),
}  # 16 + 24 + 24 + 24


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    """A trained InceptionNet and ResidualNet run of the real scripts, on the shipped subset."""
    root = tmp_path_factory.mktemp("runs")
    train(train_inception, root / "inception", "--epochs", 2, "--lr", 0.1, mnist_dir=mnist_dir)
    train(train_resnet, root / "resnet", "--epochs", 1, mnist_dir=mnist_dir)
    return root


@pytest.fixture(scope="module")
def test_loader(mnist_dir):
    """The first 200 test images of the subset, in batches of 50: enough to tell one knock-out from another."""
    test = mnist_loaders(mnist_dir, 64, torch.device("cpu"))[1]
    return Batches(test.images[:200], test.labels[:200], 50)


def loaded(runs, name):
    """The run's probe (look_inside.Inception or .Residual), its net in eval mode."""
    net, model, _ = look_inside.load_run(str(runs / name))
    return look_inside.PROBES[net](model.eval())


@torch.no_grad()
def accuracy_of(forward, loader):
    right = sum((forward(images).argmax(1) == labels).sum().item() for images, labels in loader)
    return 100 * right / len(loader.labels)


def inception_forward(model, zeroed_in, channels):
    """The lecture's InceptionNet.forward, written out, with channels of the named blocks' outputs set to zero."""

    def forward(x):
        x = F.relu(model.mp(model.conv1(x)))
        y = model.incep1(x)
        if "incep1" in zeroed_in:
            y[:, channels] = 0
        x = F.relu(model.mp(model.conv2(y)))
        y = model.incep2(x)
        if "incep2" in zeroed_in:
            y[:, channels] = 0
        return model.l1(y.flatten(1))

    return forward


def resnet_forward(model, changed_in, block):
    """ResidualNet.forward written out, the named blocks replaced by block(res, x)."""

    def forward(x):
        x = F.relu(model.mp(model.conv1(x)))
        x = block(model.res1, x) if "res1" in changed_in else model.res1(x)
        x = F.relu(model.mp(model.conv2(x)))
        x = block(model.res2, x) if "res2" in changed_in else model.res2(x)
        return model.l1(x.flatten(1))

    return forward


def test_inception_knockouts_equal_zeroing_the_branch_channels(runs, test_loader):
    probe = loaded(runs, "inception")
    model = probe.model
    intact, knocked, energy = look_inside.look(probe, test_loader)
    assert intact == train_inception.test(model, "cpu", test_loader)  # no knock-out: the script's own test()
    assert intact > 30  # trained: a knock-out has something to take away
    assert set(knocked) == {(b, w) for b in SLICES for w in ("incep1", "incep2", "both")}
    for (branch, where), value in knocked.items():
        blocks = ("incep1", "incep2") if where == "both" else (where,)
        assert value == pytest.approx(
            accuracy_of(inception_forward(model, blocks, SLICES[branch]), test_loader), abs=1e-9
        ), (branch, where)
    assert knocked["1x1", "both"] != intact
    for block in ("incep1", "incep2"):
        assert sum(energy[block].values()) == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():  # the energy share of one branch, computed by hand
        out = torch.cat([model.incep1(F.relu(model.mp(model.conv1(images)))) for images, _ in test_loader])
    assert energy["incep1"]["5x5"] == pytest.approx((out[:, 16:40].pow(2).sum() / out.pow(2).sum()).item(), rel=1e-4)


def test_resnet_knockouts_equal_the_block_without_its_skip_or_its_residual(runs, test_loader):
    probe = loaded(runs, "resnet")
    model = probe.model
    intact, knocked, measured = look_inside.look(probe, test_loader)
    assert intact == train_resnet.test(model, "cpu", test_loader)
    no_skip = lambda res, x: F.relu(res.conv2(F.relu(res.conv1(x))))  # noqa: E731
    no_residual = lambda res, x: F.relu(x)  # noqa: E731
    for where in ("res1", "res2", "both"):
        blocks = ("res1", "res2") if where == "both" else (where,)
        assert knocked["without the skip", where] == pytest.approx(
            accuracy_of(resnet_forward(model, blocks, no_skip), test_loader), abs=1e-9
        )
        assert knocked["without F(x)", where] == pytest.approx(
            accuracy_of(resnet_forward(model, blocks, no_residual), test_loader), abs=1e-9
        )
    with torch.no_grad():
        x = torch.cat([F.relu(model.mp(model.conv1(images))) for images, _ in test_loader])
        fx = model.res1.conv2(F.relu(model.res1.conv1(x)))
    ratio = (fx.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).median().item()
    cosine = F.cosine_similarity(fx.flatten(1), x.flatten(1), dim=1).median().item()
    assert measured["res1"] == pytest.approx([ratio, cosine], rel=1e-4, abs=1e-6)


class DeeperBlock(models.ResidualBlock):
    """ResidualBlock as a learner might edit it: F(x) gains a third layer, x + conv3(conv2(relu(conv1(x))))."""

    def __init__(self, channels):
        super().__init__(channels)
        self.conv3 = torch.nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x):
        return F.relu(x + self.conv3(self.conv2(F.relu(self.conv1(x)))))


def test_f_of_x_is_taken_from_the_block_as_it_computes_it(test_loader):
    torch.manual_seed(0)
    model = models.ResidualNet().eval()
    model.res1, model.res2 = DeeperBlock(16).eval(), DeeperBlock(32).eval()
    _, knocked, measured = look_inside.look(look_inside.Residual(model), test_loader)
    fx = lambda res, x: res.conv3(res.conv2(F.relu(res.conv1(x))))  # noqa: E731
    expected = accuracy_of(resnet_forward(model, ("res1", "res2"), lambda res, x: F.relu(fx(res, x))), test_loader)
    assert knocked["without the skip", "both"] == pytest.approx(expected, abs=1e-9)
    with torch.no_grad():
        x = torch.cat([F.relu(model.mp(model.conv1(images))) for images, _ in test_loader])
        ratio = (fx(model.res1, x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).median().item()
    assert measured["res1"][0] == pytest.approx(ratio, rel=1e-4)


def test_the_net_is_unchanged_afterwards(runs, test_loader):
    probe = loaded(runs, "inception")
    model = probe.model.train()
    images = next(iter(test_loader))[0]
    before = model(images).detach()
    look_inside.look(probe, test_loader)
    assert model.training  # its mode given back
    assert all(not m._forward_hooks for m in model.modules())  # every hook removed
    assert torch.equal(model(images).detach(), before)


def test_multiply_add_shares_follow_the_branch_layers():
    shares = look_inside.Inception(models.InceptionNet()).multiply_adds()["incep1"]
    # 12x12 positions, 10 channels in: 1x1: 16*10; 5x5: 16*10 + 24*16*25; 3x3: 16*10 + 24*16*9 + 24*24*9; pool: 24*10.
    counts = {"1x1": 160, "5x5": 160 + 9600, "3x3 -> 3x3": 160 + 3456 + 5184, "pool": 240}
    assert shares == pytest.approx({b: c / sum(counts.values()) for b, c in counts.items()})


@pytest.mark.parametrize(
    "net, folder", [pytest.param("inception", "inception", marks=pytest.mark.slow), ("resnet", "实验一")]
)  # a Chinese folder name, as the course's students make them
def test_the_command_prints_the_table_and_writes_the_figures(runs, mnist_dir, net, folder):
    if folder != net:
        shutil.copytree(runs / net, runs / folder, dirs_exist_ok=True)
    code, out, err = run_main(look_inside, runs / folder, "--no-show", "--index", 3, "--device", "cpu")
    assert code == 0, err
    assert "intact" in out and ("zeroed in" if net == "inception" else "without the skip") in out
    assert "a knock-out measures how much this trained net relies on a part" in out
    assert (runs / folder / "inside.png").stat().st_size > 10_000
    assert (
        str(mnist_dir) in open(runs / folder / "settings.json", encoding="utf-8").read()
    )  # the run's own data was found
    # mistakes.png beside it: the test digits those weights get wrong, counted as test() counts them.
    intact = float(out.split("intact ")[1].split("%")[0])
    wrong = int(out.split("mistakes: ")[1].split(" of 80")[0])
    assert wrong == round(80 * (1 - intact / 100)) and f"wrong; {runs / folder / 'mistakes.png'}" in out
    assert (runs / folder / "mistakes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a run trained, its models.py edited, the run probed
def test_a_run_is_probed_with_the_models_py_it_trained_with(mnist_dir, tmp_path, monkeypatch):
    """The README's ResidualBlock edit, run, then put back: look_inside builds the run's own net, and its intact
    accuracy is the run's own, to the image."""
    models_py = edited(tmp_path, "models.py", ("return F.relu(x + y)", "return F.relu(y)"))
    with monkeypatch.context() as patch:
        script = load_script(ROOT / "train_resnet.py", "train_no_skip", models=models_py, monkeypatch=patch)
        train(script, tmp_path / "run", "--epochs", 1, mnist_dir=mnist_dir)
    code, out, err = run_main(look_inside, tmp_path / "run", "--no-show", "--device", "cpu")
    assert code == 0, err
    says(out.splitlines()[0], f"note: models.py changed since {tmp_path / 'run'} ran", "the models.py it trained with")
    accuracy = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1].split(",")[2]
    assert f"intact {accuracy}%" in out


def test_without_a_folder_it_takes_the_newest_run(runs, monkeypatch):
    monkeypatch.setattr(look_inside, "RUNS", str(runs))
    assert look_inside.newest_run(str(runs)) in {str(folder) for folder in runs.iterdir()}
    (runs / "resnet" / "model.pt").touch()
    assert look_inside.newest_run(str(runs)) == str(runs / "resnet")


@pytest.mark.parametrize("case", ["missing", "file", "empty", "damaged", "no runs"])
def test_what_is_not_a_finished_run_is_refused_in_one_line(tmp_path, monkeypatch, case):
    target = tmp_path / "run"
    if case == "file":
        target.write_text("not a folder")
    elif case in ("empty", "damaged"):
        target.mkdir()
        if case == "damaged":
            (target / "model.pt").write_bytes(b"PK\x03\x04 half a file")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(look_inside, *([] if case == "no runs" else [target]), "--no-show")
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and "Traceback" not in err, err
    expected = {
        "missing": "does not exist",
        "file": "is a file",
        "empty": "has no model.pt",
        "damaged": "is damaged",
        "no runs": "no run under runs",
    }[case]
    assert expected in err


@pytest.mark.slow
def test_ctrl_c_is_one_line(runs, mnist_full):
    # As from a terminal (Ctrl-C is Python's KeyboardInterrupt even under a shell that ignores it), on 500 test digits.
    process = start("look_inside.py", runs / "inception", "--no-show", "--device", "cpu", "--data-dir", mnist_full)
    assert process.stdout.readline().startswith("device:")  # loaded, now evaluating
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "interrupted", err


class Lookup(torch.nn.Module):
    """A 'net' whose logits for image i are logits[i]: each image carries its index in its first pixel."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, images):
        index = (images[:, 0, 0, 0] * STD + MEAN).mul(255).round().long()
        return self.logits[index]


def test_mistakes_are_the_wrong_predictions_most_confident_first():
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    logits = torch.zeros(6, 10)
    logits[torch.arange(6), labels] = 5.0  # right, except:
    logits[1, 7] = 9.0  # sure it is a 7
    logits[3, 8] = 6.0  # less sure it is an 8
    logits[4, 9] = 12.0  # surest of all
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 28, 28).contiguous()
    wrong, true, predicted, confidence = look_inside.find_mistakes(
        Lookup(logits), Batches(images, labels, batch_size=4)
    )
    assert (wrong[:, 0, 0, 0] * STD + MEAN).mul(255).round().long().tolist() == [4, 1, 3]  # the images themselves
    assert true.tolist() == [4, 1, 3] and predicted.tolist() == [9, 7, 8]
    assert confidence.tolist() == sorted(confidence.tolist(), reverse=True)
    assert confidence[0] == logits[4].softmax(0).max()
    fig = look_inside.plot_mistakes(wrong, true, predicted, confidence, len(labels), "Lookup")
    assert fig._suptitle.get_text() == "Lookup: 3 of 6 test images wrong (50.00%); the 3 most confident mistakes"
    captions = [t.get_text() for t in fig.axes[0].texts]
    assert captions[0].startswith("true 4, said 9\n") and len(captions) == 3
    plt.close(fig)
