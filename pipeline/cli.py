"""How every stage starts and fails: one clear line and exit code 2 for bad input."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


class UserError(Exception):
    """An input the user can fix (params, archive, URL, text): shown as one line, no traceback."""


def run(main: Callable[[], None]) -> None:
    """Call a stage's ``main()``; turn a UserError into ``error: ...`` on stderr and exit 2.

    SIGTERM (``kill``, a scheduler stopping the job) is handled like Ctrl-C: the
    stage unwinds, its MLflow runs end KILLED, its trial FAIL, and the exit code is
    128 + the signal number.
    """
    received = [signal.SIGINT]

    def terminate(signum, frame):
        received[0] = signal.Signals(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"error: interrupted ({received[0].name}); outputs were left as they were before this run",
              file=sys.stderr)
        sys.exit(128 + received[0])
