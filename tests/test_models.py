import pytest
import torch

import models
from models import InceptionA, InceptionNet, ResidualBlock, ResidualNet, count_parameters, layer_table


@pytest.mark.parametrize("net, params, features", [(InceptionNet, 97_298, 1408), (ResidualNet, 41_514, 512)])
def test_nets_give_ten_logits_and_have_the_lectures_size(net, params, features):
    model = net()
    assert count_parameters(model) == params
    assert model.l1.in_features == features and model.l1.out_features == 10
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize("net", [InceptionNet, ResidualNet])
def test_channels_last_gives_the_same_logits(net):
    torch.manual_seed(0)
    model, x = net(), torch.randn(3, 1, 28, 28)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("in_channels, size", [(10, 12), (20, 4), (3, 7)])
def test_inception_block_concatenates_to_88_channels_and_keeps_size(in_channels, size):
    block = InceptionA(in_channels)
    assert block(torch.randn(2, in_channels, size, size)).shape == (2, 88, size, size)


def test_inception_block_is_its_four_branches_side_by_side():
    torch.manual_seed(0)
    block, x = InceptionA(4), torch.randn(2, 4, 6, 6)
    out = block(x)
    torch.testing.assert_close(out[:, :16], block.branch1x1(x))
    torch.testing.assert_close(out[:, 16:40], block.branch5x5_2(block.branch5x5_1(x)))
    torch.testing.assert_close(out[:, 40:64], block.branch3x3_3(block.branch3x3_2(block.branch3x3_1(x))))
    pooled = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    torch.testing.assert_close(out[:, 64:], block.branch_pool(pooled))


def test_residual_block_adds_its_input():
    torch.manual_seed(0)
    block, x = ResidualBlock(8), torch.randn(2, 8, 6, 6)
    assert block(x).shape == x.shape
    # The lecture's block, written out with its own (random, nonzero) weights: relu(x + conv2(relu(conv1(x)))).
    expected = torch.relu(x + block.conv2(torch.relu(block.conv1(x))))
    torch.testing.assert_close(block(x), expected)
    without_skip = torch.relu(block.conv2(torch.relu(block.conv1(x))))
    assert not torch.allclose(block(x), without_skip)  # the skip term is there
    with torch.no_grad():
        # With the second convolution silenced the block is relu(x + 0): the skip path alone.
        block.conv2.weight.zero_()
        block.conv2.bias.zero_()
        torch.testing.assert_close(block(x), torch.relu(x))


def test_residual_net_computes_the_lectures_pool_of_relu():
    torch.manual_seed(0)
    net, x = ResidualNet(), torch.randn(4, 1, 28, 28, requires_grad=True)
    lecture = net.mp(torch.relu(net.conv1(x)))
    lecture = net.res2(net.mp(torch.relu(net.conv2(net.res1(lecture)))))
    lecture = net.l1(lecture.view(4, -1))
    assert torch.equal(net(x), lecture)
    assert torch.equal(torch.autograd.grad(net(x).sum(), x)[0], torch.autograd.grad(lecture.sum(), x)[0])


@pytest.mark.parametrize("net, params, macs", [(InceptionNet, 97_298, 6_019_200), (ResidualNet, 41_514, 2_013_184)])
def test_layer_table_counts_parameters_and_multiply_adds(net, params, macs):
    table, totals = layer_table(net(), (1, 28, 28))
    assert totals == (params, macs)
    assert sum(row[2] for row in table) == params and sum(row[3] for row in table) == macs
    assert table[0][:2] == ("conv1", (10, 24, 24) if net is InceptionNet else (16, 24, 24))
    assert table[-1][:2] == ("l1", (10,))


def test_models_py_prints_both_nets_and_the_lectures_1x1_example(capsys):
    models.main()
    out = capsys.readouterr().out
    assert "  total" in out and "97,298       6,019,200" in out and "41,514       2,013,184" in out
    assert "120,422,400 multiplications" in out and "12,443,648 multiplications (0.10x" in out
