"""Cycling and twin experiments for FuXi-En4DVar.

* :func:`~xfuxi.experiments.cycling.lorenz96_twin` — Lorenz-96 twin experiment;
* :func:`~xfuxi.experiments.cycling.cycle_4dvar` — cycling on gridded data (Held–Suarez world).
"""

from __future__ import annotations
