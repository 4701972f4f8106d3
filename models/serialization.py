"""Everything a scoring run needs from training, in one object that can be stored and replayed.

A score is only reproducible with the exact trees, the calibration map, the feature list,
the class cut-offs derived for *this* model's score distribution and the policy version they
came from. `RiskModelBundle` carries all of them, with a content fingerprint for the audit
log. It is a plain dataclass: `save`/`load` use joblib; an MLflow pyfunc only needs to call
`RiskModelBundle.predict` on a loaded bundle.

What the training engineer should log with each bundle (`mlflow_params()` gives the flat
dict): model fingerprint, feature names and catalogue name, policy version and hash,
training and calibration windows, class labels and cut-offs, library versions; as metrics,
AUC/Brier/ECE on the calibration and a later test slice; as artifacts, the bundle file and
the global SHAP importance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd

from models.classes import CLASS_LABELS, assign_classes

_TRACKED_LIBRARIES = ("lightgbm", "scikit-learn", "numpy", "pandas", "shap")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a pickled model depends on."""
    versions: dict[str, str] = {}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _feed(digest: Any, obj: Any, depth: int = 0) -> None:
    """Add a canonical byte form of `obj` to `digest` (objects by their attributes)."""
    if depth > 50:
        raise ValueError("model object graph too deep to fingerprint")
    if obj is None or isinstance(obj, bool | int | float | str | bytes | np.generic):
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, np.ndarray):
        digest.update(f"ndarray:{obj.dtype.str}:{obj.shape};".encode())
        if obj.dtype == object:
            for item in obj.reshape(-1).tolist():
                _feed(digest, item, depth + 1)
        else:
            digest.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, lgb.Booster):
        digest.update(b"booster:" + obj.model_to_string().encode())
    elif isinstance(obj, Mapping):
        digest.update(f"map:{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(digest, key, depth + 1)
            _feed(digest, obj[key], depth + 1)
    elif isinstance(obj, list | tuple):
        digest.update(f"seq:{len(obj)};".encode())
        for item in obj:
            _feed(digest, item, depth + 1)
    elif callable(obj) and not hasattr(obj, "__dict__"):
        digest.update(f"callable:{getattr(obj, '__qualname__', type(obj).__name__)};".encode())
    elif hasattr(obj, "__dict__"):
        digest.update(f"object:{type(obj).__module__}.{type(obj).__qualname__};".encode())
        _feed(digest, vars(obj), depth + 1)
    else:
        digest.update(f"opaque:{type(obj).__qualname__};".encode())


def model_fingerprint(model: Any) -> str:
    """SHA-256 over the model's content: tree text, calibration arrays, parameters.

    Unlike a hash of the pickle, it survives a save/load round trip (pickles of the same
    model may differ byte for byte) and changes whenever trees or calibration change, so the
    audit log can prove which model scored a decision.
    """
    digest = hashlib.sha256()
    _feed(digest, model)
    return digest.hexdigest()


@dataclass(frozen=True)
class RiskModelBundle:
    """A fitted (calibrated) model with the context needed to score and audit with it.

    `model` needs `predict_proba`, `decision_function` and `feature_names_` (e.g. a fitted
    CalibratedRiskModel). `cutoffs` are probability cut-offs between `class_labels`, lowest
    risk first. Windows are inclusive (start, end) dates of the labelled data used.
    """

    model: Any
    feature_names: tuple[str, ...]
    catalogue_name: str
    cutoffs: tuple[float, ...]
    policy_version: str
    policy_hash: str
    training_window: tuple[date, date]
    calibration_window: tuple[date, date] | None = None
    class_labels: tuple[str, ...] = CLASS_LABELS
    model_version: str = ""
    libraries: dict[str, str] = field(default_factory=library_versions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "cutoffs", tuple(float(c) for c in self.cutoffs))
        object.__setattr__(self, "class_labels", tuple(self.class_labels))
        fitted = list(getattr(self.model, "feature_names_", []))
        if fitted != list(self.feature_names):
            raise ValueError(
                "bundle feature_names differ from the model's fitted feature_names_ / "
                f"模型特征与包记录不一致: {list(self.feature_names)} vs {fitted}"
            )
        if len(self.cutoffs) != len(self.class_labels) - 1:
            raise ValueError(
                f"{len(self.class_labels)} classes need {len(self.class_labels) - 1} cut-offs"
            )
        for name, window in (
            ("training_window", self.training_window),
            ("calibration_window", self.calibration_window),
        ):
            if window is not None and window[0] > window[1]:
                raise ValueError(f"{name} starts after it ends: {window}")

    def fingerprint(self) -> str:
        """Content hash of the model (see `model_fingerprint`)."""
        return model_fingerprint(self.model)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Raw score, calibrated probability and score class (cut-offs only) per row.

        Final classes need hysteresis and hard rules from the policy: use `assign_classes`
        with `self.cutoffs` for those.
        """
        raw = np.asarray(self.model.decision_function(X), dtype=np.float64)
        probability = np.asarray(self.model.predict_proba(X))[:, 1]
        classes = assign_classes(
            pd.Series(probability, index=X.index),
            list(self.cutoffs),
            labels=self.class_labels,
        )
        return pd.DataFrame(
            {
                "raw_score": raw,
                "probability": probability,
                "score_class": classes["score_class"].to_numpy(),
            },
            index=X.index,
        )

    def mlflow_params(self) -> dict[str, str]:
        """Flat string parameters for `mlflow.log_params` (values <= 6000 chars each)."""
        params = {
            "model_fingerprint": self.fingerprint(),
            "model_version": self.model_version,
            "model_class": type(self.model).__name__,
            "catalogue_name": self.catalogue_name,
            "n_features": str(len(self.feature_names)),
            "feature_names": ",".join(self.feature_names),
            "policy_version": self.policy_version,
            "policy_hash": self.policy_hash,
            "training_window": f"{self.training_window[0]}/{self.training_window[1]}",
            "calibration_window": (
                f"{self.calibration_window[0]}/{self.calibration_window[1]}"
                if self.calibration_window
                else ""
            ),
            "class_labels": ",".join(self.class_labels),
            "cutoffs": ",".join(repr(c) for c in self.cutoffs),
        }
        params.update({f"lib_{name}": version for name, version in self.libraries.items()})
        return params

    def version_mismatches(self) -> dict[str, tuple[str, str]]:
        """Libraries whose installed version differs from the one the bundle was built with."""
        now = library_versions()
        return {
            name: (built, now.get(name, "not installed"))
            for name, built in self.libraries.items()
            if now.get(name) != built
        }

    def save(self, path: str | Path) -> Path:
        """Write the bundle with joblib; returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, target)
        return target

    @classmethod
    def load(cls, path: str | Path) -> RiskModelBundle:
        """Read a bundle written by `save` (trusted files only: joblib unpickles code)."""
        loaded = joblib.load(Path(path))
        if not isinstance(loaded, cls):
            raise TypeError(f"{path} does not hold a RiskModelBundle / 文件不是模型包")
        return loaded
