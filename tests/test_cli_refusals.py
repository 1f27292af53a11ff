"""What the command line refuses, and that it refuses it before any work (issue: the CLI
audit): an output inside an input, bad values (usage errors, exit status 2), a missing input
(exit status 1, one line); and what it says: ``--version``, ``python -m xfuxi``, the
defaults in ``--help``, the names ``--model`` accepts, the provenance of a FuXi-DA analysis."""

from __future__ import annotations

import subprocess
import sys

import pytest
import xarray as xr

import xfuxi.cli.assimilate as cli_assimilate
import xfuxi.cli.calibrate as cli_calibrate
import xfuxi.cli.campaign as cli_campaign
import xfuxi.cli.forecast as cli_forecast
import xfuxi.cli.train as cli_train
import xfuxi.cli.world as cli_world
from xfuxi._version import __version__
from xfuxi.cli import main


def _never(what):
    def stop(*args, **kwargs):
        raise AssertionError(f"{what} although the command should have been refused")

    return stop


@pytest.fixture
def no_work(monkeypatch):
    """Every expensive step of the commands tested here fails the test if it is reached
    (model loading too, so that a refusal is seen to come first)."""
    from xfuxi import demo
    from xfuxi.training import forecast as training_forecast
    from xfuxi.world import simulator

    monkeypatch.setattr(simulator, "_chunks", _never("the world was run"))
    monkeypatch.setattr(cli_world, "held_suarez", _never("the world was read"))
    monkeypatch.setattr(cli_world, "held_suarez_split", _never("the world was read"))
    for module in (cli_train, cli_calibrate):
        monkeypatch.setattr(module, "world_split", _never("the world was read"))
        monkeypatch.setattr(module, "load_model", _never("the model was loaded"))
    monkeypatch.setattr(cli_train, "open_data", _never("the training data were read"))
    monkeypatch.setattr(cli_train, "_cycled_states", _never("the cycled states were read"))
    monkeypatch.setattr(cli_train, "held_suarez_tracer_anomalies", _never("tracers were run"))
    monkeypatch.setattr(training_forecast, "train_forecast", _never("the model was trained"))
    for module in (cli_assimilate, cli_forecast):
        monkeypatch.setattr(module, "load_model", _never("the model was loaded"))
        monkeypatch.setattr(module, "open_data", _never("the data were read"))
    monkeypatch.setattr(cli_campaign, "campaign", _never("the campaign ran"))
    monkeypatch.setattr(demo, "run_demo", _never("the demo ran"))


def _status(argv) -> int:
    """The exit status of ``xfuxi ARGV`` (argparse's refusals exit)."""
    try:
        return main(["--no-progress", *argv])
    except SystemExit as stop:
        return int(stop.code)


# --- item 1: an output inside an input --------------------------------------------------


def test_cycle_store_inside_an_input_or_a_file_is_refused_before_any_work(
    tmp_path, no_work, monkeypatch, capsys
):
    """``xfuxi cycle TRUTH --store TRUTH/sub`` wrote into its input; ``--store user.txt/x``
    failed with a raw FileExistsError."""
    monkeypatch.chdir(tmp_path)
    for name in ("truth.zarr", "b.zarr", "clim.zarr"):
        (tmp_path / name).mkdir()
    (tmp_path / "user.txt").write_text("mine")
    (tmp_path / "f.json").write_text("{}")
    for argv, message in (
        (["truth.zarr", "--store", "truth.zarr/sub"], "lies inside the input truth.zarr"),
        (["truth.zarr", "--store", "truth.zarr"], "is or holds the input truth.zarr"),
        (["truth.zarr", "--method", "en4dvar", "--static-b", "b.zarr", "--store", "b.zarr/s"],
         "lies inside the input b.zarr"),
        (["truth.zarr", "--blend", "f.json", "--climatology", "clim.zarr", "--store",
          "clim.zarr/s"], "lies inside the input clim.zarr"),
        (["truth.zarr", "--store", "user.txt/x.zarr"], "which is a file, not a folder"),
    ):  # fmt: skip
        assert _status(["cycle", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "--store" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "b.zarr", "clim.zarr", "f.json", "truth.zarr", "user.txt"
    ]  # fmt: skip
    assert not any((tmp_path / "truth.zarr").iterdir())
    assert (tmp_path / "user.txt").read_text() == "mine"


def test_trainers_refuse_an_output_inside_an_input_before_any_work(
    tmp_path, no_work, monkeypatch, capsys
):
    """``xfuxi train --train tv.zarr --out tv.zarr/ckpt`` trained into its input store."""
    import json

    from xfuxi.assimilation.cycle import STORE_KIND
    from xfuxi.files import MARKER

    monkeypatch.chdir(tmp_path)
    for name in ("tv.zarr", "val.zarr", "cyc.zarr", "model"):
        (tmp_path / name).mkdir()
    # a cycling store, as its marker says (its cycles are read only after the check)
    (tmp_path / "cyc.zarr" / MARKER).write_text(json.dumps({"kind": STORE_KIND}))
    for argv, message in (
        (["train", "--train", "tv.zarr", "--out", "tv.zarr/ckpt"], "tv.zarr"),
        (["train", "--validation", "val.zarr", "--out", "val.zarr/ckpt"], "val.zarr"),
        (["train", "--cycled-states", "cyc.zarr", "--out", "cyc.zarr/ckpt"], "cyc.zarr"),
        (["train", "--from-model", "model", "--out", "model/ckpt"], "model"),
        (["train", "--train", "tv.zarr", "--out", "."], "is or holds the input"),
        (["train-ens", "--model", "model", "--out", "model/ens"], "model"),
        (["train-da", "--cycled-states", "cyc.zarr", "--out", "cyc.zarr/da"], "cyc.zarr"),
        (["train-da", "--model", "model", "--out", "model/da"], "model"),
    ):
        assert _status(argv) == 1, argv
        err = capsys.readouterr().err
        assert "--out" in err and message in err and "input" in err, err
    for name in ("tv.zarr", "val.zarr", "model"):
        assert not any((tmp_path / name).iterdir()), name
    assert [p.name for p in (tmp_path / "cyc.zarr").iterdir()] == [MARKER]


# --- items 2 and 4: bad values are usage errors, found before any work --------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["world", "--days", "0"], "--days: must be at least 1; got 0"),
        (["world", "--days", "-3"], "--days: must be at least 1; got -3"),
        (["campaign", "src.nc", "--store", "s.zarr", "--steps", "0"], "--steps must be"),
        (["campaign", "src.nc", "--store", "s.zarr", "--kind", "ensemble"],
         "--kind ensemble needs --members"),
        (["campaign", "src.nc", "--store", "s.zarr", "--kind", "ensemble", "--members", "2",
          "--amplitude", "-1"], "--amplitude must be"),
        (["ensemble", "in.nc", "--method", "perlin", "--amplitude", "-1", "--output", "e"],
         "--amplitude must be"),
        (["ensemble", "in.nc", "--method", "perlin", "--octaves", "0", "--output", "e"],
         "--octaves must be an integer >= 1"),
        (["ensemble", "in.nc", "--method", "perlin", "--seed", "-5", "--output", "e"],
         "--seed must be in [0, 2**63); got -5"),
        (["train", "--steps", "0", "--out", "o"], "--steps must be an integer >= 1"),
        (["train", "--preset", "nosuch", "--out", "o"], "--preset 'nosuch' is not a preset"),
        (["train", "--set", "foo", "--out", "o"], "--set takes KEY=VALUE"),
        (["train", "--set", "nosuchkey=3", "--out", "o"], "'nosuchkey' is not an argument"),
        (["train", "--set", "embed_dim=abc", "--out", "o"], "is not a JSON value"),
        (["train", "--tracer-anomalies", "-1", "--out", "o"], "--tracer-anomalies must be"),
        (["train-ens", "--members", "1", "--out", "o"], "--members must be an integer >= 2"),
        (["train-ens", "--calibrate", "abc", "--out", "o"],
         "--calibrate must be comma-separated numbers"),
        (["train-ens", "--calibrate-variables", "0.7,x", "--out", "o"],
         "--calibrate-variables must be comma-separated numbers"),
        (["train-ens", "--calibrate", "0,1", "--out", "o"], "--calibrate must be positive"),
        (["train-ens", "--calibrate-steps", "0", "--out", "o"], "must be at least 1; got 0"),
        # torch keeps 32 bits of a seed: 2**32 trained as seed 0
        (["train-ens", "--seed", "4294967296", "--out", "o"], "seed must be an integer in [0, 2"),
        (["train", "--seed", "4294967296", "--out", "o"], "seed must be an integer in [0, 2"),
        (["train-da", "--seed", "4294967296", "--out", "o"], "seed must be an integer in [0, 2"),
        (["train-da", "--leads", "0", "--out", "o"], "--leads must be positive integers"),
        (["train-da", "--steps", "0", "--out", "o"], "--steps must be at least 1; got 0"),
        (["calibrate-ens", "--band", "1.2,0.8", "--out", "o"], "--band must be LOW,HIGH"),
        (["calibrate-ens", "--band", "0.8", "--out", "o"], "--band must be LOW,HIGH"),
        (["calibrate-ens-early", "--band", "0.5,0.9", "--out", "o"], "--band must be LOW,HIGH"),
        (["demo", "--members", "0", "--out", "o"], "--members: must be at least 1; got 0"),
        (["demo", "--lead-days", "0", "--out", "o"], "--lead-days: must be at least 1"),
        (["demo", "--n-init", "0", "--out", "o"], "--n-init: must be at least 1"),
    ],
)  # fmt: skip
def test_bad_values_are_usage_errors_before_any_work(
    argv, message, tmp_path, no_work, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert _status(argv) == 2, argv
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == "", captured.err
    assert f"xfuxi {argv[0]}: error: " in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a training directory


# --- item 4: a missing input is exit status 1, one line, for every command -----------------


@pytest.mark.parametrize(
    "argv",
    [
        ["forecast", "missing.nc", "--output", "o"],
        ["ensemble", "missing.nc", "--output", "o"],
        ["campaign", "missing.nc", "--store", "s.zarr"],
        ["assimilate-da", "missing.nc", "--output", "o"],
    ],
)
def test_a_missing_input_is_one_line_and_exit_status_1(
    argv, tmp_path, no_work, monkeypatch, capsys
):
    """``assimilate-da`` exited 2 for it and ``campaign`` said ``[Errno 2]`` once the run had
    begun; every command now says the same, before any work."""
    monkeypatch.chdir(tmp_path)
    assert _status(argv) == 1
    err = capsys.readouterr().err
    assert err == (
        f"xfuxi {argv[0]}: error: FileNotFoundError: no such file or directory: 'missing.nc'\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_assimilate_da_missing_radiances_is_exit_status_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bg.nc").write_bytes(b"CDF")
    assert _status(["assimilate-da", "bg.nc", "rad.nc", "--output", "o"]) == 1
    assert "no such file or directory: 'rad.nc'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- item 5: --version, python -m xfuxi ------------------------------------------------


def test_version_and_python_m_xfuxi(capsys):
    from xfuxi._version import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"xfuxi {__version__}\n"
    code = (
        "import runpy, sys\n"
        "sys.argv = ['xfuxi', '--version']\n"
        "try:\n"
        "    runpy.run_module('xfuxi', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "else:\n"
        "    raise AssertionError('python -m xfuxi did not exit')\n"
        "assert 'torch' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"xfuxi {__version__}\n"
    run = subprocess.run([sys.executable, "-m", "xfuxi", "--version"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0 and run.stdout == f"xfuxi {__version__}\n", run.stderr


# --- item 6: the defaults in --help ------------------------------------------------------


def _helps(name: str) -> dict[str, str]:
    """Each flag of command ``name`` -> its help text, as ``--help`` prints it."""
    import argparse

    from xfuxi.cli.common import COMMANDS

    parser = argparse.ArgumentParser(prog=f"xfuxi {name}")
    COMMANDS[name][0](parser)
    return {
        flag: " ".join((a.help or "").split()) for a in parser._actions for flag in a.option_strings
    }


SHOWN_DEFAULTS = {
    "demo": {"--output": "demo_output", "--test-days": "60", "--lead-days": "10",
             "--n-init": "20", "--model": "fuxi-hs-t21-cascade", "--members": "48",
             "--da-times": "8"},
    "world": {"--levels": "250,500,700,850"},
    "campaign": {"--model": "fuxi-hs-t21-cascade"},
    "assimilate": {"--model": "fuxi-hs-t21"},
    "train": {"--validation-days": "30", "--train-days": "all"},
    "train-ens": {"--model": "fuxi-hs-t21", "--validation-days": "60",
                  "--calibrate": "0.5,0.7,1,1.4,2", "--calibrate-variables": "0.7,1.4",
                  "--calibrate-steps": "40"},
    "train-da": {"--model": "fuxi-hs-t21", "--train-days": "60", "--validation-days": "10"},
    "cycle": {"--localization": "1500"},
    "ensemble": {"--method": "vae"},
    **{name: {"--model": model, "--perturbation": "fuxi-ens-hs-t21", "--inits": "4",
              "--validation-days": "60", "--members": "16", "--steps": "40",
              "--band": "0.8,1.2"}
       for name, model in (("calibrate-ens", "fuxi-hs-t21"),
                           ("calibrate-ens-early", "fuxi-hs-t21"),
                           ("calibrate-ens-stage", "fuxi-hs-t21-cascade"))},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SHOWN_DEFAULTS))
def test_help_shows_the_defaults_the_command_uses(name):
    helps = _helps(name)
    for flag, default in SHOWN_DEFAULTS[name].items():
        assert f"default {default})" in helps[flag], (flag, helps[flag])
        assert helps[flag].count("default") == 1, (flag, helps[flag])


def test_help_says_what_the_command_line_does():
    """Texts that spoke of a None the command line cannot give, or showed a default that
    the command refuses."""
    seed = _helps("assimilate")["--seed"]
    assert "None" not in seed and "(default 0" in seed
    qc = _helps("cycle")["--qc-threshold"]
    assert "None" not in qc and "default 5" in qc
    for name in ("calibrate-ens", "calibrate-ens-early", "calibrate-ens-stage"):
        assert _helps(name)["--steps"] == "forecast steps (default 40)"
        assert _helps(name)["-n"] == "ensemble members (default 16)"
    after = _helps("calibrate-ens-stage")["--after-hours"]
    assert after.startswith("--stage 0 only") and "(default 24.0)" not in after
    assert "(default 24.0)" in _helps("calibrate-ens")["--after-hours"]


# --- item 7: the names --model accepts -----------------------------------------------------


def test_an_unknown_model_lists_every_name_model_accepts(tmp_path, capsys):
    import xfuxi
    from xfuxi.models.checkpoint import shipped_names

    with pytest.raises(FileNotFoundError) as err:
        xfuxi.load_model("nosuch")
    for name in shipped_names("forecast-model") + shipped_names("cascade"):
        assert repr(name) in str(err.value), name
    xfuxi.load_model(shipped_names("cascade")[0])  # (it is a name load_model accepts)
    (tmp_path / "in.nc").write_bytes(b"CDF")
    assert _status(["forecast", str(tmp_path / "in.nc"), "--model", "nosuch", "--output",
                    str(tmp_path / "o")]) == 1  # fmt: skip
    assert "'fuxi-hs-t21-cascade'" in capsys.readouterr().err


# --- item 3: a FuXi-DA analysis says what made it ----------------------------------------


@pytest.fixture(scope="module")
def da_case(tmp_path_factory):
    import torch

    from tests import tiny_da
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.fuxi_da import save_da_model
    from xfuxi.observations.imager import imager_observations

    d = tmp_path_factory.mktemp("da")
    truth = tiny_da.truth(4)
    radiances = imager_observations(
        truth, satellites=[90.0], channels=["wv6.2", "ir10.8"], frames=(-2.0, 0.0)
    )
    background = truth.sel(time=radiances["time"].values) + 0.0
    background["temperature"] = background["temperature"] + 1.0
    background.attrs = {"title": "Held-Suarez world (test)", "split": "test", "config": "{}"}
    model = tiny_da_model()
    with torch.no_grad():
        model.net.head.weight.normal_(0, 0.05)
    save_da_model(model, d / "net")
    background.to_netcdf(d / "bg.nc")
    radiances.to_netcdf(d / "rad.nc")
    return d, background, radiances, model


def _check_provenance(analysis_attrs, increment_attrs, model_name):
    expected = {"method": "FuXi-DA", "model": model_name, "xfuxi_version": __version__,
                "background_source": "Held-Suarez world (test)"}  # fmt: skip
    assert dict(analysis_attrs) == expected
    assert dict(increment_attrs) == {**expected, "description": "analysis minus background"}


def test_fuxi_da_analysis_records_its_method_model_and_background_source(da_case):
    """The analysis carried the background's attrs (a world's title, its split) and said
    nothing of FuXi-DA; the increment had none."""
    from xfuxi.assimilation.da import assimilate_da

    _, background, radiances, model = da_case
    res = assimilate_da(background, radiances, model=model)
    _check_provenance(res.analysis.attrs, res.increment.attrs, model.name)
    assert res.diagnostics.attrs["method"] == "FuXi-DA"
    assert res.diagnostics.attrs["background_source"] == "Held-Suarez world (test)"
    for v in res.analysis.data_vars:  # the variables keep the background's attrs (units)
        assert res.analysis[v].attrs == background[v].attrs, v
    # a background with more levels than the model's goes another way: the same attrs
    more = xr.concat([background, background.isel(level=[0]).assign_coords(level=[100.0])],
                     "level", data_vars="minimal").sortby("level")  # fmt: skip
    more.attrs = background.attrs
    other = assimilate_da(more, radiances, model=model)
    assert other.analysis.sizes["level"] == background.sizes["level"]  # (the other way)
    _check_provenance(other.analysis.attrs, other.increment.attrs, model.name)


def test_assimilate_da_files_record_their_provenance(da_case, tmp_path):
    d, _, _, model = da_case
    out = tmp_path / "an"
    assert _status(["assimilate-da", str(d / "bg.nc"), str(d / "rad.nc"), "--model",
                    str(d / "net"), "--output", str(out)]) == 0  # fmt: skip
    with xr.open_dataset(out / "analysis.nc") as a, xr.open_dataset(out / "increment.nc") as i:
        _check_provenance(a.attrs, i.attrs, model.name)
