"""Telling the user how a sweep goes: a tqdm bar or plain log lines on stderr."""

from __future__ import annotations

import math
import sys
import time as _time
from typing import Any, Literal

from sd_model._errors import SDModelError, import_optional

ProgressMode = Literal["bar", "log"]


def progress_mode(progress: bool | str | None) -> ProgressMode | None:
    """The display a ``progress=`` argument asks for (None: nothing)."""
    if progress is None:
        return "bar" if sys.stderr.isatty() else None
    if progress is True:
        return "bar" if sys.stderr.isatty() else "log"
    if progress is False:
        return None
    if progress in ("bar", "log"):
        return progress  # type: ignore[return-value]
    raise SDModelError(f"progress must be None, True, False, 'bar' or 'log'; got {progress!r}.")


class Progress:
    """Scenarios done out of ``total``, the rate and the time left."""

    def __init__(self, mode: ProgressMode | None, total: int, done: int) -> None:
        self.mode = mode
        self.total = total
        self.done = done
        self._start = _time.monotonic()
        self._start_done = done
        self._last = 0.0
        self._bar: Any = None
        if mode == "bar":
            tqdm = import_optional("tqdm.auto", "sweep", "The sweep progress bar").tqdm

            self._bar = tqdm(
                total=total, initial=done, unit="scenario", desc="sweep", dynamic_ncols=True
            )
        elif mode == "log" and done:
            print(f"sweep: resuming, {done}/{total} scenarios already done", file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log":
            now = _time.monotonic()
            if now - self._last >= 5.0 or self.done >= self.total:
                self._last = now
                elapsed = max(now - self._start, 1e-9)
                rate = (self.done - self._start_done) / elapsed
                left = (self.total - self.done) / rate if rate > 0 else math.inf
                eta = f"{left:.0f} s" if math.isfinite(left) else "?"
                print(
                    f"sweep: {self.done}/{self.total} scenarios "
                    f"({100 * self.done / self.total:.0f}%), {rate:.1f}/s, ETA {eta}",
                    file=sys.stderr,
                    flush=True,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
