"""robmem: robust memorization and robust overfitting in adversarial training.

The repository keeps three folders, installed as subpackages: ``theory/`` is
:mod:`robmem.theory`, ``empirics/`` is :mod:`robmem.empirics` and ``bridge/`` is
:mod:`robmem.bridge` (pyproject.toml maps them). In a checkout run without installing
(``PYTHONPATH=.``) the repository root joins this package's path, so the same names resolve.
"""

import pathlib as _pathlib

_root = _pathlib.Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "theory" / "__init__.py").is_file():
    __path__.append(str(_root))  # a checkout, not site-packages

#: The entry points most scripts use, imported on first access (``import robmem`` stays light:
#: ``robmem.theory`` never loads torch).
_EXPORTS = {
    "construct_and_certify": "robmem.theory.pipeline",
    "certify": "robmem.theory.certify",
    "REGISTRY": "robmem.theory.bounds",
    "TrainConfig": "robmem.empirics.config",
    "train": "robmem.empirics.trainers",
    "load_dataset": "robmem.empirics.data",
    "build_model": "robmem.empirics.models",
    "PGD": "robmem.empirics.attacks",
    "analyze": "robmem.bridge.analyze",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robmem' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
