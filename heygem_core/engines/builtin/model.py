"""The articulation model: a one-hidden-layer network from the speech around a moment
(`acoustics.context_features`) to the mouth's opening, rounding and lip closure at that moment.
Trained by `scripts/train_articulation.py` on speech it synthesises; weights ship as a small npz."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from heygem_core.engines.builtin import acoustics

OUTPUTS = ("opening", "rounding", "closed")
WEIGHTS = Path(__file__).with_name("articulation.npz")


@dataclass(frozen=True)
class ArticulationModel:
    """Weights with the bias as the last row: `w1` (features + 1, hidden), `w2` (hidden + 1, 3)."""

    w1: np.ndarray
    w2: np.ndarray

    @staticmethod
    def default_path() -> Path:
        return WEIGHTS

    def save(self, path: Path) -> None:
        np.savez_compressed(path, w1=self.w1.astype(np.float32), w2=self.w2.astype(np.float32),
                            context_s=np.array(acoustics.CONTEXT_S, np.float32),
                            n_mels=np.array(acoustics.N_MELS))

    @classmethod
    def load(cls, path: Path) -> ArticulationModel:
        with np.load(path) as data:
            if int(data["n_mels"]) != acoustics.N_MELS or not np.allclose(data["context_s"], acoustics.CONTEXT_S):
                raise ValueError(f"{path.name} was trained on other features; retrain it")
            return cls(w1=data["w1"], w2=data["w2"])

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, 3) opening, rounding and closure probability, each in [0, 1]."""
        hidden = np.tanh(features @ self.w1)
        out = np.hstack([hidden, np.ones((len(hidden), 1), hidden.dtype)]) @ self.w2
        return 1.0 / (1.0 + np.exp(-out))


@lru_cache(maxsize=1)
def shipped_model() -> ArticulationModel:
    """The model in the package, loaded once per process."""
    return ArticulationModel.load(WEIGHTS)
