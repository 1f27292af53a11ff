"""Tests of the FuXi U-Transformer (xfuxi.models.fuxi)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xfuxi.models.base import ForecastModel, NormStats
from xfuxi.models.fuxi import PRESETS, FuXiNet, SwinV2Block, build_fuxi, count_parameters


def _tiny(c: int = 3, grid: tuple[int, int] = (8, 16), **kw) -> FuXiNet:
    torch.manual_seed(0)
    return build_fuxi("tiny", in_channels=c, grid=grid, **kw)


def _paper_count_by_hand() -> int:
    """FuXi (Chen et al. 2023) parameter count from its dimensions, layer by layer."""
    c, d, p, heads, depth, hidden, cpb = 70, 1536, 4, 8, 48, 4 * 1536, 512
    conv3 = 9 * d * d + d  # 3x3 conv D->D with bias
    groupnorm = 2 * d
    residual = 2 * (conv3 + groupnorm)
    embed = c * 2 * p * p * d + d + 2 * d  # Conv3d 2x4x4 + LayerNorm
    down = conv3 + residual
    up = (2 * d) * d * 2 * 2 + d + residual  # ConvTranspose2d 2D->D, 2x2
    attention = (
        3 * d * d  # qkv (no bias)
        + 2 * d  # q and v biases
        + d * d
        + d  # output projection
        + heads  # logit scale
        + 2 * cpb
        + cpb
        + cpb * heads  # continuous position bias MLP (2 -> 512 -> heads)
    )
    block = attention + 2 * d + (d * hidden + hidden + hidden * d + d) + 2 * d
    head = d * c * p * p + c * p * p
    return embed + down + depth * block + up + head


def test_paper_preset_parameter_count_matches_hand_count():
    net = build_fuxi("paper", device="meta")
    n = count_parameters(net)
    print(f"FuXi paper preset: {n:,} parameters ({n / 1e9:.3f} B)")
    assert n == _paper_count_by_hand()
    assert all(p.device.type == "meta" for p in net.parameters())
    assert net.grid == (720, 1440) and net.padded == (720, 1440)
    # token grid after the Down Block is 90 x 180 (cube embedding to 180 x 360, then / 2)
    assert net.blocks[0].grid == (90, 180)


@pytest.mark.parametrize("grid", [(8, 16), (7, 13), (10, 20)])
def test_output_shape_any_grid(grid):
    net = _tiny(3, grid)
    y = net(torch.randn(2, 2, 3, *grid))
    assert y.shape == (2, 3, *grid)
    assert torch.isfinite(y).all()


def test_bad_input_shape_is_a_clear_error():
    net = _tiny()
    with pytest.raises(ValueError, match="expected input"):
        net(torch.randn(2, 3, 8, 16))
    with pytest.raises(ValueError, match="expected grid"):
        net(torch.randn(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown FuXi preset"):
        build_fuxi("huge", in_channels=1, grid=(8, 16))
    with pytest.raises(ValueError, match="needs in_channels"):
        build_fuxi("small")


def test_equivariant_to_longitude_shifts_of_one_window():
    """Longitude is periodic everywhere: rolling the input by one window rolls the output."""
    net = _tiny(2, (8, 32)).eval()
    x = torch.randn(1, 2, 2, 8, 32, dtype=torch.float64)
    net = net.double()
    shift = 2 * net.patch_size[1] * net.window_size[1]  # one window of the token grid, in pixels
    with torch.no_grad():
        y = net(x)
        y_rolled = net(torch.roll(x, shift, dims=-1))
    torch.testing.assert_close(y_rolled, torch.roll(y, shift, dims=-1))


def test_shifted_window_masks_poles_but_wraps_longitude():
    torch.manual_seed(0)
    blk = SwinV2Block(8, (4, 8), (2, 4), 2, shift=True).double().eval()
    assert blk.shift == (1, 2)
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        base = blk(x)
        north = x.clone()
        north[:, 0] += 1.0  # southernmost row (latitude ascending)
        y_n = blk(north)
        east = x.clone()
        east[:, 1, 0] += 1.0  # first longitude column
        y_e = blk(east)
    # rolling brought row 0 next to the last row, but the mask stops attention across poles
    torch.testing.assert_close(y_n[:, -1], base[:, -1])
    # longitude wraps: the last column (same window after the shift) feels the first column
    assert (y_e[:, 1, -1] - base[:, 1, -1]).abs().max() > 1e-6


def test_unshifted_windows_are_independent():
    torch.manual_seed(0)
    blk = SwinV2Block(8, (4, 8), (2, 4), 2, shift=False).double().eval()
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 0, 0] += 1.0
    with torch.no_grad():
        a, b = blk(x), blk(x2)
    torch.testing.assert_close(a[:, 2:], b[:, 2:])  # other latitude windows untouched
    torch.testing.assert_close(a[:, :, 4:], b[:, :, 4:])  # other longitude windows untouched
    assert (a[:, 1, 3] - b[:, 1, 3]).abs().max() > 1e-6  # same window changes


def test_differentiable_end_to_end():
    c, grid = 3, (8, 16)
    net = _tiny(c, grid)
    rng = np.random.default_rng(0)
    stats = NormStats(rng.normal(size=c) * 10, 1 + rng.random(c), 0.1 + rng.random(c))
    model = ForecastModel(
        net,
        channels=[("temperature", 500.0), ("temperature", 850.0), ("surface_pressure", None)],
        latitude=np.linspace(-78.75, 78.75, 8),
        longitude=np.arange(16) * 22.5,
        stats=stats,
    )
    x = torch.randn(2, 2, c, *grid, requires_grad=True)
    y = model(model(x).unsqueeze(1).expand(-1, 2, -1, -1, -1))  # two steps
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    assert x.grad[:, 0].abs().sum() > 0  # the earlier input time matters too
    assert all(p.grad is not None for p in net.parameters())


def test_grad_checkpointing_gives_same_gradients():
    net = _tiny()
    x = torch.randn(2, 2, 3, 8, 16)
    net.train()
    net(x).square().mean().backward()
    g0 = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.grad_checkpointing = True
    net(x).square().mean().backward()
    for a, p in zip(g0, net.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_small_preset_size_and_config():
    net = build_fuxi("small", in_channels=21, grid=(32, 64))
    n = count_parameters(net)
    assert 0.5e6 < n < 3e6
    assert net.blocks[0].grid == (8, 16) and net.window_size == (4, 8)
    rebuilt = FuXiNet(**{"in_channels": 21, **{k: v for k, v in net.config.items()
                                              if k != "in_channels"}})  # fmt: skip
    assert count_parameters(rebuilt) == n
    assert set(PRESETS) >= {"paper", "small", "tiny"}


@pytest.mark.parametrize("stride", [1, 2])
def test_periodic_conv_equals_the_explicitly_padded_convolution(stride):
    """PeriodicConv2d's fast path (latitude zeros left to the convolution) is the padded one."""
    import torch.nn.functional as F  # noqa: N812

    from xfuxi.models.fuxi import PeriodicConv2d

    gen = torch.Generator().manual_seed(0)
    conv = PeriodicConv2d(3, 4, 3, stride=stride)
    x = torch.randn(2, 3, 6, 8, generator=gen, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_(True)
    got = conv(x)
    padded = F.pad(F.pad(ref_x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1))
    ref = F.conv2d(padded, conv.weight, conv.bias, stride)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    up = torch.randn(got.shape, generator=gen)
    (got * up).sum().backward()
    (ref * up).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-6, atol=1e-6)
    # periodic in longitude: a shift of the input by the stride shifts the output by one
    shifted = conv(torch.roll(x.detach(), stride, -1))
    torch.testing.assert_close(shifted, torch.roll(got.detach(), 1, -1), rtol=1e-6, atol=1e-6)


# --- issue 27 item 1: the faster paths give the reference values -------------------------------


def test_fused_attention_equals_explicit_attention():
    """scaled_dot_product_attention (q pre-normalised, temperature folded in, position bias
    and shift mask as attn_mask) equals the explicit softmax(QKᵀ + bias)V to 1e-5."""
    torch.manual_seed(1)
    for shift in (False, True):
        blk = SwinV2Block(16, (4, 8), (2, 4), 2, shift=shift)
        with torch.no_grad():
            blk.attn.logit_scale.uniform_(0.5, 5.0)  # different temperatures per head
        x = torch.randn(3, 4, 8, 16)
        blk.attn.fused = False
        ref = blk(x)
        blk.attn.fused = True
        got = blk(x)
        assert blk.attn_mask is not None or not shift
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_matrix_product_embedding_and_up_block_equal_the_convolutions():
    """The cube embedding and the Up Block's transposed convolution, computed as matrix
    products on token tensors, equal the Conv3d / ConvTranspose2d modules they stand for."""
    net = _tiny(3, (8, 16))
    x = torch.randn(2, 2, 3, *net.padded)
    ref = net.embed(x.transpose(1, 2)).squeeze(2).permute(0, 2, 3, 1)
    torch.testing.assert_close(net._embed(x), ref, rtol=1e-5, atol=1e-5)
    t = torch.randn(2, 2, 4, 2 * net.embed_dim)
    ref = net.up.conv(t.permute(0, 3, 1, 2))
    torch.testing.assert_close(net._up(t), ref, rtol=1e-5, atol=1e-5)
