"""The exceptions the CLI turns into a single clear line: bad input, and a signal outside a run's fit."""

import signal


class NSTError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


class Stopped(BaseException):
    """A signal ended a run outside its fit: before it (nothing to resume) or after it (its outputs complete).

    A BaseException, as KeyboardInterrupt is: code that falls back on any Exception (W&B's
    online start) must not take it for a failure of its own.
    """

    def __init__(self, signum: int, finished: bool):
        self.signum, self.finished = signum, finished
        name = signal.Signals(signum).name
        if finished:
            super().__init__(f"stopped by {name} after the run finished: its outputs are complete")
        else:
            super().__init__(f"stopped by {name} before optimising began: nothing to resume; start the run again")
