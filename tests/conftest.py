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
