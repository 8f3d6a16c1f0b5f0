"""Where a ``cnn-ext train`` run stood when its model was saved: a small JSON file beside it.

``MNIST_CNN.pkl`` gets ``MNIST_CNN.pkl.run.json``, holding the seed of the shuffle, the
epochs and steps trained, the epochs planned, the training-set size and the learn rate,
so that ``cnn-ext train --resume`` continues the same run (the next steps of the same
orders) instead of restarting the shuffle. The model file itself keeps the tutorial's
format, which the tutorial's own ``ModelSaver`` reads. The record names the model by a
SHA-256 of its bytes: a model replaced by other means (the tutorial's ``ModelSaver``, a
copy) no longer matches, and its stale record is ignored.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from typing import Any

from ._files import read_regular

__all__ = ["RECORD_SUFFIX", "record_filename", "save_run", "load_run"]

RECORD_SUFFIX = ".run.json"
FORMAT = "cnn_ext-run/1"
_MAX_RECORD_BYTES = 64 * 1024
_MAX_MODEL_BYTES = 64 * 1024 * 1024  # saver.MAX_MODEL_BYTES
_INT_KEYS = ("seed", "epoch", "step", "epochs", "train_images")
# Resuming redraws the shuffle of every epoch already trained (about 1 ms each for MNIST):
# a record claiming more epochs than this is not one cnn-ext wrote for a real run, and
# would otherwise make --resume spend minutes before its first step.
MAX_RECORD_EPOCHS = 10_000


def record_filename(model_file: str) -> str:
    """The record's file beside ``model_file``: ``model_file + ".run.json"``."""
    return model_file + RECORD_SUFFIX


def _digest(model_file: str) -> str:
    return hashlib.sha256(read_regular(model_file, _MAX_MODEL_BYTES, "a model file")).hexdigest()


def save_run(model_file: str, *, seed: int, epoch: int, step: int, epochs: int, train_images: int,
             learn_rate: float) -> None:
    """Record, beside the just-saved ``model_file``, that it holds the weights after
    ``epoch`` whole epochs and ``step`` steps of the next, of a run of ``epochs`` epochs
    over ``train_images`` images shuffled from ``seed``. Written atomically; raises OSError
    (ModelWriteError) if it cannot be."""
    from .saver import _atomic_write

    record = {"format": FORMAT, "model_sha256": _digest(model_file), "seed": int(seed),
              "epoch": int(epoch), "step": int(step), "epochs": int(epochs),
              "train_images": int(train_images), "learn_rate": float(learn_rate)}
    data = (json.dumps(record, indent=1) + "\n").encode("ascii")
    _atomic_write(record_filename(model_file), lambda f: f.write(data))


def load_run(model_file: str) -> tuple[dict[str, Any] | None, str]:
    """The record of ``model_file``, or None, and why not (one line): none beside it, a
    damaged one, or one of another model."""
    name = record_filename(model_file)
    try:
        record = json.loads(read_regular(name, _MAX_RECORD_BYTES, "a training record"))
    except FileNotFoundError:
        return None, f"no record of where its training stood ({name})"
    except (OSError, ValueError) as exc:  # unreadable, not a regular file, not JSON
        return None, f"its training record cannot be read ({exc})"
    if not isinstance(record, dict) or record.get("format") != FORMAT \
            or not all(isinstance(record.get(key), numbers.Integral) and not isinstance(record.get(key), bool)
                       and record[key] >= 0 for key in _INT_KEYS) \
            or not isinstance(record.get("learn_rate"), (int, float)) or isinstance(record["learn_rate"], bool) \
            or not (math.isfinite(record["learn_rate"]) and record["learn_rate"] > 0) \
            or record["train_images"] < 1 or record["step"] >= record["train_images"] \
            or record["seed"] > 2**32 - 1 \
            or not record["epoch"] <= record["epochs"] <= MAX_RECORD_EPOCHS \
            or (record["epoch"] == record["epochs"] and record["step"]):
        return None, f"its training record {name} is damaged"
    try:
        digest = _digest(model_file)
    except (OSError, ValueError) as exc:
        return None, f"it cannot be read ({exc})"
    if record.get("model_sha256") != digest:
        return None, f"its training record {name} belongs to another version of the model"
    return record, ""


def remove_run(model_file: str) -> None:
    """Remove a record that no longer describes ``model_file`` (if any)."""
    try:
        os.remove(record_filename(model_file))
    except OSError:
        pass
