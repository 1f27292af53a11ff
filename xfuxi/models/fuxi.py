"""The FuXi U-Transformer (Chen et al., 2023): cube embedding, Swin Transformer V2, U-Net skip.

The network maps two consecutive normalised states to the next one (a residual in units of
the 6-hour-difference std when wrapped by :class:`~xfuxi.models.base.ForecastModel` with
``residual=True``)::

    x (B, 2, C, H, W)
      -> pad (longitude periodic, latitude by edge replication) to a multiple of the patch
         and window sizes
      -> cube embedding: Conv3d with kernel = stride = (2, ph, pw) over (time, lat, lon),
         then LayerNorm                                   -> (B, D, H/ph, W/pw)
      -> Down Block: 3×3 conv stride 2 + residual block (2 × [3×3 conv, GroupNorm, SiLU])
                                                          -> (B, D, H/2ph, W/2pw)
      -> ``depth`` Swin Transformer V2 blocks (scaled cosine attention, log-spaced
         continuous relative position bias, post-normalisation, windows shifted every
         second block; longitude is periodic, so shifted windows wrap around it unmasked)
      -> concatenate with the Down Block output (skip), Up Block: 2×2 transposed conv
         stride 2 + residual block                        -> (B, D, H/ph, W/pw)
      -> fully connected head to C × ph × pw, pixel shuffle, crop -> (B, C, H, W)

Presets (:data:`PRESETS`): ``"paper"`` has the published dimensions (70 channels on the
0.25° grid cropped to 720 × 1440, D = 1536, 48 blocks); build it on the meta device with
:func:`build_fuxi` (``device="meta"``) to count its parameters without allocating memory.
``"small"`` is the CPU-sized network for the embedded T21 (32 × 64) world, ``"tiny"`` the one
used in tests.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import is_integer
from .base import check_input_pair

__all__ = [
    "PRESETS",
    "FuXiNet",
    "SwinV2Block",
    "build_fuxi",
    "count_parameters",
]

#: the FuXiNet keyword arguments every preset sets, in the order of the rows of :data:`PRESETS`
_PRESET_ARGUMENTS = (
    "embed_dim", "depth", "num_heads", "window_size", "patch_size", "num_groups", "mlp_ratio",
)  # fmt: skip

#: named architectures: FuXiNet keyword arguments (channels and grid come from the data)
PRESETS: dict[str, dict[str, Any]] = {
    name: {**dict(zip(_PRESET_ARGUMENTS, row, strict=True)), **data}
    for name, row, data in (
        # Chen et al. (2023): 70 channels at 0.25°, cropped 720 × 1440; cube embedding 2×4×4
        # to 1536 × 180 × 360; Down Block to 90 × 180; 48 Swin-V2 blocks; Up Block with
        # skip; FC.
        ("paper", (1536, 48, 8, (9, 9), (4, 4), 32, 4.0), {"channels": 70, "grid": (720, 1440)}),
        # the embedded Held–Suarez world, T21 (32 × 64): 16 × 32 tokens, 8 × 16 after the
        # Down Block, 4 × 8 windows; ~1.2 M parameters (21 channels), trains on a CPU
        ("small", (96, 6, 4, (4, 8), (2, 2), 8, 4.0), {}),
        # unit tests
        ("tiny", (16, 2, 2, (2, 2), (2, 2), 4, 2.0), {}),
    )
}


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module`` (works on the meta device).

    Examples
    --------
    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# convolutional blocks
# ---------------------------------------------------------------------------------------------


class PeriodicConv2d(nn.Conv2d):
    """2-D convolution padded periodically in longitude (last axis) and with zeros in latitude."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0)
        self.pad = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return periodic_conv2d(x, self.weight, self.bias, self.pad, self.stride)


def periodic_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    pad: int,
    stride: Any = 1,
) -> torch.Tensor:
    """:class:`PeriodicConv2d`'s convolution with given weights: ``pad`` points wrapped
    around in longitude (the last axis), ``pad`` zeros in latitude."""
    p = pad
    if not p:
        return F.conv2d(x, weight, bias, stride)
    if torch.onnx.is_in_onnx_export():
        # explicit pads: ONNX importers (onnx2torch) rebuild this as Pad + Conv
        return F.conv2d(
            F.pad(F.pad(x, (p, p, 0, 0), mode="circular"), (0, 0, p, p)), weight, bias, stride
        )
    # the same values with the latitude zeros left to the convolution's own padding:
    # one copy (the longitude wrap) instead of two and a zero fill (at 48 members the
    # pads took about a tenth of the model's time on CPU)
    x = torch.cat([x[..., -p:], x, x[..., :p]], dim=-1)
    return F.conv2d(x, weight, bias, stride, (p, 0))


class ResidualBlock(nn.Module):
    """Two [3×3 conv, GroupNorm, SiLU] layers with an identity shortcut (FuXi's residual block)."""

    def __init__(self, dim: int, num_groups: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += [PeriodicConv2d(dim, dim, 3), nn.GroupNorm(num_groups, dim), nn.SiLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DownBlock(nn.Module):
    """3×3 convolution with stride 2, then a residual block (halves the token grid)."""

    def __init__(self, dim: int, num_groups: int) -> None:
        super().__init__()
        self.conv = PeriodicConv2d(dim, dim, 3, stride=2)
        self.res = ResidualBlock(dim, num_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.conv(x))


class UpBlock(nn.Module):
    """2×2 transposed convolution with stride 2 (from ``2·dim`` skip-concatenated channels)."""

    def __init__(self, dim: int, num_groups: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(2 * dim, dim, 2, stride=2)
        self.res = ResidualBlock(dim, num_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.conv(x))


# ---------------------------------------------------------------------------------------------
# Swin Transformer V2
# ---------------------------------------------------------------------------------------------


def _log_spaced_coords(window: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-spaced relative coordinates of a window and the pair index (Liu et al. 2022, §3.3)."""
    wh, ww = window
    dh = torch.arange(-(wh - 1), wh, dtype=torch.float32)
    dw = torch.arange(-(ww - 1), ww, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(dh, dw, indexing="ij"), dim=-1)  # (2wh-1, 2ww-1, 2)
    table[..., 0] /= max(wh - 1, 1)
    table[..., 1] /= max(ww - 1, 1)
    table *= 8.0
    table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8.0)
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij"))
    coords = coords.flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N)
    index = (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)
    return table.reshape(-1, 2), index


def _unit(x: torch.Tensor) -> torch.Tensor:
    """``x / ||x||`` along the last axis (no clamp op, so that it exports to plain ONNX)."""
    return x * torch.rsqrt(x.square().sum(-1, keepdim=True) + 1e-24)


class WindowAttentionV2(nn.Module):
    """Scaled cosine self-attention in windows with a continuous (log-spaced) position bias."""

    def __init__(self, dim: int, window: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.window = window
        # log(10) as float32: the value torch.log(10 * torch.ones(...)) gave, without an
        # operation (a network built on the "meta" device then needs no meta kernels)
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False)
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        with torch.device("cpu"):  # constants, computed on the CPU for any device
            table, index = _log_spaced_coords(window)
        device = _default_device()
        table, index = table.to(device), index.to(device)
        self.register_buffer("coords_table", table, persistent=False)
        self.register_buffer("position_index", index.reshape(-1), persistent=False)
        self.register_buffer("logit_max", torch.tensor(math.log(100.0)), persistent=False)
        #: ``torch.nn.functional.scaled_dot_product_attention`` (True), the explicit
        #: softmax(QKᵀ + bias)V (False; also what ONNX export traces), or None: fused on
        #: accelerators, explicit on the CPU, where the fused kernel with an additive mask
        #: measured no faster (benchmarks/bench_efficiency.py). Same values to float32
        #: rounding.
        self.fused: bool | None = None

    def position_bias(self) -> torch.Tensor:
        """The continuous relative position bias ``16·sigmoid(MLP(coords))``: (heads, N, N)."""
        n = self.window[0] * self.window[1]
        rpb = self.cpb_mlp(self.coords_table)[self.position_index]  # (N*N, heads)
        return 16 * torch.sigmoid(rpb.reshape(n, n, -1).permute(2, 0, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: (B*nW, N, D); mask: (nW, N, N) of 0 / -inf, or None
        bw, n, d = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(bw, n, 3, self.num_heads, -1)
        # clamp at log(100) (written with minimum, which exports to plain ONNX Min)
        scale = torch.minimum(self.logit_scale, self.logit_max).exp()
        # the position bias plus the shift mask, added in one pass: (nW, heads, N, N)
        add = self.position_bias()
        nw = 1
        if mask is not None:
            nw = mask.shape[0]
            add = add + mask[:, None]
        shape = (bw // nw, nw, self.num_heads, n, -1)
        # cosine similarity: the dot product of unit vectors (q and k normalised together,
        # along their contiguous last axis); the learned temperature is folded into q
        # (N·d products instead of N·N)
        qk = _unit(qkv[:, :, :2])
        q = (qk[:, :, 0] * scale.view(-1, 1)).transpose(1, 2).reshape(shape)
        k = qk[:, :, 1].transpose(1, 2).reshape(shape)
        v = qkv[:, :, 2].transpose(1, 2)
        v = v.reshape(shape)
        fused = x.device.type != "cpu" if self.fused is None else self.fused
        if fused and not torch.onnx.is_in_onnx_export():
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=add, scale=1.0)
        else:
            attn = torch.softmax(q @ k.transpose(-2, -1) + add, dim=-1)
            out = attn @ v
        out = out.reshape(bw, self.num_heads, n, -1)
        return self.proj(out.transpose(1, 2).reshape(bw, n, d))


class SwinV2Block(nn.Module):
    """One Swin Transformer V2 block (post-normalisation) on a (B, H, W, D) token grid.

    With ``shift`` the windows are shifted by half a window (cyclic roll). Longitude is
    periodic, so the windows that wrap across the date line see real neighbours and are
    not masked there; across the poles they are masked (no attention between rows that the
    roll brought together from the two ends of latitude).
    """

    def __init__(
        self,
        dim: int,
        grid: tuple[int, int],
        window: tuple[int, int],
        num_heads: int,
        *,
        shift: bool,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        h, w = grid
        wh, ww = window
        if h % wh or w % ww:
            raise ValueError(f"token grid {grid} is not divisible by the window {window}")
        self.grid = grid
        self.window = window
        self.shift = (wh // 2, ww // 2) if shift and (h > wh or w > ww) else (0, 0)
        if h == wh:  # one window covers all latitudes: no shift along them
            self.shift = (0, self.shift[1])
        if w == ww:
            self.shift = (self.shift[0], 0)
        self.attn = WindowAttentionV2(dim, window, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)
        mask = None
        if self.shift[0]:
            with torch.device("cpu"):  # a constant, computed on the CPU for any device
                mask = self._mask()
            mask = mask.to(_default_device())
        self.register_buffer("attn_mask", mask, persistent=False)

    def _mask(self) -> torch.Tensor:
        h, w = self.grid
        wh, ww = self.window
        sh = self.shift[0]
        # label latitude rows by the band they came from; longitude is periodic (one label)
        rows = torch.zeros(h, 1)
        for i, sl in enumerate((slice(0, h - wh), slice(h - wh, h - sh), slice(h - sh, h))):
            rows[sl] = i
        labels = rows.expand(h, w).contiguous()
        win = _partition(labels[None, :, :, None], self.window).squeeze(-1)  # (nW, N)
        diff = win[:, :, None] - win[:, None, :]
        return torch.where(diff != 0, float("-inf"), 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, d = x.shape
        sh, sw = self.shift
        shifted = torch.roll(x, (-sh, -sw), dims=(1, 2)) if (sh or sw) else x
        windows = _partition(shifted, self.window)
        out = self.attn(windows, self.attn_mask)
        out = _merge(out, self.window, (h, w))
        if sh or sw:
            out = torch.roll(out, (sh, sw), dims=(1, 2))
        x = x + self.norm1(out)
        return x + self.norm2(self.mlp(x))


def _partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, D) → (B·nW, wh·ww, D)."""
    b, h, w, d = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, d)


def _merge(x: torch.Tensor, window: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`_partition`."""
    wh, ww = window
    h, w = grid
    d = x.shape[-1]
    x = x.view(-1, h // wh, w // ww, wh, ww, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, d)


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------


class FuXiNet(nn.Module):
    """FuXi's U-Transformer on normalised tensors: ``(B, 2, C, H, W) → (B, C, H, W)``.

    Parameters
    ----------
    in_channels : int
        Number of (variable, level) channels ``C`` (also the number of outputs).
    grid : (int, int)
        Grid size ``(H, W)`` (latitude, longitude). If the patch and window sizes do not
        divide it, the input is padded (longitude periodically, latitude by replicating the
        edge rows) and the output cropped back.
    embed_dim : int
        Width ``D`` of the cube embedding and the transformer.
    depth : int
        Number of Swin Transformer V2 blocks.
    num_heads : int
        Attention heads.
    window_size : (int, int)
        Attention window on the token grid after the Down Block.
    patch_size : (int, int)
        Spatial kernel and stride of the cube embedding (its time kernel is 2).
    num_groups : int
        Groups of the GroupNorm layers.
    mlp_ratio : float
        Hidden width of the transformer MLP relative to ``D``.
    grad_checkpointing : bool
        Recompute the transformer blocks in the backward pass (saves memory in training).

    Notes
    -----
    Architecture of FuXi (Chen et al., 2023, npj Clim. Atmos. Sci. 6:190, §Methods) with
    Swin Transformer V2 blocks (Liu et al., 2022, CVPR): scaled cosine attention with a
    learnable temperature, a continuous relative position bias from an MLP on log-spaced
    coordinates, and post-normalisation (``x + LN(attn(x))``).

    Examples
    --------
    >>> net = FuXiNet(3, (8, 16), **PRESETS["tiny"])
    >>> net(torch.randn(2, 2, 3, 8, 16)).shape
    torch.Size([2, 3, 8, 16])
    """

    def __init__(
        self,
        in_channels: int,
        grid: Sequence[int],
        *,
        embed_dim: int = 96,
        depth: int = 6,
        num_heads: int = 4,
        window_size: Sequence[int] = (4, 8),
        patch_size: Sequence[int] = (2, 2),
        num_groups: int = 8,
        mlp_ratio: float = 4.0,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        for label, value in (
            ("in_channels", in_channels), ("embed_dim", embed_dim), ("depth", depth),
            ("num_heads", num_heads), ("num_groups", num_groups),
        ):  # fmt: skip
            _positive_int(label, value)
        window_size = _int_pair("window_size", window_size)
        patch_size = _int_pair("patch_size", patch_size)
        if (
            isinstance(mlp_ratio, bool)
            or not isinstance(mlp_ratio, numbers.Real)
            or not math.isfinite(mlp_ratio)
            or mlp_ratio <= 0
        ):
            raise TypeError(f"mlp_ratio must be a positive number; got {mlp_ratio!r}")
        if not isinstance(grad_checkpointing, (bool, np.bool_)):  # bool("false") is True
            raise TypeError(f"grad_checkpointing must be true or false; got {grad_checkpointing!r}")
        if embed_dim % num_groups:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_groups {num_groups}")
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"grid must be (H, W) with positive sizes; got {tuple(grid)}")
        self.in_channels = int(in_channels)
        self.grid = (int(grid[0]), int(grid[1]))
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.window_size = (int(window_size[0]), int(window_size[1]))
        self.embed_dim = int(embed_dim)
        self.grad_checkpointing = bool(grad_checkpointing)
        #: JSON-serialisable construction arguments (saved in checkpoints)
        self.config: dict[str, Any] = {
            "in_channels": self.in_channels,
            "grid": list(self.grid),
            "embed_dim": self.embed_dim,
            "depth": int(depth),
            "num_heads": int(num_heads),
            "window_size": list(self.window_size),
            "patch_size": list(self.patch_size),
            "num_groups": int(num_groups),
            "mlp_ratio": float(mlp_ratio),
        }
        ph, pw = self.patch_size
        wh, ww = self.window_size
        mh, mw = 2 * ph * wh, 2 * pw * ww
        self.padded = (-(-self.grid[0] // mh) * mh, -(-self.grid[1] // mw) * mw)
        tokens = (self.padded[0] // (2 * ph), self.padded[1] // (2 * pw))

        self.embed = nn.Conv3d(in_channels, embed_dim, (2, ph, pw), stride=(2, ph, pw))
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.down = DownBlock(embed_dim, num_groups)
        self.blocks = nn.ModuleList(
            SwinV2Block(
                embed_dim,
                tokens,
                self.window_size,
                num_heads,
                shift=bool(i % 2),
                mlp_ratio=mlp_ratio,
            )  # fmt: skip
            for i in range(depth)
        )
        self.up = UpBlock(embed_dim, num_groups)
        self.head = nn.Linear(embed_dim, in_channels * ph * pw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_pair(x, self.in_channels, self.grid)
        b = x.shape[0]
        h, w = self.grid
        x = self._pad(x.flatten(1, 2)).unflatten(1, (2, self.in_channels))
        x = self.embed_norm(self._embed(x))  # (B, H/ph, W/pw, D)
        # the convolutional blocks run on channels-last tensors (B, D, h, w) whose memory is
        # the token layout (B, h, w, D): no copies between them and the transformer
        skip = self.down(x.permute(0, 3, 1, 2))
        t = skip.permute(0, 2, 3, 1)
        for blk in self.blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                t = checkpoint(blk, t, use_reentrant=False)
            else:
                t = blk(t)
        x = self.up.res(self._up(torch.cat([skip.permute(0, 2, 3, 1), t], dim=-1)))
        x = self.head(x.permute(0, 2, 3, 1))  # (B, h', w', C*ph*pw)
        ph, pw = self.patch_size
        hp, wp = x.shape[1], x.shape[2]
        x = x.view(b, hp, wp, self.in_channels, ph, pw).permute(0, 3, 1, 4, 2, 5)
        x = x.reshape(b, self.in_channels, hp * ph, wp * pw)
        top = (self.padded[0] - h) // 2
        return x[:, :, top : top + h, :w]

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """Cube embedding of padded ``(B, 2, C, H, W)`` to tokens ``(B, H/ph, W/pw, D)``.

        Kernel and stride of the Conv3d are equal, so it is one matrix product of the
        flattened (patch row, patch column, time, channel) cubes with the kernel flattened in
        that order (same values to float32 rounding, without the 3-D convolution's im2col
        and layout copies).
        """
        if torch.onnx.is_in_onnx_export():
            return self.embed(x.transpose(1, 2)).squeeze(2).permute(0, 2, 3, 1)
        b, _, c, hp, wp = x.shape
        ph, pw = self.patch_size
        cubes = x.flatten(1, 2).permute(0, 2, 3, 1)  # (B, H, W, 2·C)
        cubes = cubes.reshape(b, hp // ph, ph, wp // pw, pw, 2 * c).transpose(2, 3)
        cubes = cubes.reshape(b, hp // ph, wp // pw, ph * pw * 2 * c)
        weight = self.embed.weight.permute(0, 3, 4, 2, 1).reshape(self.embed_dim, -1)
        return F.linear(cubes, weight, self.embed.bias)

    def _up(self, t: torch.Tensor) -> torch.Tensor:
        """The Up Block's 2×2 stride-2 transposed convolution on tokens ``(B, h, w, 2D)``.

        Returns channels-last ``(B, D, 2h, 2w)``. Kernel and stride are equal, so each
        token is mapped by one matrix product to its 2×2 output pixels (same values to
        float32 rounding).
        """
        conv = self.up.conv
        if torch.onnx.is_in_onnx_export():
            return conv(t.permute(0, 3, 1, 2))
        b, h, w, _ = t.shape
        d = self.embed_dim
        weight = conv.weight.reshape(2 * d, d * 4)  # (in, out·2·2)
        y = (t @ weight).view(b, h, w, d, 2, 2).permute(0, 1, 4, 2, 5, 3)
        y = y.reshape(b, 2 * h, 2 * w, d) + conv.bias
        return y.permute(0, 3, 1, 2)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        ph, pw = self.padded[0] - h, self.padded[1] - w
        if pw:
            x = torch.cat([x, x[..., :pw]], dim=-1)  # periodic in longitude
        if ph:
            top = ph // 2
            x = F.pad(x, (0, 0, top, ph - top), mode="replicate")
        return x


def _default_device() -> torch.device:
    """The device new tensors go to (``torch.get_default_device``, torch ≥ 2.3; the device of
    a new tensor before)."""
    get = getattr(torch, "get_default_device", None)
    return get() if get is not None else torch.empty(0).device


def _positive_int(label: str, value: Any) -> int:
    """``value`` if it is a positive integer (not a bool, a float or a string)."""
    if not is_integer(value):
        raise TypeError(f"{label} must be an integer; got {value!r}")
    if value < 1:
        raise ValueError(f"{label} must be positive; got {value}")
    return int(value)


def _int_pair(label: str, value: Any) -> tuple[int, int]:
    """``(n, n)`` of a positive integer, or a pair of positive integers (not a string)."""
    if is_integer(value):
        value = (value, value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{label} must be an integer or a pair of integers; got {value!r}")
    return (_positive_int(label, value[0]), _positive_int(label, value[1]))


def build_fuxi(
    preset: str | dict[str, Any] = "small",
    *,
    in_channels: int | None = None,
    grid: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> FuXiNet:
    """Build a :class:`FuXiNet` from a named preset (or a dict of its arguments).

    Parameters
    ----------
    preset : str or dict
        ``"paper"``, ``"small"`` or ``"tiny"`` (see :data:`PRESETS`), or FuXiNet arguments.
    in_channels, grid : optional
        Channels and grid; required unless the preset records them (``"paper"``: 70 channels
        on 720 × 1440).
    device : str or torch.device, optional
        ``"meta"`` builds the network without allocating parameter memory (shape only).
    **overrides
        Replace any preset argument.

    Returns
    -------
    FuXiNet

    Raises
    ------
    ValueError
        Unknown preset, or channels/grid missing.

    Examples
    --------
    >>> net = build_fuxi("paper", device="meta")
    >>> count_parameters(net) > 10**9
    True
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown FuXi preset {preset!r}; known: {sorted(PRESETS)}")
        kwargs = dict(PRESETS[preset])
    else:
        kwargs = dict(preset)
    default_c = kwargs.pop("channels", None)
    default_grid = kwargs.pop("grid", None)
    kwargs.update(overrides)
    c = in_channels if in_channels is not None else default_c
    g = grid if grid is not None else default_grid
    if c is None or g is None:
        raise ValueError(f"preset {preset!r} needs in_channels and grid")
    with torch.device(device or "cpu"):
        return FuXiNet(int(c), tuple(int(v) for v in g), **kwargs)
