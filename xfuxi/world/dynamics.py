"""The dynamical core of the embedded world: dinosaur's Held–Suarez model, jitted.

:class:`WorldModel` holds the dinosaur objects for one configuration, the jitted spin-up day
and output chunk (integration plus post-processing to SI units on pressure levels) and the
seeded initial state; :func:`get_model` caches one per configuration so that its functions
compile once. :mod:`xfuxi.world.simulator` runs it, caches its output and defines the splits.
See the documentation, docs/design.md (Embedded world).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

__all__ = ["CHUNK_DAYS", "MODEL_KEYS", "TRACER_TAU_DAYS", "WorldModel", "get_model"]

#: relaxation timescale of the passive tracer toward its equilibrium profile (days)
TRACER_TAU_DAYS = 5.0
_TRACER_LAT_SCALE_DEG = 30.0
_PERTURBATION_VORTICITY = 1e-6  # s**-1, rms of the seeded vorticity noise
#: outputs are computed and written in chunks of this many days
CHUNK_DAYS = 10

MODEL_KEYS = ("resolution", "levels", "n_sigma_levels", "output_hours", "time_step_minutes")


@functools.lru_cache(maxsize=4)
def _model(frozen: str) -> WorldModel:
    """The model for a configuration, cached so its jitted functions compile only once."""
    return WorldModel(json.loads(frozen))


def get_model(config: dict[str, Any]) -> WorldModel:
    return _model(json.dumps({k: config[k] for k in MODEL_KEYS}, sort_keys=True))


class WorldModel:
    """dinosaur objects, the jitted spin-up day and output chunk, and the post-processing.

    Everything here depends only on ``MODEL_KEYS`` of the configuration; the seed enters
    through :meth:`initial_state` alone, so one compiled model serves every seed.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        import jax
        import jax.numpy as jnp
        from dinosaur import (
            coordinate_systems,
            held_suarez,
            primitive_equations,
            primitive_equations_states,
            scales,
            sigma_coordinates,
            spherical_harmonic,
            time_integration,
            vertical_interpolation,
            xarray_utils,
        )

        units = scales.units
        self._jax, self._units, self._pe = jax, units, primitive_equations
        grid = getattr(spherical_harmonic.Grid, config["resolution"])()
        sigma = sigma_coordinates.SigmaCoordinates.equidistant(config["n_sigma_levels"])
        coords = coordinate_systems.CoordinateSystem(horizontal=grid, vertical=sigma)
        specs = primitive_equations.PrimitiveEquationsSpecs.from_si()
        self.coords, self.specs, self.grid = coords, specs, grid

        self._init_fn, aux = primitive_equations_states.isothermal_rest_atmosphere(
            coords, specs, p0=1e5 * units.pascal, p1=5e3 * units.pascal
        )
        ref_temps = aux[xarray_utils.REF_TEMP_KEY]
        nodal_orography = aux[xarray_utils.OROGRAPHY]  # flat: surface geopotential 0
        orography = primitive_equations.truncated_modal_orography(nodal_orography, coords)

        lon, sin_lat = grid.nodal_mesh
        lat = np.arcsin(sin_lat)
        sig = np.asarray(sigma.centers)[:, None, None]
        q_eq_nodal = np.exp(-((np.rad2deg(lat) / _TRACER_LAT_SCALE_DEG) ** 2))[None] * sig**2
        q_eq_modal = grid.to_modal(jnp.asarray(q_eq_nodal))
        self.q_eq_modal = q_eq_modal

        # --- equations: dry core + Held–Suarez forcing + tracer relaxation
        core = primitive_equations.PrimitiveEquations(ref_temps, orography, coords, specs)
        hs = held_suarez.HeldSuarezForcing(
            coords=coords, physics_specs=specs, reference_temperature=ref_temps
        )
        tau = specs.nondimensionalize(TRACER_TAU_DAYS * units.day)

        class _HeldSuarezWithTracers(time_integration.ExplicitODE):
            """Held–Suarez forcing, with zero tendencies for the tracers (docs/design.md)."""

            def explicit_terms(self, s):  # noqa: ANN001, ANN202
                t = hs.explicit_terms(s)
                return primitive_equations.State(
                    vorticity=t.vorticity,
                    divergence=t.divergence,
                    temperature_variation=t.temperature_variation,
                    log_surface_pressure=t.log_surface_pressure,
                    tracers=jax.tree.map(jnp.zeros_like, s.tracers),
                )

        class _TracerRelaxation(time_integration.ExplicitODE):
            """Source/sink: relax the tracer toward ``q_eq`` with timescale ``tau``.

            Other tracers (the anomalies of :mod:`xfuxi.world.tracer_anomalies`) relax toward
            0 on the same timescale, so that ``passive_tracer + anomaly`` obeys the tracer's
            own equation exactly (it is linear in the tracer).
            """

            def explicit_terms(self, s):  # noqa: ANN001, ANN202
                z = jnp.zeros_like
                return primitive_equations.State(
                    vorticity=z(s.vorticity),
                    divergence=z(s.divergence),
                    temperature_variation=z(s.temperature_variation),
                    log_surface_pressure=z(s.log_surface_pressure),
                    tracers={
                        k: -(q - q_eq_modal) / tau if k == "passive_tracer" else -q / tau
                        for k, q in s.tracers.items()
                    },
                )

        equation = time_integration.compose_equations(
            [core, _HeldSuarezWithTracers(), _TracerRelaxation()]
        )
        dt = specs.nondimensionalize(config["time_step_minutes"] * units.minute)
        step = time_integration.imex_rk_sil3(equation, dt)
        filters = [
            time_integration.exponential_step_filter(grid, dt, tau=0.0087504, order=1.5, cutoff=0.8)
        ]
        step = time_integration.step_with_filters(step, filters)
        self.step = step
        self.inner_steps = int(round(config["output_hours"] * 60 / config["time_step_minutes"]))
        self.outputs_per_day = 24 // config["output_hours"]

        # --- post-processing to SI on pressure levels (inside jit)
        g_scale = specs.dimensionalize(1.0, units.meter**2 / units.second**2).magnitude
        t_scale = specs.dimensionalize(1.0, units.degK).magnitude
        v_scale = specs.dimensionalize(1.0, units.meter / units.second).magnitude
        p_scale = specs.dimensionalize(1.0, units.pascal).magnitude
        p_levels = np.asarray(config["levels"], dtype="float64") * 100.0 / p_scale
        pressure = vertical_interpolation.PressureCoordinates(p_levels)
        nodal_orog = jnp.asarray(nodal_orography)

        def post(s):  # noqa: ANN001, ANN202
            temperature = ref_temps[:, None, None] + grid.to_nodal(s.temperature_variation)
            u, v = spherical_harmonic.vor_div_to_uv_nodal(grid, s.vorticity, s.divergence)
            phi = primitive_equations.get_geopotential_on_sigma(
                temperature,
                nodal_orography=nodal_orog,
                sigma=sigma,
                gravity_acceleration=specs.g,
                ideal_gas_constant=specs.R,
            )
            tracer = grid.to_nodal(s.tracers["passive_tracer"])
            ps = jnp.exp(grid.to_nodal(s.log_surface_pressure))  # (1, lon, lat)
            fields = {
                "geopotential": phi * g_scale,
                "temperature": temperature * t_scale,
                "u_component_of_wind": u * v_scale,
                "v_component_of_wind": v * v_scale,
                "passive_tracer": tracer,
            }
            for k, q in s.tracers.items():  # further tracers: the anomalies, if any
                if k != "passive_tracer":
                    fields[k] = grid.to_nodal(q)
            on_p = vertical_interpolation.interp_sigma_to_pressure(fields, pressure, sigma, ps)
            # (level, lon, lat) -> (level, lat, lon)
            out = {k: jnp.swapaxes(x, -1, -2).astype(jnp.float32) for k, x in on_p.items()}
            out["surface_pressure"] = jnp.swapaxes(ps[0] * p_scale, -1, -2).astype(jnp.float32)
            return out

        self.post = post
        # spin-up advances whole days; output runs chunks of CHUNK_DAYS days (the last chunk
        # is run in full and cut), so a shorter run is exactly the start of a longer one
        self.chunk = CHUNK_DAYS * self.outputs_per_day
        self.spin_day = jax.jit(
            time_integration.repeated(step, self.inner_steps * self.outputs_per_day)
        )
        self.run_chunk = jax.jit(
            time_integration.trajectory_from_step(
                step, outer_steps=self.chunk, inner_steps=self.inner_steps, post_process_fn=post
            )
        )
        self.latitude = np.rad2deg(np.asarray(grid.latitudes, dtype="float64"))
        self.longitude = np.rad2deg(np.asarray(grid.longitudes, dtype="float64"))

    def initial_state(self, seed: int) -> Any:
        """Isothermal rest state, a seeded surface-pressure bump and vorticity noise."""
        jax, units = self._jax, self._units
        key = jax.random.PRNGKey(seed)
        k_ps, k_vor = jax.random.split(key)
        state = self._init_fn(rng_key=k_ps)
        noise_amp = self.specs.nondimensionalize(_PERTURBATION_VORTICITY / units.second)
        nodal_noise = noise_amp * jax.random.normal(k_vor, self.coords.nodal_shape)
        return self._pe.State(
            vorticity=state.vorticity + self.grid.to_modal(nodal_noise),
            divergence=state.divergence,
            temperature_variation=state.temperature_variation,
            log_surface_pressure=state.log_surface_pressure,
            tracers={"passive_tracer": self.q_eq_modal},
        )
