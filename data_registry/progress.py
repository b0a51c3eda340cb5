"""Progress reporting for long registry operations: a tqdm bar on stderr, or nothing."""
from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Rows-per-second bar on stderr for a long ingest; a no-op when disabled.

    The bar appears only once an operation has run ``delay_second`` (short ingests stay quiet),
    and never on stdout, so ``--json`` output stays one clean document.
    """

    def __init__(self, enabled: bool, description: str = "ingest",
                 delay_second: float = 1.0) -> None:
        self._bar: Any = None
        self._started = time.monotonic()
        self._delay = delay_second
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(desc=description, unit=" rows", unit_scale=True, file=sys.stderr,
                             delay=delay_second, leave=False, dynamic_ncols=True)

    def describe(self, text: str) -> None:
        """Change the label (e.g. the file being read)."""
        if self._bar is not None:
            self._bar.set_description_str(text, refresh=False)

    def advance(self, rows: int) -> None:
        """Count ``rows`` more rows as done."""
        if self._bar is not None:
            self._bar.update(rows)

    def close(self) -> None:
        """Show the final count (if the bar was due to appear), then remove the bar."""
        if self._bar is not None:
            if time.monotonic() - self._started >= self._delay:
                self._bar.refresh()
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
