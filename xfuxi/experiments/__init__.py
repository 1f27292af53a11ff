"""Cycling and twin experiments for FuXi-En4DVar.

* :func:`~xfuxi.experiments.lorenz96.lorenz96_twin` — Lorenz-96 twin experiment;
* :func:`~xfuxi.experiments.lorenz96.cycle_4dvar` — cycling on gridded data (Held–Suarez world).
"""

from __future__ import annotations
