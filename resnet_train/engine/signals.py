"""Pre-emption: inside the training loop a signal is recorded (`SignalFlag`) and the loop stops after the
step, writing a checkpoint; anywhere else (`StopOutsideLoop`) it stops the run at once. Either way the run
ends with `Preempted`, exit code 75.
"""

from __future__ import annotations

import logging
import signal

log = logging.getLogger("resnet_train")

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped by a signal after writing a checkpoint; re-run to resume
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


class Preempted(KeyboardInterrupt):
    """A run stopped by a signal, after its checkpoint was written (`iteration` None: outside the loop).
    A KeyboardInterrupt, so no `except Exception` catches it, nor tqdm's logging redirect."""

    def __init__(self, signum: int, iteration: int | None):
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} outside the training loop; nothing new to checkpoint"
            if iteration is None
            else f"stopped by {name} at iteration {iteration}; checkpoint written"
        )
        self.signum, self.iteration = signum, iteration


class SignalFlag:  # records a pre-emption signal; the loop polls it between steps
    def __init__(self):
        self.signum: int | None = None
        self.previous = {}
        self.outer: SignalFlag | None = None  # the enclosing flag, if any
        self.said = False

    def __enter__(self) -> SignalFlag:
        for signum in PREEMPTION_SIGNALS:
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                break
        # A signal the enclosing StopOutsideLoop could not act on (its exception raised where Python drops
        # exceptions, in a finaliser or a callback) still stops the run, after the first step.
        outer = getattr(self.previous.get(signal.SIGTERM), "__self__", None)
        self.outer = outer if isinstance(outer, SignalFlag) else None
        if self.outer is not None and self.outer.signum is not None:
            self.signum = self.outer.signum
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def received(self) -> int | None:
        """The signal received, said in the log the first time the loop asks: here, not in the handler, which
        may interrupt a log line being written (the file then refuses a second, reentrant write)."""
        if self.signum is not None and not self.said:
            self.said = True
            name = signal.Signals(self.signum).name
            log.warning("received %s: finishing this step and writing a checkpoint", name)
        return self.signum

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.outer is not None and self.signum is not None:  # a second signal changes nothing
            self.outer.signum = self.outer.signum or self.signum


class StopOutsideLoop(SignalFlag):
    """Outside the loop a signal stops the run at once: nothing new to save, and waiting could outlast the
    scheduler's grace period before SIGKILL."""

    def _handle(self, signum, frame) -> None:
        if self.signum is None:  # the run is stopping already: a second signal changes nothing
            self.signum = signum
            raise Preempted(signum, None)
