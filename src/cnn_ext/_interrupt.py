"""Ctrl-C during ``Network.fit``: the first stops between two compiled chunks, the second at once.

The training kernels run whole chunks of steps without the GIL, so Python sees SIGINT only
between chunks anyway: the weights are always those after a whole step. What a plain
``KeyboardInterrupt`` loses is *where* training stood (which steps of the epoch's order were
trained), and with it the ``History`` so far. :func:`deferred_sigint` turns the first SIGINT
into a request that ``fit`` honours at the next chunk boundary, raising
:class:`TrainingInterrupted` with the position and the history; a second SIGINT raises the
ordinary ``KeyboardInterrupt`` at once.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .history import History

__all__ = ["TrainingInterrupted", "deferred_sigint"]


class TrainingInterrupted(KeyboardInterrupt):
    """``Network.fit`` stopped by Ctrl-C between two steps.

    The network holds the weights after every step up to the position: ``epoch`` (the
    epoch in progress, from 1) and ``step`` (how many steps of that epoch's order were
    trained, 0..steps_per_epoch-1). ``history`` is the :class:`~cnn_ext.history.History`
    of the finished epochs and logs. ``fit(..., initial_epoch=exc.epoch - 1,
    initial_step=exc.step)`` with the same images, labels and seed continues the run: its
    weights end bit for bit as those of the run left alone.
    """

    def __init__(self, history: History, epoch: int, step: int, steps_per_epoch: int) -> None:
        super().__init__(f"Network.fit interrupted at epoch {epoch}, step {step} of {steps_per_epoch}: "
                         f"the network holds the weights of every step before; "
                         f"fit(..., initial_epoch={epoch - 1}, initial_step={step}) continues the run")
        self.history = history
        self.epoch = epoch
        self.step = step
        self.steps_per_epoch = steps_per_epoch


@contextlib.contextmanager
def deferred_sigint() -> Iterator[Callable[[], bool]]:
    """Within the block, the first SIGINT only sets a flag (the yielded function returns
    whether it came); the second raises ``KeyboardInterrupt`` at once. Active only in the
    main thread, and only while SIGINT has Python's default handler (a handler of the
    user's or of a notebook is left alone: the yielded function then says False)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return
    requested = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal requested
        if requested:
            signal.default_int_handler(signum, frame)  # the second Ctrl-C: stop now
        requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
