"""Physical constants of the Earth and its atmosphere, defined once for the whole package."""

from __future__ import annotations

__all__ = ["EARTH_RADIUS", "GRAVITY", "OMEGA", "R_DRY"]

#: mean Earth radius in metres (IUGG mean radius R1, as in MetPy)
EARTH_RADIUS = 6371008.7714
#: Earth's angular velocity in s⁻¹ (sidereal day)
OMEGA = 7.292115e-5
#: standard gravity in m s⁻²
GRAVITY = 9.80665
#: gas constant of dry air in J kg⁻¹ K⁻¹
R_DRY = 287.04
