"""What ``Network.fit`` records: the tutorial's step log as numbers, and per-epoch metrics.

``History`` follows Keras' ``model.fit`` result: ``history.history`` is a dict of
per-epoch lists (``loss``, ``accuracy``, and ``val_loss``/``val_accuracy`` when
``fit(..., validation_data=(x, y))`` is given), ``history.epoch`` the epoch numbers.
``history.steps`` adds what Keras does not have: the tutorial's "[Step N] Past 100
steps" log lines, each a :class:`StepRecord`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

__all__ = ["StepRecord", "EpochRecord", "History"]


@dataclass(frozen=True)
class StepRecord:
    """The running loss and accuracy over ``count`` training steps, ending at ``step``.

    ``step`` counts training steps from 1 across all epochs of one ``fit``; ``loss`` is the
    mean cross-entropy over those ``count`` steps (the tutorial's "Average Loss"), and
    ``accuracy`` the fraction (0..1) of them whose image was classified correctly before
    its update. Each record is a new, immutable object.
    """

    step: int
    epoch: int
    count: int
    loss: float
    accuracy: float

    def line(self) -> str:
        """The tutorial's log line, e.g. ``[Step 100] Past 100 steps :Average Loss 2.236 | Accuracy 16%``."""
        return "[Step %d] Past %d steps :Average Loss %.3f | Accuracy %d%%" % (
            self.step, self.count, self.loss, round(100 * self.accuracy))

    def __str__(self) -> str:
        return self.line()


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's mean training loss and accuracy (over every step of the epoch), and the
    validation loss and accuracy after it when ``fit`` was given ``validation_data``."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: Optional[float] = None
    val_accuracy: Optional[float] = None

    def metrics(self) -> Dict[str, float]:
        """The record as the ``History.history`` keys it fills."""
        out = {"loss": self.loss, "accuracy": self.accuracy}
        if self.val_loss is not None:
            out["val_loss"] = self.val_loss
            # fit sets val_loss and val_accuracy together
            out["val_accuracy"] = self.val_accuracy  # type: ignore[assignment]
        return out


@dataclass
class History:
    """The result of ``Network.fit``.

    ``history``: ``{"loss": [...], "accuracy": [...]}`` with one float per epoch, plus
    ``"val_loss"``/``"val_accuracy"`` with ``validation_data``; ``epoch``: ``[1, 2, ...]``;
    ``steps``: the :class:`StepRecord` of every ``log_every`` interval (empty when
    ``log_every=0``); ``params``: the arguments of the run (epochs, steps, seed, ...);
    ``nan_step``: the first step whose loss was NaN (the weights diverged), else None.
    """

    history: Dict[str, List[float]] = field(default_factory=dict)
    epoch: List[int] = field(default_factory=list)
    steps: List[StepRecord] = field(default_factory=list)
    params: Dict[str, object] = field(default_factory=dict)
    nan_step: Optional[int] = None

    def add_epoch(self, record: EpochRecord) -> None:
        """Append one epoch's metrics to ``history`` and its number to ``epoch``."""
        self.epoch.append(record.epoch)
        for key, value in record.metrics().items():
            self.history.setdefault(key, []).append(value)

    @property
    def lines(self) -> List[str]:
        """The tutorial's log lines, as ``fit`` printed them before it returned a History."""
        return [record.line() for record in self.steps]

    def __repr__(self) -> str:
        last = {key: round(values[-1], 4) for key, values in self.history.items() if values}
        return f"History(epochs={len(self.epoch)}, steps={len(self.steps)} log records, last={last})"
