"""Data assimilation: FuXi-En4DVar (ensemble 4DVar through a differentiable model).

Submodules (``import xfuxi`` does not import this package; they import torch at module level):

* :mod:`.config` — the typed options: ``BackgroundError``, ``LocalizationOptions``,
  ``Window``, ``Minimiser``, ``QualityControl``;
* :mod:`.members` — Perlin-perturbed members, their anomalies, hybrid with a static B;
* :mod:`.localization` — correlation on the sphere / on index distance and its square root;
* :mod:`.cost` — the cost ``J`` (``En4DVarProblem``), observation slots (``ObsSlot``) and
  their VarBC bias models (``SlotBias``);
* :mod:`.minimise` — L-BFGS with autodiff gradients and its history;
* :mod:`.quality` — background check and repeated observations;
* :mod:`.inputs` — from xarray to the core's tensors (background, samples, localization);
* :mod:`.result` — ``En4DVarResult`` and the diagnostics;
* :mod:`.en4dvar` — the core ``en4dvar_analysis`` and the front end ``assimilate_4dvar``;
* :mod:`.calibration` — background-error statistics (the variances of B);
* :mod:`.cycling` — cycled twin experiments on gridded data.

See the definitions in the documentation (docs/design.md, section En4DVar).
"""

from __future__ import annotations
