"""How every stage starts and fails: one clear line and exit code 2 for bad input."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """An input the user can fix (params, archive, URL, text): shown as one line, no traceback."""


def run(main: Callable[[], None]) -> None:
    """Call a stage's ``main()``; turn a UserError into ``error: ...`` on stderr and exit 2."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; outputs were left as they were before this run", file=sys.stderr)
        sys.exit(130)
