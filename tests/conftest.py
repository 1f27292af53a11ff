"""Shared fixtures: the tiny worlds and models of :mod:`tests.tiny`."""

from __future__ import annotations

import pytest

from tests import tiny


@pytest.fixture
def tiny_dataset():
    """Factory ``tiny_dataset(n_time=4, seed=0)``: states of the 8 × 16 ensemble world."""
    return tiny.dataset


@pytest.fixture
def tiny_model():
    """Factory ``tiny_model(net=None, residual=True)``: a model on the ensemble world."""
    return tiny.model


@pytest.fixture
def tiny_fuxi_checkpoint(tmp_path):
    """``(directory, model)``: a tiny FuXi U-Transformer saved in ``tmp_path``."""
    return tiny.fuxi_checkpoint(tmp_path)


@pytest.fixture
def da_model():
    """The 3 × 4 En4DVar world's model with the :class:`tests.tiny.TinyNonlinear` step."""
    return tiny.da_model(tiny.TinyNonlinear())


@pytest.fixture
def da_background():
    """Three background states of the 3 × 4 En4DVar world."""
    return tiny.da_background()


@pytest.fixture
def fuxi_da_case():
    """``(background, radiances, model)``: a FuXi-DA case on the tiny DA world (two imager
    channels, two frames, a background 1 K too warm, a tiny network with a random head)."""
    import torch

    from tests import tiny_da
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.observations.imager import imager_observations

    truth = tiny_da.truth(4)
    radiances = imager_observations(
        truth, satellites=[90.0], channels=["wv6.2", "ir10.8"], frames=(-2.0, 0.0)
    )
    background = truth.sel(time=radiances["time"].values) + 0.0
    background["temperature"] = background["temperature"] + 1.0
    model = tiny_da_model()
    with torch.no_grad():
        model.net.head.weight.normal_(0, 0.05)
    return background, radiances, model
