"""The xfuxi command line: outputs never replace what xfuxi did not write (issue 20, item 1),
errors are one line on stderr (issue 20, weak items)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xfuxi
from tests.tiny import dataset as _dataset
from tests.tiny import fuxi_checkpoint as _tiny_fuxi_checkpoint
from xfuxi.cli import main
from xfuxi.files import MARKER, read_marker


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny FuXi checkpoint and a file of three initial states."""
    d = tmp_path_factory.mktemp("inputs")
    model_dir, model = _tiny_fuxi_checkpoint(d)
    _dataset(3).to_netcdf(d / "init.nc")
    return {"dir": d, "model": str(model_dir), "init": str(d / "init.nc"), "object": model}


def _forecast(inputs, output, *extra):
    return main(["--no-progress", "forecast", inputs["init"], "--model", inputs["model"],
                 "--steps", "1", "--output", str(output), *extra])  # fmt: skip


def _tree(path):
    """Every file under ``path`` with its bytes."""
    return {
        os.path.relpath(os.path.join(root, f), path): open(os.path.join(root, f), "rb").read()
        for root, _, files in os.walk(path)
        for f in files
    }


def test_forecast_writes_a_store_that_reads_back_without_warnings(inputs, tmp_path):
    import warnings

    out = tmp_path / "fc.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither zarr's on writing nor xarray's on reading
        assert _forecast(inputs, out) == 0
        back = xr.open_zarr(out)
    assert back.sizes["prediction_timedelta"] == 1 and back.sizes["time"] == 2  # 3 states
    # zarr's format 2, as WeatherBench2's stores and xfuxi's other writers: zarr 2 reads it
    assert (out / ".zmetadata").is_file() and not (out / "zarr.json").exists()


def test_forecast_never_deletes_a_foreign_directory(inputs, tmp_path, capsys):
    """mkdir results && echo precious > results/thesis.txt && xfuxi forecast ... --output results"""
    results = tmp_path / "results"
    results.mkdir()
    (results / "thesis.txt").write_text("precious\n")
    for extra in ((), ("--overwrite",)):
        assert _forecast(inputs, results, *extra) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert str(results) in err and "not an xfuxi output" in err
    assert _tree(results) == {"thesis.txt": b"precious\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temporaries


def test_forecast_refuses_before_running(inputs, tmp_path, monkeypatch, capsys):
    import xfuxi.models.registry as registry

    def never(*a, **k):
        raise AssertionError("the model was loaded although the output is refused")

    monkeypatch.setattr(registry, "load_model", never)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "thesis.txt").write_text("precious")
    assert _forecast(inputs, tmp_path / "results") == 1
    assert "not an xfuxi output" in capsys.readouterr().err


def test_forecast_output_is_marked_and_replaced_only_with_overwrite(inputs, tmp_path, capsys):
    out = tmp_path / "fc.zarr"
    assert _forecast(inputs, out) == 0
    marker = read_marker(out)
    assert marker["kind"] == "forecast" and marker["command"] == "xfuxi forecast"
    assert marker["arguments"]["steps"] == 1
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    first = xr.open_zarr(out).load()
    before = _tree(out)
    capsys.readouterr()
    # an earlier forecast: kept without --overwrite
    assert _forecast(inputs, out) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert _tree(out) == before
    # not replaced by another kind of output, even with --overwrite
    rc = main(["--no-progress", "ensemble", inputs["init"], "--model", inputs["model"],
               "--method", "gaussian", "--amplitude", "0.1", "-n", "2", "--steps", "1",
               "--output", str(out), "--overwrite"])  # fmt: skip
    assert rc == 1 and "'forecast' output, not a 'ensemble'" in capsys.readouterr().err
    assert _tree(out) == before
    # replaced with --overwrite, by the same forecast
    assert _forecast(inputs, out, "--overwrite") == 0
    second = xr.open_zarr(out).load()
    xr.testing.assert_equal(second, first)
    assert second.attrs["created"] != first.attrs["created"] or _tree(out) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.zarr"]


def test_ensemble_output_is_marked(inputs, tmp_path):
    out = tmp_path / "ens.zarr"
    rc = main(["--no-progress", "ensemble", inputs["init"], "--model", inputs["model"],
               "--method", "gaussian", "--amplitude", "0.1", "-n", "2", "--steps", "1",
               "--output", str(out)])  # fmt: skip
    assert rc == 0
    assert read_marker(out)["kind"] == "ensemble"
    assert xr.open_zarr(out).sizes["number"] == 2


def test_ensemble_perlin_flags_come_from_the_config(inputs, tmp_path):
    """`xfuxi ensemble` has a flag per PerlinNoise option (issue 19: flags from the configs)."""
    import json

    out = tmp_path / "ens.zarr"
    rc = main(["--no-progress", "ensemble", inputs["init"], "--model", inputs["model"],
               "--method", "perlin", "--amplitude", "0.1", "--octaves", "2", "--wavelength",
               "4", "-n", "2", "--steps", "1", "--output", str(out)])  # fmt: skip
    assert rc == 0
    spec = json.loads(xr.open_zarr(out).attrs["perturbation"])
    assert spec == {"std_fraction": 0.1, "wavelength": 4.0, "octaves": 2, "persistence": 0.5}
    # a Perlin option with another method is an error, not silently dropped
    rc = main(["--no-progress", "ensemble", inputs["init"], "--model", inputs["model"],
               "--method", "gaussian", "--octaves", "2", "-n", "2", "--steps", "1",
               "--output", str(tmp_path / "g.zarr")])  # fmt: skip
    assert rc == 2 and not (tmp_path / "g.zarr").exists()  # a usage error naming --octaves


@pytest.fixture
def assimilation_inputs(inputs, tmp_path):
    """bg.nc and obs.nc in a folder of inputs (and the user's notes)."""
    d = tmp_path / "inputs"
    d.mkdir()
    bg = _dataset(3)
    bg.to_netcdf(d / "bg.nc")
    t0 = bg["time"].values[-1]
    t850 = float(bg["temperature"].sel(time=t0, level=850.0).interp(latitude=30.0, longitude=45.0))
    obs = xfuxi.make_observations(
        [t850 + 1.0], error=1.0, time=t0, latitude=30.0, longitude=45.0,
        variable="temperature", level=850.0,
    )  # fmt: skip
    obs.to_netcdf(d / "obs.nc")
    (d / "notes.txt").write_text("mine")
    return d


def _assimilate(inputs, output, *extra):
    return main(["--no-progress", "assimilate", "bg.nc", "obs.nc", "--model", inputs["model"],
                 "-n", "4", "--max-iter", "3", "--output", str(output), *extra])  # fmt: skip


def test_assimilate_output_dot_keeps_the_inputs(inputs, assimilation_inputs, monkeypatch, capsys):
    """cd inputs && xfuxi assimilate bg.nc obs.nc --output ."""
    monkeypatch.chdir(assimilation_inputs)
    before = _tree(assimilation_inputs)
    for extra in ((), ("--overwrite",)):
        assert _assimilate(inputs, ".", *extra) != 0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds the input bg.nc" in err
    assert _tree(assimilation_inputs) == before


def test_output_inside_an_input_or_a_file_is_refused_before_the_work(inputs, tmp_path, capsys):
    """--output in.zarr/fc.zarr wrote into the input store; --output in.nc/fc.zarr ran the
    forecast and then failed to make the folder, naming the input."""
    store = tmp_path / "in.zarr"
    xr.open_dataset(inputs["init"]).to_zarr(store)
    before = sorted(p.name for p in store.iterdir())
    args = ["--no-progress", "forecast", str(store), "--model", inputs["model"], "--steps", "1"]
    assert main([*args, "--output", str(store / "fc.zarr")]) != 0
    assert "lies inside the input" in capsys.readouterr().err
    assert sorted(p.name for p in store.iterdir()) == before
    assert _forecast(inputs, Path(inputs["init"]) / "fc.zarr") != 0
    assert "lies inside the input" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"  # not an input: a file where a folder would have to be
    notes.write_text("mine")
    assert _forecast(inputs, notes / "fc.zarr") != 0
    assert "which is a file, not a folder" in capsys.readouterr().err
    assert notes.read_text() == "mine"


def test_assimilate_writes_a_marked_directory(inputs, assimilation_inputs, monkeypatch, capsys):
    monkeypatch.chdir(assimilation_inputs)
    assert _assimilate(inputs, "an") == 0
    out = assimilation_inputs / "an"
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER, "analysis.nc", "diagnostics.nc", "increment.nc", "trajectory.nc"
    ]  # fmt: skip
    assert read_marker(out)["kind"] == "assimilation"
    capsys.readouterr()
    assert _assimilate(inputs, "an") == 1
    assert "--overwrite" in capsys.readouterr().err
    assert _assimilate(inputs, "an", "--overwrite") == 0


def test_assimilate_refuses_a_hybrid_weight_without_static_samples(
    inputs, assimilation_inputs, monkeypatch, capsys
):
    """--hybrid-weight without --static-b was accepted and ignored (xfuxi cycle refuses it)."""
    monkeypatch.chdir(assimilation_inputs)
    assert _assimilate(inputs, "hw", "--hybrid-weight", "0.9") == 2
    assert "--hybrid-weight weighs a static B: it needs --static-b" in capsys.readouterr().err
    assert not (assimilation_inputs / "hw").exists()


def test_runtime_error_is_one_line_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("XFUXI_DEBUG", raising=False)
    args = ["forecast", str(tmp_path / "missing.nc"), "--steps", "1", "--output",
            str(tmp_path / "fc.zarr")]  # fmt: skip
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("xfuxi forecast: error: FileNotFoundError")
    assert captured.err.count("\n") == 1 and "missing.nc" in captured.err
    with pytest.raises(FileNotFoundError):
        main(["--debug", *args])
    monkeypatch.setenv("XFUXI_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(args)


def test_usage_errors_go_to_stderr(tmp_path, capsys):
    rc = main(["assimilate", "bg.nc", "obs.nc", "--localization", "wide", "--output",
               str(tmp_path / "an")])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert "--localization must be a number" in captured.err
    rc = main(["world", "--levels", "500,abc", "--output", str(tmp_path / "w.zarr")])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "" and "--levels" in captured.err


def test_world_levels_are_checked_before_the_run(tmp_path, monkeypatch, capsys):
    from xfuxi.world import simulator

    def never(*a, **k):
        raise AssertionError("the world was run although its levels are invalid")

    monkeypatch.setattr(simulator, "_chunks", never)
    rc = main(["--no-progress", "world", "--levels", "123", "--days", "1", "--spinup-days", "0",
               "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "[123] hPa are not standard pressure levels" in err
    assert not (tmp_path / "cache").exists()


def test_world_netcdf_output_never_replaces_a_foreign_file(tmp_path, monkeypatch, capsys):
    from xfuxi.world import simulator

    def never(*a, **k):
        raise AssertionError("the world was run although its output is refused")

    monkeypatch.setattr(simulator, "_chunks", never)
    mine = tmp_path / "w.nc"
    mine.write_text("mine")
    for extra in ((), ("--overwrite",)):
        rc = main(["--no-progress", "world", "--days", "1", "--spinup-days", "0", "--cache-dir",
                   str(tmp_path / "cache"), "--output", str(mine), *extra])  # fmt: skip
        assert rc == 1 and str(mine) in capsys.readouterr().err
    assert mine.read_text() == "mine"


def test_campaign_flags_come_from_campaign_config(monkeypatch, tmp_path, capsys):
    """Issue 19 item 3: ``xfuxi campaign`` builds its flags from CampaignConfig."""
    import dataclasses

    import numpy as np

    import xfuxi.cli.campaign as cli_campaign
    from xfuxi.campaigns import CampaignConfig

    seen = {}

    def fake_campaign(data, store, **kwargs):
        seen.update(kwargs, data=data, store=store)
        return xr.Dataset()

    monkeypatch.setattr(cli_campaign, "campaign", fake_campaign)
    monkeypatch.setattr(cli_campaign, "completed", lambda store: np.array([]))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src.nc").touch()  # a missing source is refused before the run
    args = ["campaign", "src.nc", "--store", str(tmp_path / "s.zarr"), "--steps", "3",
            "--chunk-size", "2", "--torch-threads", "2", "--connect-timeout", "5",
            "--n-workers", "3", "--dtype", "float32", "--init-times",
            "2000-01-01T06,2000-01-01T12"]  # fmt: skip
    assert main(args) == 0
    assert seen["config"] == CampaignConfig(
        steps=3, chunk_size=2, torch_threads=2, connect_timeout=5.0, n_workers=3,
        dtype="float32", init_times=("2000-01-01T06:00:00", "2000-01-01T12:00:00"),
    )  # fmt: skip
    assert "steps" not in seen and "kind" not in seen
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["campaign", "--help"])
    parser_help = capsys.readouterr().out
    for f in dataclasses.fields(CampaignConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in parser_help, flag  # every option (init_times: comma-separated)


def _command_parser(name):
    """The parser of one subcommand, and its run function."""
    import argparse

    from xfuxi.cli.common import COMMANDS

    add, run = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"xfuxi {name}")
    add(parser)
    return parser, run


#: the flags whose default is the command's own, not the function's (each on purpose)
COMMAND_DEFAULTS = {
    "forecast": set(),
    "ensemble": {"n"},
    "calibrate-ens": {"initial_gains", "step_factors"},
    "calibrate-ens-early": {"channels", "gains", "steps_options"},
    "calibrate-ens-stage": {"gains", "stage"},
    "assimilate-da": set(),
}


@pytest.mark.parametrize("name", sorted(COMMAND_DEFAULTS))
def test_function_flags_default_to_the_functions_defaults(name):
    """A flag built from a parameter defaults to the parameter's default, unless the
    command declares its own (listed above): the command line cannot drift from the API."""
    import inspect

    from xfuxi.cli.common import FunctionArgs, _resolve

    parser, run = _command_parser(name)
    groups = [a[0][0] for a in run._arguments if isinstance(a[0][0], FunctionArgs)]
    assert groups, f"xfuxi {name} builds no flags from a function"
    own = set()
    for group in groups:
        params = inspect.signature(_resolve(group.target)).parameters
        own |= set(group.defaults)
        for p in group.only:
            if p in group.defaults:
                continue
            default = params[p].default
            expected = list(default) if isinstance(default, tuple) else default
            assert parser.get_default(p) == expected, (name, p)
    assert own == COMMAND_DEFAULTS[name]


def test_function_flags_take_types_help_and_choices_from_the_function():
    parser, _ = _command_parser("ensemble")
    text = parser.format_help()
    assert "Ensemble size" in text  # the docstring's description of n
    args = parser.parse_args(["in.nc", "--members", "3", "--chunk-size", "2", "--output", "o"])
    assert (args.n, args.chunk_size, args.steps) == (3, 2, None)  # None: 10 days
    assert parser.parse_args(["in.nc", "-n", "5", "--output", "o"]).n == 5
    assert "(default 48)" in text
    parser, _ = _command_parser("calibrate-ens")
    args = parser.parse_args(["--gains", "2,3", "--factors", "0.5", "--band", "0.7,1.3",
                              "--out", "o"])  # fmt: skip
    assert (args.initial_gains, args.step_factors, args.band) == ([2.0, 3.0], [0.5], [0.7, 1.3])
    assert args.weighting == "lead" and (args.n, args.steps, args.seed) == (16, 40, 1)
    # the run's flags come from TuningRun's fields, read back into one TuningRun
    from xfuxi.config import from_arguments
    from xfuxi.training.calibration import TuningRun

    assert "ensemble members" in parser.format_help()
    run = from_arguments(TuningRun, parser.parse_args(["-n", "4", "--band", "0.7,1.3",
                                                       "--out", "o"]))  # fmt: skip
    assert run == TuningRun(n=4, steps=40, seed=1, band=(0.7, 1.3))
    with pytest.raises(SystemExit):  # the docstring's {"lead", "none"} are the choices
        parser.parse_args(["--weighting", "most", "--out", "o"])
    parser, _ = _command_parser("calibrate-ens-early")
    args = parser.parse_args(["--early-steps", "2,4", "--out", "o"])
    assert args.steps_options == [2, 4] and args.channels == [("temperature", 850.0)]


def test_calibration_commands_refuse_bad_values_and_outputs_before_any_work(
    tmp_path, monkeypatch, capsys
):
    """Counts, gains, the stage and ``--out`` are checked before the world is read (they were
    found after it, or after the whole tuning at the save)."""
    import xfuxi.cli.calibrate as calibrate

    def no_world(*args, **kwargs):
        raise AssertionError("the world was read")

    monkeypatch.setattr(calibrate, "world_split", no_world)
    new = str(tmp_path / "new")
    for argv, message in (
        (["calibrate-ens", "--inits", "0"], "--inits must be at least 1; got 0"),
        (["calibrate-ens", "--validation-days", "-3"], "--validation-days must be at least 1"),
        (["calibrate-ens-early", "--members", "1"], "--members must be at least 2; got 1"),
        (["calibrate-ens", "--steps", "0"], "--steps must be at least 1; got 0"),
        (["calibrate-ens", "--gains", "-1"], "--gains must be positive; got [-1.0]"),
        (["calibrate-ens-stage", "--gains", "0,2"], "--gains must be positive"),
    ):
        assert main(["--no-progress", *argv, "--out", new]) == 2, argv
        assert message in capsys.readouterr().err
    assert main(["--no-progress", "calibrate-ens-stage", "--stage", "7", "--out", new]) == 1
    assert "--stage 7 is not a stage of the cascade" in capsys.readouterr().err
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    for command in ("calibrate-ens", "calibrate-ens-early", "calibrate-ens-stage"):
        assert main(["--no-progress", command, "--out", str(mine)]) == 1
        assert "not a directory that xfuxi wrote" in capsys.readouterr().err
    assert mine.read_text() == "mine" and not (tmp_path / "new").exists()


def test_function_args_refuse_what_they_cannot_build():
    import argparse

    from xfuxi.cli.common import FunctionArgs, function_args

    def f(x, *, k: int = 1, obj: object = None):
        """Parameters
        ----------
        k : int
            Some k.
        obj : object
        """

    for only, match in ((["missing"], "no parameter 'missing'"), (["obj"], "types=")):
        run = function_args(f, only=only)(lambda args: 0)
        (group,), _ = run._arguments[0]
        assert isinstance(group, FunctionArgs)
        with pytest.raises(TypeError, match=match):
            group(argparse.ArgumentParser())


def test_cycle_letkf_flags_come_from_letkf_options(monkeypatch):
    """``xfuxi cycle``'s LETKF flags are LETKFOptions' fields; ``--members`` still works and
    the command's relaxation to prior spread stays 0.5 unless given."""
    from xfuxi.assimilation.letkf import LETKFOptions
    from xfuxi.config import from_arguments

    parser, _ = _command_parser("cycle")
    base = ["truth.zarr", "--store", "s.zarr"]
    assert from_arguments(LETKFOptions, parser.parse_args(base)) == LETKFOptions(rtps=0.5)
    old = ["--members", "20", "--inflation", "1.1", "--rtps", "0.3", "--adaptive-inflation"]
    new = ["--n-members", "20", "--inflation", "1.1", "--rtps", "0.3", "--adaptive-inflation"]
    want = LETKFOptions(n_members=20, inflation=1.1, rtps=0.3, adaptive_inflation=True)
    for flags in (old, new):
        assert from_arguments(LETKFOptions, parser.parse_args(base + flags)) == want
    args = parser.parse_args(base + ["--member-chunk", "7", "--no-adaptive-inflation"])
    assert from_arguments(LETKFOptions, args) == LETKFOptions(rtps=0.5, member_chunk=7)
    assert "(default 0.5)" in parser.format_help()


def test_the_command_line_starts_without_torch():
    """Flags from torch-backed modules are built only for the command that is run."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from xfuxi.cli import main\n"
        "try:\n"
        "    main(['forecast', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)


def test_config_args_comma_refuses_a_field_that_is_not_a_tuple():
    import argparse

    from xfuxi.cli.common import config_args
    from xfuxi.training.calibration import TuningRun

    for comma, ok in ((("band",), True), (("seed",), False), (("nope",), False)):

        def run(args):  # a command's run function, its flags stacked on it
            return 0

        parser = argparse.ArgumentParser()
        (((add,), _),) = config_args(TuningRun, comma=comma)(run)._arguments
        if ok:
            add(parser)
            assert parser.parse_args(["--band", "0.5,1.5"]).band == [0.5, 1.5]
        else:
            with pytest.raises(TypeError, match="tuple field|no field"):
                add(parser)


def test_cycle_fuxi_da_takes_the_network_satellites_and_imager_errors(monkeypatch, capsys):
    """``xfuxi cycle --method fuxi-da``: the DA network (CORR too), the satellites and the
    imager's errors reach FuXiDAMethod and ImagerNetwork; bad satellites are a usage error."""
    import xfuxi.assimilation.cycle as cycle_module
    from xfuxi.cli import assimilate as cli_assimilate
    from xfuxi.observations.imager import ImagerErrors

    seen = {}

    def fake_cycle(truth, network, *, method, model, config, store):
        seen.update(network=network, method=method, config=config, store=store)
        return "a run"

    monkeypatch.setattr(cycle_module, "cycle", fake_cycle)
    monkeypatch.setattr(cli_assimilate, "open_data", lambda path: path)
    monkeypatch.setattr(cli_assimilate, "load_model", lambda name: name)
    base = ["cycle", "truth.zarr", "--store", "s.zarr", "--method", "fuxi-da"]
    flags = ["--satellites", "0,105,240", "--no-clouds", "--drift", "1.5", "--seed", "4"]
    assert main(base + ["--da-model", "fuxi-da-hs-t21-corr", *flags]) == 0
    net, method = seen["network"], seen["method"]
    assert net.satellites == (0.0, 105.0, 240.0) and net.seed == 4
    assert net.errors == ImagerErrors(clouds=False, drift=1.5)
    assert method.name == "FuXi-DA CORR" and method.allow_new_satellites
    assert seen["config"].days == 1.0 and str(seen["store"]) == "s.zarr"
    assert main(base) == 0
    assert seen["method"].name == "FuXi-DA" and seen["network"].satellites == (105.0,)
    assert seen["method"].precision == "float32" and "precision" not in seen["method"].settings()
    assert main(base + ["--da-precision", "bfloat16"]) == 0
    assert seen["method"].settings()["precision"] == "bfloat16"
    assert seen["network"].frames == (-2.0, 0.0, 2.0)
    assert main(base + ["--da-model", "fuxi-da-hs-t21-screened-5frames"]) == 0
    assert seen["network"].frames == (-3.0, -1.5, 0.0, 1.5, 3.0)  # the network's own frames
    assert main(base + ["--satellites", "east"]) != 0
    assert "east" in capsys.readouterr().err


def test_imager_then_assimilate_da(tmp_path, capsys):
    """``xfuxi imager`` writes the radiances ``xfuxi assimilate-da`` reads (its output
    directory or the file); the analysis is the API's, in float32 and in bfloat16."""
    import torch

    from tests import tiny_da
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.assimilation.da import assimilate_da
    from xfuxi.models.fuxi_da import save_da_model

    truth = tiny_da.truth(4)
    truth.to_netcdf(tmp_path / "truth.nc")
    model = tiny_da_model()
    with torch.no_grad():
        model.net.head.weight.normal_(0, 0.05)
    save_da_model(model, tmp_path / "net")
    rc = main(["--no-progress", "imager", str(tmp_path / "truth.nc"), "--satellites", "90",
               "--channels", "wv6.2,ir10.8", "--frames=-2,0", "--seed", "3", "--no-noise",
               "--output", str(tmp_path / "rad")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert read_marker(tmp_path / "rad")["kind"] == "radiances"
    with xr.open_dataset(tmp_path / "rad" / "radiances.nc") as f:
        radiances = f.load()
    expected = xfuxi.imager_observations(
        truth, satellites=[90.0], channels=["wv6.2", "ir10.8"], frames=[-2.0, 0.0], seed=3,
        errors={"noise": False},
    )  # fmt: skip
    xr.testing.assert_allclose(radiances["brightness_temperature"],
                               expected["brightness_temperature"])  # fmt: skip
    background = truth.sel(time=radiances["time"].values) + 0.0
    background["temperature"] = background["temperature"] + 1.0
    background.to_netcdf(tmp_path / "bg.nc")
    for extra, source in (([], "rad"), (["--precision", "bfloat16"], "rad/radiances.nc")):
        out = tmp_path / f"an{len(extra)}"
        rc = main(["--no-progress", "assimilate-da", str(tmp_path / "bg.nc"),
                   str(tmp_path / source), "--model", str(tmp_path / "net"), "--output",
                   str(out), *extra])  # fmt: skip
        assert rc == 0, capsys.readouterr().err
        assert read_marker(out)["kind"] == "fuxi-da-analysis"
        precision = extra[1] if extra else "float32"
        ref = assimilate_da(background, radiances, model=model, precision=precision)
        with xr.open_dataset(out / "analysis.nc") as got:
            xr.testing.assert_allclose(got.load(), ref.analysis)
        with xr.open_dataset(out / "diagnostics.nc") as diagnostics:
            assert "rms_oma" in diagnostics
    assert "rms O-B" in capsys.readouterr().out
    # a forecast store as the background: its states at --lead, on their valid times
    six = np.timedelta64(6, "h")
    init = background.assign_coords(time=background["time"].values - six)
    fc = xr.concat([init * 0.0 + 1.0, init], dim="prediction_timedelta")
    fc = fc.assign_coords(prediction_timedelta=[np.timedelta64(0, "h"), six])
    fc.transpose("time", "prediction_timedelta", ...).to_netcdf(tmp_path / "fc.nc")
    rc = main(["--no-progress", "assimilate-da", str(tmp_path / "fc.nc"), str(tmp_path / "rad"),
               "--model", str(tmp_path / "net"), "--lead", "6", "--output",
               str(tmp_path / "an_fc")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    with xr.open_dataset(tmp_path / "an_fc" / "analysis.nc") as got:
        with xr.open_dataset(tmp_path / "an0" / "analysis.nc") as ref:
            xr.testing.assert_identical(got.load(), ref.load())
    for extra, message in (([], "give --lead HOURS"), (["--lead", "3"], "no lead 3 h")):
        rc = main(["--no-progress", "assimilate-da", str(tmp_path / "fc.nc"),
                   str(tmp_path / "rad"), "--model", str(tmp_path / "net"), "--output",
                   str(tmp_path / "bad"), *extra])  # fmt: skip
        assert rc != 0 and message in capsys.readouterr().err
    # a forecast of one lead needs no --lead
    fc.isel(prediction_timedelta=[1]).transpose("time", "prediction_timedelta", ...).to_netcdf(
        tmp_path / "fc1.nc"
    )
    rc = main(["--no-progress", "assimilate-da", str(tmp_path / "fc1.nc"), str(tmp_path / "rad"),
               "--model", str(tmp_path / "net"), "--output", str(tmp_path / "an_fc1")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    with xr.open_dataset(tmp_path / "an_fc1" / "analysis.nc") as got:
        with xr.open_dataset(tmp_path / "an0" / "analysis.nc") as ref:
            xr.testing.assert_identical(got.load(), ref.load())
    rc = main(["--no-progress", "assimilate-da", str(tmp_path / "bg.nc"), str(tmp_path / "rad"),
               "--model", str(tmp_path / "net"), "--lead", "6", "--output",
               str(tmp_path / "bad")])  # fmt: skip
    assert rc != 0 and "--lead is for a forecast background" in capsys.readouterr().err
    # a background with a time the radiances lack: refused, with the flag that selects
    later = background["time"].values[-1] + six
    extended = xr.concat([background, background.isel(time=[-1]).assign_coords(time=[later])],
                         dim="time")  # fmt: skip
    extended.to_netcdf(tmp_path / "bg_more.nc")
    base = ["--no-progress", "assimilate-da", str(tmp_path / "bg_more.nc"),
            str(tmp_path / "rad"), "--model", str(tmp_path / "net")]  # fmt: skip
    rc = main([*base, "--output", str(tmp_path / "bad")])
    assert rc != 0 and not (tmp_path / "bad").exists()
    assert "no analysis time" in (err := capsys.readouterr().err) and "--times radiances" in err
    rc = main([*base, "--times", "radiances", "--output", str(tmp_path / "an_sel")])
    assert rc == 0, capsys.readouterr().err
    with xr.open_dataset(tmp_path / "an_sel" / "analysis.nc") as got:
        with xr.open_dataset(tmp_path / "an0" / "analysis.nc") as ref:
            xr.testing.assert_identical(got.load(), ref.load())
    first = str(background["time"].values[0])[:19]
    rc = main([*base, "--times", f"{first},{first}", "--output", str(tmp_path / "an_one")])
    assert rc == 0, capsys.readouterr().err
    with xr.open_dataset(tmp_path / "an_one" / "analysis.nc") as got:
        assert got.sizes["time"] == 1  # a time given twice is analysed once
    for times, message in (("2031-01-01T00", "has no time"), ("soon", "ISO times")):
        rc = main([*base, "--times", times, "--output", str(tmp_path / "bad")])
        assert rc != 0 and message in capsys.readouterr().err
    # bad input: one clear line, nothing written
    rc = main(["--no-progress", "assimilate-da", str(tmp_path / "bg.nc"), str(tmp_path / "rad"),
               "--model", str(tmp_path / "net"), "--output", str(tmp_path / "bad"),
               "--batch-size", "0"])  # fmt: skip
    assert rc != 0 and not (tmp_path / "bad").exists()
    assert "--batch-size must be a positive integer" in capsys.readouterr().err
    rc = main(["--no-progress", "assimilate-da", str(tmp_path / "bg.nc"), "--model",
               str(tmp_path / "net"), "--output", str(tmp_path / "bad")])  # fmt: skip
    assert rc != 0 and not (tmp_path / "bad").exists()
    assert "assimilates radiances" in capsys.readouterr().err
    rc = main(["--no-progress", "imager", str(tmp_path / "truth.nc"), "--satellites", "x",
               "--output", str(tmp_path / "bad")])  # fmt: skip
    assert rc != 0 and "--satellites must be comma-separated numbers" in capsys.readouterr().err


def test_every_output_flag_takes_both_spellings():
    # the trainers' flag was --out and the others' --output; `xfuxi world --out` was an
    # ambiguous prefix (--output, --output-hours): each now accepts both, exactly
    from xfuxi.cli.common import COMMANDS

    for name in COMMANDS:
        parser, _ = _command_parser(name)
        flags = {s for a in parser._actions for s in a.option_strings}
        if not flags & {"--out", "--output"}:
            continue
        assert {"--out", "--output"} <= flags, name
    parser, _ = _command_parser("world")
    assert parser.parse_args(["--out", "w.nc"]).output == "w.nc"
    parser, _ = _command_parser("train")
    assert parser.parse_args(["--output", "ckpt"]).out == "ckpt"


def test_open_data_recognises_the_content_not_the_name(tmp_path):
    from xfuxi.cli.common import open_data
    from xfuxi.data.writers import write_weatherbench2

    ds = xr.Dataset(
        {"temperature": (("time", "latitude", "longitude"), np.full((2, 3, 4), 250.0))},
        coords={"time": pd.date_range("2020", periods=2, freq="6h"),
                "latitude": [-45.0, 0.0, 45.0], "longitude": [0.0, 90.0, 180.0, 270.0]},
    )  # fmt: skip
    store = write_weatherbench2(ds, tmp_path / "analysis")  # a zarr store without '.zarr'
    assert list(open_data(str(store)).data_vars) == ["temperature"]
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match="not a zarr store.*a directory without zarr metadata"):
        open_data(str(tmp_path / "notes"))


@pytest.mark.parametrize(
    "command, flag",
    [("forecast", "--steps"), ("forecast", "--batch-size"), ("ensemble", "-n"),
     ("ensemble", "--steps"), ("ensemble", "--chunk-size")],
)  # fmt: skip
def test_counts_below_one_are_usage_errors(inputs, tmp_path, capsys, command, flag):
    """``--steps 0`` exited 1 after reading the model and the data; a usage error now."""
    out = tmp_path / "o.zarr"
    with pytest.raises(SystemExit) as stop:
        main(["--no-progress", command, inputs["init"], "--model", inputs["model"], flag, "0",
              "--output", str(out)])  # fmt: skip
    assert stop.value.code == 2 and "must be at least 1; got 0" in capsys.readouterr().err
    assert not out.exists()


def test_cli_train_on_a_file_does_not_validate_on_the_world_by_default(tmp_path, monkeypatch):
    # --validation defaulted to 'world' with any --train: a file on another grid failed
    # with a grid error about the world's validation split
    import xfuxi.cli.train as train_cli
    from tests.training.test_forecast import _world

    def no_world(split, days):
        raise AssertionError(f"the world's {split} split was read")

    monkeypatch.setattr(train_cli, "world_split", no_world)
    _world(12).to_netcdf(tmp_path / "train.nc")
    rc = main(["--no-progress", "train", "--train", str(tmp_path / "train.nc"), "--preset",
               "tiny", "--steps", "1", "--batch-size", "4", "--warmup-steps", "1", "--out",
               str(tmp_path / "ckpt")])  # fmt: skip
    assert rc == 0
    assert "validation" not in xfuxi.load_model(tmp_path / "ckpt").config["metadata"]["training"]
    parser, _ = _command_parser("train")
    text = parser.format_help().replace("\n", " ")
    assert "'none' when --train is a path" in " ".join(text.split())


def test_cli_train_ens_checkpoints_next_to_its_output_and_resumes(tmp_path, monkeypatch):
    # the checkpoints went to a temporary directory deleted at exit: a killed run could
    # not resume
    import torch

    import xfuxi.cli.train as train_cli
    import xfuxi.training.ens as ens_module
    from tests.models.test_ens import _model, _random_walk
    from xfuxi.models.ens import load_perturbation

    monkeypatch.setattr(train_cli, "load_model", lambda name, device=None: _model())
    monkeypatch.setattr(
        train_cli, "world_split", lambda split, days: _random_walk(20, 0.3, split == "train")
    )
    real, calls = ens_module.ensemble_loss, []

    class Killed(BaseException):  # (as a kill: not caught by the command's error report)
        pass

    def loss(*args, **kwargs):
        if kwargs["kl_weight"] == 0.0:  # a validation's
            return real(*args, **kwargs)
        calls.append(1)
        if kill[0] is not None and len(calls) == kill[0]:
            raise Killed
        return real(*args, **kwargs)

    kill = [None]
    monkeypatch.setattr(ens_module, "ensemble_loss", loss)

    def run(out):
        return main(["--no-progress", "train-ens", "--iterations", "3", "--batch-size", "2",
                     "--members", "2", "--hidden", "4", "--latent", "2", "--downsample", "2",
                     "--checkpoint-every", "1", "--validate-every", "100", "--calibrate", "",
                     "--calibrate-variables", "", "--out", str(out)])  # fmt: skip

    kill[0] = 3  # killed in its third iteration: two are checkpointed
    with pytest.raises(Killed):
        run(tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
    ckpt = tmp_path / "ens.training"
    assert (ckpt / "latest").is_dir()
    kill[0], calls[:] = None, []
    assert run(tmp_path / "ens") == 0
    assert len(calls) == 1  # resumed: only the third iteration was trained
    resumed = load_perturbation(tmp_path / "ens")
    calls[:] = []
    assert run(tmp_path / "fresh") == 0 and len(calls) == 3
    fresh = load_perturbation(tmp_path / "fresh")
    for (name, p), q in zip(fresh.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def test_cli_train_ens_checks_the_calibration_length_before_training(tmp_path, monkeypatch, capsys):
    """A validation split too short for --calibrate-steps failed after the whole training,
    leaving its training directory (and a rerun with more days was refused as a training
    of other settings)."""
    import xfuxi.cli.train as train_cli
    import xfuxi.training.ens as ens_module
    from tests.models.test_ens import _model, _random_walk

    monkeypatch.setattr(train_cli, "load_model", lambda name, device=None: _model())
    monkeypatch.setattr(
        train_cli, "world_split", lambda split, days: _random_walk(20, 0.3, split == "train")
    )
    trained = []
    monkeypatch.setattr(ens_module, "ensemble_loss", lambda *a, **k: trained.append(1))
    rc = main(["--no-progress", "train-ens", "--iterations", "3", "--members", "2",
               "--calibrate-steps", "40", "--out", str(tmp_path / "ens")])  # fmt: skip
    assert rc == 2 and trained == []
    assert "too short to calibrate over --calibrate-steps 40" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_train_da_writes_its_network_under_the_training_lock(tmp_path, monkeypatch, capsys):
    """The network was written into --out after the training's lock was released: a run
    started on the same --out meanwhile had its directory written into."""
    import xfuxi.cli.train as train_cli
    import xfuxi.training.da as da_training
    from tests.models.test_fuxi_da import tiny_da_model
    from xfuxi.models.training_state import lock_checkpoint_directory

    out = tmp_path / "da"
    other = []

    def trained_while_another_run_starts(train, model, **kw):
        other.append(lock_checkpoint_directory(out))  # another run takes --out meanwhile
        return tiny_da_model(), {"val_l0": [], "step": []}

    monkeypatch.setattr(da_training, "train_da", trained_while_another_run_starts)
    monkeypatch.setattr(train_cli, "load_model", lambda name, device=None: None)
    monkeypatch.setattr(train_cli, "world_split", lambda split, days: None)
    try:
        rc = main(["--no-progress", "train-da", "--steps", "1", "--out", str(out)])
    finally:
        other[0].release()
    assert rc != 0 and "OutputInUseError" in capsys.readouterr().err
    assert not (out / "model").exists()
    monkeypatch.setattr(
        da_training, "train_da", lambda *a, **k: (tiny_da_model(), {"val_l0": [], "step": []})
    )
    assert main(["--no-progress", "train-da", "--steps", "1", "--out", str(out)]) == 0
    assert (out / "model").is_dir()


def test_main_in_process_leaves_options_and_logging_as_it_found_them(monkeypatch, capsys):
    """``main()`` called in a Python session: ``--no-progress`` and the command's logging
    (a stderr handler on the root logger, at INFO) hold for the command only; they were left
    set after it (the progress option off, a handler and level on the root logger)."""
    import logging

    from xfuxi.cli.common import COMMANDS

    seen = []

    def probe(args):
        seen.append(xfuxi.get_options()["progress"])
        logging.getLogger("xfuxi.probe").info("the command logs")
        if args.fail:
            raise RuntimeError("the command fails")
        return 0

    probe.help = "a command of this test"
    add = lambda p: p.add_argument("--fail", action="store_true")  # noqa: E731
    monkeypatch.setitem(COMMANDS, "probe", (add, probe))
    root = logging.getLogger()
    # a fresh interpreter's root logger: no handler (pytest's capture handlers set aside)
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    with xfuxi.set_options(progress=True):  # (restored, should main leave it changed)
        assert main(["--no-progress", "probe"]) == 0
        assert main(["--no-progress", "probe", "--fail"]) == 1
        with pytest.raises(RuntimeError, match="the command fails"):
            main(["--no-progress", "--debug", "probe", "--fail"])
        assert seen == [False, False, False]
        assert xfuxi.get_options()["progress"] is True
    assert root.handlers == [] and root.level == logging.WARNING
    err = capsys.readouterr().err  # as from a shell: the command's INFO records on stderr
    assert err.count("xfuxi.probe INFO: the command logs") == 3
    assert "xfuxi probe: error: RuntimeError: the command fails" in err
    # a caller's own logging is left alone (as logging.basicConfig leaves it)
    mine = logging.NullHandler()
    monkeypatch.setattr(root, "handlers", [mine])
    assert main(["probe"]) == 0
    assert root.handlers == [mine] and root.level == logging.WARNING
    assert seen == [False, False, False, True]
