"""FuXi-ENS internals: the perturbation VAE, its checkpoints, and its training loss / loop."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import tiny
from xfuxi.models.base import ForecastModel, NormStats
from xfuxi.models.checkpoint import ChecksumError
from xfuxi.models.ens import (
    PerturbationVAE,
    ensemble_rollout,
    load_perturbation,
    member_generators,
    save_perturbation,
    shipped_perturbations,
)
from xfuxi.training.calibration import TuningRun, tune_amplitude
from xfuxi.training.config import PerturbationTrainConfig
from xfuxi.training.ens import train_perturbation
from xfuxi.training.gains import apply_model_gain, tune_early_gain, tune_model_gain
from xfuxi.training.losses import ensemble_loss, fair_crps, gaussian_kl

LAT, LON, CHANNELS, STD, MEAN = tiny.LAT, tiny.LON, tiny.CHANNELS, tiny.STD, tiny.MEAN


def _crps_brute(ens: np.ndarray, y: np.ndarray, fair: bool) -> np.ndarray:
    """O(M²) reference: mean |x_i − y| − Σ_{i,j} |x_i − x_j| / (2 M (M−1) or 2 M²)."""
    m = ens.shape[0]
    skill = np.mean(np.abs(ens - y), axis=0)
    pairs = sum(np.abs(ens[i] - ens[j]) for i, j in itertools.product(range(m), range(m)))
    if m == 1:
        return skill
    return skill - pairs / (2 * m * (m - 1) if fair else 2 * m * m)


# ---------------------------------------------------------------------------------- fair CRPS
@pytest.mark.parametrize("fair", [True, False])
@pytest.mark.parametrize("m", [1, 2, 5])
def test_fair_crps_matches_brute_force(m, fair):
    rng = np.random.default_rng(m)
    ens, y = rng.normal(size=(m, 3, 4)), rng.normal(size=(3, 4))
    got = fair_crps(torch.from_numpy(ens), torch.from_numpy(y), fair=fair).numpy()
    np.testing.assert_allclose(got, _crps_brute(ens, y, fair), rtol=1e-12, atol=1e-12)


def test_standard_crps_matches_properscoring():
    properscoring = pytest.importorskip("properscoring")
    rng = np.random.default_rng(3)
    ens, y = rng.normal(size=(7, 20)), rng.normal(size=20)
    got = fair_crps(torch.from_numpy(ens), torch.from_numpy(y), fair=False).numpy()
    np.testing.assert_allclose(got, properscoring.crps_ensemble(y, ens.T), rtol=1e-10)


def test_one_member_crps_is_absolute_error():
    x, y = torch.tensor([[1.5, -2.0]]), torch.tensor([1.0, 1.0])
    torch.testing.assert_close(fair_crps(x, y), torch.tensor([0.5, 3.0]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=2, max_size=8), st.floats(-100, 100))
def test_fair_crps_property_matches_brute_force(members, y):
    ens = np.asarray(members)[:, None]
    got = fair_crps(torch.from_numpy(ens), torch.tensor([y], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, _crps_brute(ens, np.array([y]), True), atol=1e-9)


def test_fair_crps_gradients_are_correct():
    torch.manual_seed(0)
    ens = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e, t: fair_crps(e, t), (ens, y))
    # analytic gradient: d/dx_i = sign(x_i − y)/M − Σ_j sign(x_i − x_j)/(M (M−1))
    e = ens.detach().clone().requires_grad_(True)
    fair_crps(e, y.detach()).sum().backward()
    m = e.shape[0]
    x = e.detach()
    expect = torch.sign(x - y.detach()) / m - torch.sign(x[:, None] - x[None]).sum(1) / (
        m * (m - 1)
    )
    torch.testing.assert_close(e.grad, expect)


# ---------------------------------------------------------------------------------- KL term
def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(1)
    mq, lq, mp, lp = (torch.randn(5, 3, dtype=torch.float64) for _ in range(4))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mq, lq.exp()), torch.distributions.Normal(mp, lp.exp())
    )
    torch.testing.assert_close(gaussian_kl(mq, lq, mp, lp), ref)


def test_gaussian_kl_gradients_are_correct():
    torch.manual_seed(2)
    args = tuple(torch.randn(6, dtype=torch.float64, requires_grad=True) for _ in range(4))
    assert torch.autograd.gradcheck(gaussian_kl, args)
    # KL is zero and stationary at q = p
    mu = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ls = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    kl = gaussian_kl(
        mu, ls, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    )
    kl.sum().backward()
    assert float(kl.detach().sum()) == 0.0
    assert torch.all(mu.grad == 0) and torch.all(ls.grad == 0)


# ---------------------------------------------------------------------------------- the VAE
def _vae(seed: int = 0, **kw) -> PerturbationVAE:
    torch.manual_seed(seed)
    kw = {"hidden": 6, "latent": 2, **kw}
    return PerturbationVAE(CHANNELS, (LAT.size, LON.size), stats=tiny.stats(), **kw)


def _pair(b: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 2, len(CHANNELS), LAT.size, LON.size, generator=g)
    return x * torch.tensor(STD, dtype=torch.float32).view(1, 1, -1, 1, 1) + torch.tensor(
        MEAN, dtype=torch.float32
    ).view(1, 1, -1, 1, 1)


def test_vae_shapes_units_and_flow_dependence():
    vae = _vae()
    x = _pair()
    assert vae.latent_shape == (2, 2, 4)
    eps = torch.randn(3, *vae.latent_shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        d = vae.perturb(x, eps)
    assert d.shape == (3, len(CHANNELS), 8, 16)
    # physical units: the tracer perturbation is std-scaled (std 0.1 vs 5)
    ratio = float(d[:, 0].std() / d[:, 2].std())
    assert 5 < ratio < 500
    # flow-dependent: same noise, different states -> different perturbations
    with torch.no_grad():
        d2 = vae.perturb(_pair(seed=1), eps)
        d3 = vae.perturb(x, torch.randn(3, *vae.latent_shape))
    assert not torch.allclose(d, d2)
    assert not torch.allclose(d, d3)  # noise matters


def test_centered_perturbation_is_odd_in_the_noise():
    x = _pair()
    eps = torch.randn(3, 2, 2, 4, generator=torch.Generator().manual_seed(1))
    centered, direct = _vae(centered=True), _vae(centered=False)
    with torch.no_grad():
        d_pos, d_neg = centered.perturb(x, eps), centered.perturb(x, -eps)
        assert torch.allclose(d_pos, -d_neg, atol=1e-5 * float(d_pos.abs().max()))
        assert float(centered.perturb(x, torch.zeros_like(eps)).abs().max()) == 0.0
        # decoding z directly keeps the prior mean: not odd
        e_pos, e_neg = direct.perturb(x, eps), direct.perturb(x, -eps)
    assert not torch.allclose(e_pos, -e_neg, atol=1e-3 * float(e_pos.abs().max()))


def test_vae_rejects_bad_shapes():
    vae = _vae()
    with pytest.raises(ValueError, match="expected input pair"):
        vae.perturb(torch.zeros(3, 2, 2, 4, 16), torch.zeros(3, 2, 2, 4))
    with pytest.raises(ValueError, match="expected noise"):
        vae.perturb(_pair(), torch.zeros(3, 2, 3, 3))
    with pytest.raises(ValueError, match="latent"):
        PerturbationVAE(CHANNELS, (8, 16), latent=0)
    with pytest.raises(ValueError, match=r"stats\.mean"):
        PerturbationVAE(CHANNELS, (8, 16), stats=NormStats.identity(len(CHANNELS) + 1))


def test_vae_is_periodic_in_longitude():
    vae = _vae().eval()
    x = _pair(1)
    eps = torch.randn(1, *vae.latent_shape)
    shift = 4  # 16 longitudes / 4 coarse cells -> one coarse cell
    a = vae.perturb(torch.roll(x, shift, dims=-1), torch.roll(eps, 1, dims=-1))
    b = torch.roll(vae.perturb(x, eps), shift, dims=-1)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip(tmp_path):
    vae = _vae(init_scale=0.3)
    with torch.no_grad():
        vae.log_scale.add_(0.1)
    out = save_perturbation(vae, tmp_path / "ck", metadata={"note": "x"})
    assert sorted(p.name for p in out.iterdir()) == [
        ".xfuxi-output.json", "config.json", "manifest.json", "weights.safetensors"
    ]  # fmt: skip
    back = load_perturbation(tmp_path / "ck")
    x, eps = _pair(), torch.randn(3, *vae.latent_shape)
    torch.testing.assert_close(back.perturb(x, eps), vae.eval().perturb(x, eps))
    assert back.channels == vae.channels and back.metadata == {"note": "x"}
    np.testing.assert_allclose(back.stats.std, STD)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no perturbation module"):
        load_perturbation(tmp_path / "nothing-here")
    from xfuxi.models.checkpoint import write_checkpoint

    files = {"config.json": b'{"format": "other"}', "weights.safetensors": b""}
    write_checkpoint(tmp_path / "bad", files, kind="perturbation")
    with pytest.raises(ValueError, match="not a perturbation checkpoint"):
        load_perturbation(tmp_path / "bad")
    save_perturbation(_vae(), tmp_path / "ok")
    weights = tmp_path / "ok" / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="sha256"):
        load_perturbation(tmp_path / "ok")


def test_perturbation_store_verifies_every_file_and_names_paths(tmp_path):
    """Issue 19/20: one store for perturbation modules too: the config is verified as well as
    the weights (a tampered gain loaded silently before), by name and by path."""
    from xfuxi.files import OutputExistsError
    from xfuxi.models.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

    d = save_perturbation(_vae(), tmp_path / "ok")
    config = json.loads((d / "config.json").read_text())
    config["initial_gain"] = [10.0] * len(config["initial_gain"])
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ChecksumError, match=r"ok/config\.json .*corrupt or was modified"):
        load_perturbation(d)
    d = save_perturbation(_vae(), tmp_path / "nomanifest")
    (d / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"nomanifest has no manifest\.json"):
        load_perturbation(d)
    with pytest.raises(OutputExistsError, match="overwrite"):
        save_perturbation(_vae(), tmp_path / "ok")
    save_perturbation(_vae(init_scale=0.3), tmp_path / "ok", overwrite=True)
    assert load_perturbation(tmp_path / "ok").config["init_scale"] == 0.3
    # a std of zero in a module's statistics names the channel
    files = read_checkpoint(tmp_path / "ok")
    config = json.loads(files["config.json"])
    config["stats"]["std"][0] = 0.0
    files["config.json"] = json.dumps(config).encode()
    write_checkpoint(tmp_path / "zero", files, kind="perturbation")
    with pytest.raises(CheckpointError, match=r"'std' of 'temperature@500' is 0\.0"):
        load_perturbation(tmp_path / "zero")
    with pytest.raises(CheckpointError, match="shipped forecast-model.*load_model"):
        load_perturbation("fuxi-hs-t21")


def test_shipped_perturbation_loads_if_present():
    from xfuxi.models.checkpoint import PRETRAINED_DIR

    if not (PRETRAINED_DIR / "fuxi-ens-hs-t21" / "config.json").is_file():
        pytest.skip("shipped perturbation module not built yet")
    assert shipped_perturbations() == ["fuxi-ens-hs-t21"]
    vae = load_perturbation("fuxi-ens-hs-t21")
    assert vae.name == "fuxi-ens-hs-t21"
    x = torch.randn(2, 2, vae.n_channels, *vae.grid_shape) * torch.as_tensor(
        vae.stats.std, dtype=torch.float32
    ).view(1, 1, -1, 1, 1)
    d = vae.perturb(x, torch.randn(2, *vae.latent_shape))
    assert torch.isfinite(d).all()
    # its stage gains name stages of the shipped cascade (a renamed stage would lose them)
    import xfuxi

    stages = {m.name for m in xfuxi.load_model("fuxi-hs-t21-cascade").stages}
    assert vae.config["model_gain"] and set(vae.config["model_gain"]) <= stages


# ------------------------------------------------------------------------- generators, rollout
def test_member_generators_are_keyed_not_positional():
    a = member_generators(5, [(0, 0), (0, 1), (6, 0)])
    b = member_generators(5, [(0, 1)])
    draws = [torch.randn(4, generator=g) for g in a]
    assert torch.equal(draws[1], torch.randn(4, generator=b[0]))
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    c = member_generators(6, [(0, 1)])
    assert not torch.equal(draws[1], torch.randn(4, generator=c[0]))
    with pytest.raises(ValueError, match="seed"):
        member_generators(-1, [(0, 0)])


class _Persist(torch.nn.Module):
    def forward(self, x):
        return x[:, 1]


def _model(name: str = "persist") -> ForecastModel:
    return tiny.model(_Persist(), residual=False, name=name)


def _cascade(switch: int = 2):
    from xfuxi.models.cascade import Cascade

    return Cascade([_model("short"), _model("medium")], switch_steps=[switch])


def test_rollout_perturbs_initial_state_and_every_step():
    model, vae = _model(), _vae().eval()
    x = _pair(2)
    gens = member_generators(0, [(0, 0), (0, 1)])
    with torch.no_grad():
        outs = list(ensemble_rollout(model, x, steps=3, generators=gens, perturbation=vae))
        # reference by hand with the same noise stream
        gens = member_generators(0, [(0, 0), (0, 1)])
        state = x.clone()
        for k in range(3):
            eps = torch.stack([torch.randn(vae.latent_shape, generator=g) for g in gens])
            curr = state[:, 1] + vae.perturb(state, eps)
            torch.testing.assert_close(outs[k], curr)  # persistence: output = perturbed state
            state = torch.stack([curr, curr], dim=1)
    assert not torch.allclose(outs[0], x[:, 1])  # the initial state is perturbed
    assert not torch.allclose(outs[1], outs[0])  # and every step again
    with pytest.raises(ValueError, match="one generator per row"):
        next(ensemble_rollout(model, x, steps=1, generators=gens[:1], perturbation=vae))


# ---------------------------------------------------------------------------------- training
def test_ensemble_loss_gradients_reach_vae_only_and_match_finite_differences():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(1, 2), torch.nn.Conv2d(6, 3, 3, padding=1))
    model = tiny.model(net.double(), residual=True).double()
    for p in model.parameters():
        p.requires_grad_(False)
    vae = _vae(hidden=3).double()
    seq = torch.cat([_pair(2, 0), _pair(2, 1)[:, :1]], dim=1).double()  # (2, 3, C, H, W)
    w = torch.ones(LAT.size, dtype=torch.float64)

    def loss_at(scale: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            vae.log_scale.copy_(scale)
        g = torch.Generator().manual_seed(3)
        loss, _ = ensemble_loss(vae, model, seq, members=3, kl_weight=0.5, weights=w, generator=g)
        return loss

    base = vae.log_scale.detach().clone()
    vae.zero_grad()
    loss_at(base).backward()
    assert all(p.grad is None for p in model.parameters())
    grads = [p.grad for p in vae.parameters()]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    analytic = vae.log_scale.grad.clone()
    h = 1e-6
    for c in range(len(CHANNELS)):
        up, dn = base.clone(), base.clone()
        up[0, c] += h
        dn[0, c] -= h
        fd = (loss_at(up) - loss_at(dn)) / (2 * h)
        torch.testing.assert_close(analytic[0, c, 0, 0], fd.detach(), rtol=1e-4, atol=1e-8)


def test_ensemble_loss_parts_and_checks():
    vae, model = _vae(), _model()
    seq = torch.cat([_pair(2, 0), _pair(2, 1)], dim=1)  # K = 2 rollout steps
    w = torch.ones(LAT.size)
    loss, parts = ensemble_loss(vae, model, seq, members=2, kl_weight=2.0, weights=w)
    assert float(loss.detach()) == pytest.approx(parts["crps"] + 2.0 * parts["kl"], rel=1e-5)
    assert parts["kl"] >= 0 and parts["crps"] > 0
    with pytest.raises(ValueError, match="members"):
        ensemble_loss(vae, model, seq, members=1, kl_weight=1.0, weights=w)
    with pytest.raises(ValueError, match="sample"):
        ensemble_loss(vae, model, seq, members=2, kl_weight=1.0, weights=w, sample="x")


def _random_walk(n_time: int, sigma: float, seed: int) -> xr.Dataset:
    """States x_{t+1} = x_t + sigma·std·ε: persistence is right on average, off by sigma."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n_time, len(CHANNELS), LAT.size, LON.size)) * sigma
    x = np.cumsum(steps, axis=0) * STD[None, :, None, None] + MEAN[None, :, None, None]
    return xr.Dataset(
        {
            "temperature": (("time", "level", "latitude", "longitude"), x[:, :2]),
            "passive_tracer": (("time", "latitude", "longitude"), x[:, 2]),
        },
        coords={
            "time": pd.date_range("2002-01-01", periods=n_time, freq="6h"),
            "level": [500, 850],
            "latitude": LAT,
            "longitude": LON,
        },
    )


def test_training_learns_spread_keeps_model_frozen_and_checkpoints(tmp_path):
    # persistence on a random walk of step 0.3 std: the best ensemble perturbs each state by
    # ~0.3 std; the module starts at 0.01 std, so training must raise the perturbation scale
    model = _model()
    model.net.register_parameter("dummy", torch.nn.Parameter(torch.ones(1)))
    data = _random_walk(60, 0.3, 0)
    vae = _vae(init_scale=0.01)
    torch.manual_seed(0)
    cfg = PerturbationTrainConfig(members=4, kl_weight=1e-3, iterations=40, batch_size=4,
                                  lr=1e-2, checkpoint_every=20, validate_every=20)  # fmt: skip
    vae, hist = train_perturbation(
        model, data, config=cfg.replace(checkpoint_dir=tmp_path), perturbation=vae,
        validation=_random_walk(20, 0.3, 1), progress=False,
    )  # fmt: skip
    assert len(hist["loss"]) == 40 and hist["val_iteration"] == [0, 20, 40]
    assert hist["val_crps"][-1] < 0.8 * hist["val_crps"][0], hist["val_crps"]
    assert float(model.net.dummy.detach()) == 1.0 and model.net.dummy.requires_grad
    assert not vae.training
    assert (tmp_path / "latest" / "config.json").is_file()
    meta = json.loads((tmp_path / "latest" / "config.json").read_text())["metadata"]
    assert meta["iteration"] == 40 and meta["base_model"] == "persist"
    # resume continues counting from the checkpoint
    saved = {k: v for k, v in meta.items() if k not in ("iteration", "base_model")}
    # the configuration is saved
    assert PerturbationTrainConfig.from_dict(saved) == cfg.replace(checkpoint_dir=tmp_path)
    _, hist2 = train_perturbation(
        model, data,
        config=cfg.replace(iterations=42, checkpoint_dir=tmp_path),
        perturbation=_vae(), progress=False,
    )  # fmt: skip
    assert hist2["iteration"][-1] == 42 and len(hist2["loss"]) == 42


class _Killed(BaseException):
    """A process killed mid-write (not an Exception: nothing may catch and carry on)."""


def test_training_resume_after_a_kill_while_checkpointing_is_bit_exact(tmp_path, monkeypatch):
    """Issue 20 item 5 for FuXi-ENS training: the checkpoint (module, optimizer, random
    generators, history) is one unit; a run killed while writing the iteration-4 checkpoint
    resumes from iteration 2 and ends bit-identical to an uninterrupted run (before, the
    optimizer state and the generators were not saved, and weights and config were two
    separately replaced files)."""
    import os

    model, data = _model(), _random_walk(30, 0.3, 0)
    cfg = PerturbationTrainConfig(members=2, iterations=4, batch_size=2, lr=1e-2,
                                  checkpoint_every=2, validate_every=100)  # fmt: skip
    full, hist = train_perturbation(
        model,
        data,
        perturbation=_vae(),
        config=cfg.replace(checkpoint_dir=tmp_path / "a"),
        progress=False,
    )
    real = os.replace
    calls = []

    real_link = os.link  # a new file is published by a hard link: counted as a rename

    def dying(a, b, op=real):
        calls.append(a)
        if len(calls) == 5:  # iteration 2's checkpoint took 3 renames; die in the next one
            raise _Killed
        return op(a, b)

    monkeypatch.setattr(os, "replace", dying)
    monkeypatch.setattr(os, "link", lambda a, b: dying(a, b, op=real_link))
    with pytest.raises(_Killed):
        train_perturbation(
            model,
            data,
            perturbation=_vae(),
            config=cfg.replace(checkpoint_dir=tmp_path / "b"),
            progress=False,
        )
    monkeypatch.setattr(os, "replace", real)
    monkeypatch.setattr(os, "link", real_link)
    meta = load_perturbation(tmp_path / "b" / "latest").metadata
    assert meta["iteration"] == 2
    resumed, hist2 = train_perturbation(
        model,
        data,
        perturbation=_vae(1),
        config=cfg.replace(resume=True, checkpoint_dir=tmp_path / "b"),
        progress=False,
    )
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    assert hist2 == hist


def test_training_rejects_data_without_consecutive_times():
    data = _random_walk(6, 0.3, 0).isel(time=[0, 2, 4])
    with pytest.raises(Exception, match="consecutive"):
        train_perturbation(_model(), data, config={"iterations": 1}, progress=False)


def test_training_old_checkpoint_dir_and_device_keywords_still_work(tmp_path):
    """checkpoint_dir and device moved into PerturbationTrainConfig; the keywords warn."""
    model, data = _model(), _random_walk(20, 0.3, 0)
    cfg = PerturbationTrainConfig(iterations=2, batch_size=2, hidden=4, latent=2)
    with pytest.warns(
        DeprecationWarning,
        match=r"pass config=PerturbationTrainConfig\(checkpoint_dir=\.\.\., device=\.\.\.\)",
    ):
        _, hist = train_perturbation(model, data, config=cfg, checkpoint_dir=tmp_path,
                                     device="cpu", progress=False)  # fmt: skip
    assert hist["iteration"] == [1, 2]
    meta = load_perturbation(tmp_path / "latest").metadata
    assert (meta["checkpoint_dir"], meta["device"]) == (str(tmp_path), "cpu")


def test_training_old_keywords_warn_and_match_the_config():
    """Issue 19 item 3: the old keywords map to PerturbationTrainConfig (with a warning)."""
    model, data = _model(), _random_walk(20, 0.3, 0)
    torch.manual_seed(1)
    new, hist = train_perturbation(
        model, data, config=PerturbationTrainConfig(iterations=3, batch_size=2, hidden=6,
                                                    latent=2), progress=False,
    )  # fmt: skip
    torch.manual_seed(1)
    with pytest.warns(DeprecationWarning, match="PerturbationTrainConfig"):
        old, hist_old = train_perturbation(model, data, iterations=3, batch_size=2,
                                           vae_kwargs={"hidden": 6, "latent": 2},
                                           progress=False)  # fmt: skip
    assert hist == hist_old
    for p, q in zip(new.state_dict().values(), old.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="PerturbationTrainConfig.members"):
        PerturbationTrainConfig(members=1)
    with pytest.raises(TypeError, match="initial_gain"):
        train_perturbation(model, data, vae_kwargs={"initial_gain": [1.0, 1.0]})


def test_tune_amplitude_finds_the_random_walk_step():
    # persistence on a random walk of step 0.3 std: Gaussian initial noise of 0.3 std makes
    # the lead-1 ensemble exactly the truth's distribution, so it has the lowest CRPS
    data = _random_walk(8, 0.3, 2)
    best, score = tune_amplitude(
        data, model=_model(), method="gaussian", amplitudes=[0.03, 0.3, 1.5],
        run=TuningRun(n=8, steps=1), progress=False,
    )  # fmt: skip
    assert best == 0.3
    # the old keywords still work, with a warning naming the new spelling
    with pytest.warns(DeprecationWarning, match=r"pass run=TuningRun\(n=\.\.\., steps=\.\.\.\)"):
        old, old_score = tune_amplitude(
            data, model=_model(), method="gaussian", amplitudes=[0.03, 0.3, 1.5], n=8,
            steps=1, progress=False,
        )  # fmt: skip
    assert old == best and old_score.equals(score)
    with pytest.raises(TypeError, match="stepz"):
        tune_amplitude(data, model=_model(), method="gaussian", amplitudes=[0.3], stepz=1)
    assert score.dims == ("amplitude",) and score.sizes["amplitude"] == 3
    assert score.sel(amplitude=0.3) < score.sel(amplitude=0.03)
    with pytest.raises(ValueError, match="at least one"):
        tune_amplitude(data, model=_model(), method="gaussian", amplitudes=[])


def test_early_gain_scales_the_first_steps_only(tmp_path):
    vae = _vae().eval()
    x, eps = _pair(), torch.randn(3, *vae.latent_shape)
    with torch.no_grad():
        plain = vae.perturb(x, eps)
        vae.set_early_gain([3.0, 3.0, 1.0], 2)
        scale = torch.tensor([3.0, 3.0, 1.0]).view(1, -1, 1, 1)
        for step, factor in ((0, 1.0), (1, scale), (2, scale), (3, 1.0), (None, 1.0)):
            torch.testing.assert_close(vae.perturb(x, eps, step=step), plain * factor)
    back = load_perturbation(save_perturbation(vae, tmp_path / "ck"))
    assert back.config["early_gain"] == [3.0, 3.0, 1.0] and back.config["early_steps"] == 2
    with torch.no_grad():
        torch.testing.assert_close(back.perturb(x, eps, step=1), plain * scale)
    # the early steps are shared: another channel's gain over other steps is refused
    from xfuxi.training.gains import apply_early_gain

    with pytest.raises(ValueError, match="shared by all channels"):
        apply_early_gain(vae, [("passive_tracer", None)], 2.0, 4)
    apply_early_gain(vae, [("passive_tracer", None)], 2.0, 2)
    assert vae.config["early_gain"] == [3.0, 3.0, 2.0] and vae.config["early_steps"] == 2
    # so is a second gain of the same channel over other steps (it cut the first one short)
    alone = apply_early_gain(_vae(), [("passive_tracer", None)], 3.0, 4)
    with pytest.raises(ValueError, match="shared by all channels"):
        apply_early_gain(alone, [("passive_tracer", None)], 2.0, 2)
    apply_early_gain(alone, [("passive_tracer", None)], 2.0, 4)  # over the same steps: 6
    assert alone.config["early_gain"] == [1.0, 1.0, 6.0] and alone.config["early_steps"] == 4
    with pytest.raises(ValueError, match="early_steps"):
        vae.set_early_gain([1.0, 1.0, 1.0], -1)
    with pytest.raises(ValueError, match="positive"):
        _vae(early_gain=[0.0, 1.0, 1.0], early_steps=1)


def test_tune_early_gain_finds_the_gain_that_matches_the_random_walk():
    # persistence on a random walk of step 0.3 std, perturbations of 0.03 std: far too little
    # spread; a gain of 10 on every step after the first matches the walk, 100 overshoots
    data = _random_walk(40, 0.3, 3)
    vae = _vae(init_scale=0.03).eval()
    before = vae.config.copy()
    best, scores = tune_early_gain(
        data, model=_model(), perturbation=vae, channels=[("temperature", 500.0)],
        gains=[10.0, 100.0], steps_options=[4],
        run=TuningRun(n=16, steps=4, band=(0.5, 2.0), after_hours=6), progress=False,
    )  # fmt: skip
    assert best == (10.0, 4)
    assert scores.sizes["candidate"] == 3 and float(scores["in_band"][0]) == 0.0
    assert float(scores["in_band"][1]) == 1.0
    assert vae.config == before  # the module is left as it was
    # scored on the other channel only, which keeps far too little spread whatever the gain
    _, scores = tune_early_gain(
        data, model=_model(), perturbation=vae, channels=[("temperature", 500.0)],
        score_channels=[("passive_tracer", None)], gains=[10.0], steps_options=[4],
        run=TuningRun(n=16, steps=4, band=(0.5, 2.0), after_hours=6), progress=False,
    )  # fmt: skip
    assert scores.attrs["score_channels"] == ["passive_tracer"]
    np.testing.assert_array_equal(scores["in_band"], [0.0, 0.0])
    with pytest.raises(ValueError, match="unknown"):
        tune_early_gain(data, model=_model(), perturbation=vae, channels=[("u", 1.0)],
                        gains=[2.0], steps_options=[1], progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="no lead after"):
        tune_early_gain(data, model=_model(), perturbation=vae,
                        channels=[("temperature", 500.0)], gains=[2.0], steps_options=[1],
                        run=TuningRun(steps=4), progress=False)  # fmt: skip


def test_model_gain_scales_the_perturbations_before_that_models_steps(tmp_path):
    vae = _vae().eval()
    x, eps = _pair(), torch.randn(3, *vae.latent_shape)
    scale = torch.tensor([2.0, 2.0, 1.0]).view(1, -1, 1, 1)
    with torch.no_grad():
        plain = vae.perturb(x, eps)
        vae.set_model_gain("medium", [2.0, 2.0, 1.0])
        vae.set_early_gain([3.0, 3.0, 3.0], 1)
        torch.testing.assert_close(vae.perturb(x, eps, model="short"), plain)
        torch.testing.assert_close(vae.perturb(x, eps, step=5, model="medium"), plain * scale)
        # on top of the early gain
        torch.testing.assert_close(vae.perturb(x, eps, step=1, model="medium"), plain * 3 * scale)
        # a stage wrapped by with_spectral_filter / with_single_time_input ("medium+T21",
        # "medium+1t") takes the factors of the model it wraps: a filtered cascade lost them
        for wrapped in ("medium+T21", "medium+1t+T21"):
            torch.testing.assert_close(vae.perturb(x, eps, step=5, model=wrapped), plain * scale)
        torch.testing.assert_close(vae.perturb(x, eps, step=5, model="mediumT21"), plain)
        # applying a gain for the wrapped stage multiplies the factors it uses (it wrote a
        # new "medium+T21" entry that shadowed them: the gain of 2 was lost, not doubled)
        apply_model_gain(vae, "medium+T21", 2.0)
        assert vae.config["model_gain"] == {"medium": [4.0, 4.0, 2.0]}
        vae.set_model_gain("medium", [2.0, 2.0, 1.0])
        vae.set_early_gain([1.0, 1.0, 1.0], 0)
        # a rollout through a cascade: the first two steps by "short", the third by "medium"
        gens = member_generators(0, [(0, 0), (0, 1), (0, 2)])
        outs = list(ensemble_rollout(_cascade(2), x, steps=3, generators=gens, perturbation=vae))
        gens = member_generators(0, [(0, 0), (0, 1), (0, 2)])
        state = x.clone()
        for k, factor in enumerate((1.0, 1.0, scale)):
            e = torch.stack([torch.randn(vae.latent_shape, generator=g) for g in gens])
            curr = state[:, 1] + vae.perturb(state, e) * factor
            torch.testing.assert_close(outs[k], curr)
            state = torch.stack([curr, curr], dim=1)
    back = load_perturbation(save_perturbation(vae, tmp_path / "ck", metadata={"base": "m"}))
    assert back.config["model_gain"] == {"medium": [2.0, 2.0, 1.0]}
    # a loaded module re-saved keeps its metadata (it was dropped: resuming its training
    # checks the base model recorded there); new entries are merged over it
    again = load_perturbation(save_perturbation(back, tmp_path / "ck2", metadata={"n": 1}))
    assert again.metadata == {"base": "m", "n": 1}
    vae.set_model_gain("medium", None)
    assert vae.config["model_gain"] == {}
    with pytest.raises(ValueError, match="positive"):
        vae.set_model_gain("medium", [1.0])


def test_tune_model_gain_finds_the_gain_that_matches_the_random_walk():
    # persistence on a random walk of step 0.3 std, perturbations of 0.03 std: far too little
    # spread; a gain of 10 on the second stage's steps matches the walk there, 100 overshoots
    data = _random_walk(40, 0.3, 3)
    vae = _vae(init_scale=0.03).eval()
    best, scores = tune_model_gain(
        data, model=_cascade(2), perturbation=vae, stage=1, gains=[10.0, 100.0],
        run=TuningRun(n=16, steps=4, band=(0.5, 2.0)), progress=False,
    )  # fmt: skip
    assert best == 10.0
    assert list(scores["gain"].values) == [1.0, 10.0, 100.0]
    assert float(scores["in_band"].sel(gain=1.0)) == 0.0
    assert float(scores["in_band"].sel(gain=10.0)) == 1.0
    assert float(scores["crps_score"].sel(gain=10.0)) < 0
    assert vae.config["model_gain"] == {}  # the module is left as it was
    with pytest.raises(TypeError, match="Cascade"):
        tune_model_gain(data, model=_model(), perturbation=vae, stage=1, gains=[2.0])
    with pytest.raises(ValueError, match="stage must be one of"):
        tune_model_gain(data, model=_cascade(2), perturbation=vae, stage=2, gains=[2.0])
    with pytest.raises(ValueError, match="no lead after 24 h"):
        tune_model_gain(data, model=_cascade(2), perturbation=vae, stage=0, gains=[2.0])
    # the first stage too (a stage retrained after the module): its steps 1..6, band after
    # day 1 (30 and 36 h)
    best0, scores0 = tune_model_gain(
        data, model=_cascade(6), perturbation=vae, stage=0, gains=[10.0, 100.0],
        run=TuningRun(n=16, steps=8, band=(0.5, 2.0)), progress=False,
    )  # fmt: skip
    assert best0 == 10.0 and scores0.attrs["stage"] == "short"
    assert float(scores0["in_band"].sel(gain=1.0)) == 0.0
    assert vae.config["model_gain"] == {}
    with pytest.raises(ValueError, match="never reach"):
        tune_model_gain(data, model=_cascade(2), perturbation=vae, stage=1, gains=[2.0],
                        run=TuningRun(steps=2))  # fmt: skip


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_periodic_pad_is_circular_in_longitude_and_replicated_in_latitude(p, channels_last):
    from xfuxi.models.ens import _periodic_pad

    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = _periodic_pad(x, p)
    ref = F.pad(F.pad(x, (p, p, 0, 0), mode="circular"), (0, 0, p, p), mode="replicate")
    assert torch.equal(got, ref)
    assert got.is_contiguous(memory_format=torch.channels_last)  # the convolutions' layout
    assert torch.equal(got[..., p : p + 5, 0], x[..., -p])  # west edge from the east end
    assert torch.equal(got[..., 0, p:-p], x[..., 0, :])  # north edge row repeated
    assert _periodic_pad(x, 0) is x
    xg = x.clone().requires_grad_(True)
    upstream = torch.randn(got.shape, generator=torch.Generator().manual_seed(2))
    (_periodic_pad(xg, p) * upstream).sum().backward()
    xr_ = x.clone().requires_grad_(True)
    ref = F.pad(F.pad(xr_, (p, p, 0, 0), mode="circular"), (0, 0, p, p), mode="replicate")
    (ref * upstream).sum().backward()
    torch.testing.assert_close(xg.grad, xr_.grad)  # the corners' gradients included
    with pytest.raises(ValueError, match="longitudes"):
        _periodic_pad(x, 8)


@pytest.mark.parametrize(
    "coarse, fine", [((8, 16), (32, 64)), ((3, 5), (7, 13)), ((1, 4), (2, 9)), ((4, 1), (8, 3))]
)
def test_separable_upsampling_equals_the_wrapped_interpolation(coarse, fine):
    """The matrix form of the VAE's periodic bilinear upsampling is the interpolation itself."""
    from xfuxi.models.ens import _interpolate_periodic, _periodic_upsample

    x = torch.randn(3, 2, *coarse, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = _interpolate_periodic(x, fine)
    got = _periodic_upsample(x, fine)
    assert got.shape == (3, 2, *fine)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    # periodic in longitude: a field rolled by one coarse cell comes out rolled too
    if coarse[1] > 1 and fine[1] % coarse[1] == 0:
        k = fine[1] // coarse[1]
        torch.testing.assert_close(
            _periodic_upsample(torch.roll(x, 1, -1), fine), torch.roll(got, k, -1)
        )
    xf = x.float().requires_grad_(True)  # float32 and differentiable
    _periodic_upsample(xf, fine).sum().backward()
    assert xf.grad is not None and torch.isfinite(xf.grad).all()
    # the padded form is the padded upsampling, channels-last, gradients included
    from xfuxi.models.ens import _periodic_pad

    for p in (1, 2):
        if p > fine[1]:
            continue
        padded = _periodic_upsample(x, fine, pad=p)
        torch.testing.assert_close(padded, _periodic_pad(ref, p), rtol=1e-12, atol=1e-12)
        assert padded.is_contiguous(memory_format=torch.channels_last)
        up = torch.randn(padded.shape, dtype=torch.float64)
        grads = []
        for fused in (True, False):
            v = x.clone().requires_grad_(True)
            y = (
                _periodic_upsample(v, fine, pad=p)
                if fused
                else _periodic_pad(_periodic_upsample(v, fine), p)
            )
            (y * up).sum().backward()
            grads.append(v.grad)
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_training_resumes_by_default_and_refuses_other_settings(tmp_path):
    # only the precision was compared: a checkpoint of other settings was resumed, and by
    # default (resume=False) an interrupted run started again from iteration 1
    model, data = _model(), _random_walk(30, 0.3, 0)
    cfg = PerturbationTrainConfig(members=2, iterations=2, batch_size=2, lr=1e-2,
                                  checkpoint_every=2, validate_every=100,
                                  checkpoint_dir=str(tmp_path / "run"))  # fmt: skip
    train_perturbation(model, data, perturbation=_vae(), config=cfg, progress=False)
    for change in ({"lr": 0.5}, {"seed": 3}, {"kl_weight": 0.5}, {"members": 3}):
        with pytest.raises(ValueError, match=f"other settings .*{next(iter(change))}"):
            train_perturbation(model, data, perturbation=_vae(), config=cfg.replace(**change),
                               progress=False)  # fmt: skip
    # the same settings: resumes where it stopped (read back, not trained again), and a
    # longer run extends it
    _, again = train_perturbation(model, data, perturbation=_vae(), config=cfg, progress=False)
    assert again["iteration"] == [1, 2]
    _, longer = train_perturbation(model, data, perturbation=_vae(),
                                   config=cfg.replace(iterations=3), progress=False)  # fmt: skip
    assert longer["iteration"] == [1, 2, 3]
    with pytest.raises(ValueError, match="batch_size 64 exceeds the .* training sequences"):
        train_perturbation(model, data, perturbation=_vae(),
                           config=cfg.replace(batch_size=64, checkpoint_dir=None),
                           progress=False)  # fmt: skip
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("x")
    with pytest.raises(Exception, match="notes.txt"):
        train_perturbation(model, data, perturbation=_vae(), progress=False,
                           config=cfg.replace(checkpoint_dir=str(user)))  # fmt: skip
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
