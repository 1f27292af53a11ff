"""Convert the shipped checkpoints, once, to the verified checkpoint store.

Checkpoints written before the store recorded the sha256 of every file carry no
``manifest.json``. This script checks each shipped checkpoint's files against the sha256
recorded for them before (the registry for forecast models, ``weights_sha256`` in the config
for the perturbation module), then adds the manifest (and xfuxi's marker) without changing
any file, and records the manifest's sha256 in the registry (the perturbation module gets a
registry entry of its own). The weights and configs stay byte for byte as they were, so every
forecast is bit-identical. Run from the repository root::

    python scripts/convert_checkpoints.py
"""

from __future__ import annotations

import json
from pathlib import Path

from xfuxi.files import sha256_of
from xfuxi.models.checkpoint import (
    MANIFEST,
    PRETRAINED_DIR,
    CheckpointError,
    entry_kind,
    read_registry,
    seal_checkpoint,
)
from xfuxi.models.registry import register_pretrained

#: the shipped perturbation module, which the registry did not list before
PERTURBATION = (
    "fuxi-ens-hs-t21",
    "FuXi-ENS perturbation module for the FuXi cascade on the Held-Suarez T21 world "
    "(scripts/train_ens_pretrained.sh)",
)


def convert(directory: Path, *, kind: str, expected: dict[str, str]) -> dict:
    """Check ``directory``'s files against ``expected`` sha256, then add the manifest.

    Raises CheckpointError if a file is missing or differs (nothing is written then).
    """
    for name, sha in expected.items():
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory} lacks {name}")
        got = sha256_of(directory / name)
        if got != sha:
            raise CheckpointError(
                f"{directory / name} has sha256 {got}, not the recorded {sha}; not converted"
            )
    return seal_checkpoint(directory, kind=kind)


def main() -> None:
    todo = []
    for name, entry in read_registry().items():
        if entry_kind(entry) == "forecast-model":
            todo.append((name, "forecast-model", entry["sha256"], entry["description"]))
    name, description = PERTURBATION
    config = json.loads((PRETRAINED_DIR / name / "config.json").read_text())
    todo.append((name, "perturbation", {"weights.safetensors": config["weights_sha256"]},
                 description))  # fmt: skip
    for name, kind, expected, description in todo:
        directory = PRETRAINED_DIR / name
        if (directory / MANIFEST).exists():
            print(f"{name}: already converted")
        else:
            convert(directory, kind=kind, expected=expected)
        entry = register_pretrained(name, kind=kind, description=description)
        print(f"{name}: {entry['sha256']}")


if __name__ == "__main__":
    main()
