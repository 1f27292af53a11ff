"""Data assimilation: FuXi-En4DVar (ensemble 4DVar through a differentiable model).

Submodules (imported lazily; the ones that need torch import it themselves):

* :mod:`.observations` — observation Datasets, synthetic networks, quality control;
* :mod:`.operators` — differentiable observation operators (grid → observation points);
* :mod:`.perlin` — Perlin noise and perturbations;
* :mod:`.localization` — correlation on the sphere / on index distance and its square root;
* :mod:`.calibration` — background-error statistics (the variances of B);
* :mod:`.en4dvar` — the cost, the minimisation and :func:`assimilate_4dvar`.
"""

from __future__ import annotations
