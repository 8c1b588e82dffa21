"""Progress of a training run: the tqdm bar (re-estimated under a time budget) and the samples/s average."""

from __future__ import annotations

import sys
import time
from typing import Optional


class Progress:
    """The tqdm bar (None without one) and the samples/s average of the log lines.

    With a time budget (max_minutes from t_start) the bar's total is re-estimated every step as the steps
    that fit in the minutes left (at most `total`), so tqdm's ETA is the time left, not that of every epoch.
    """

    def __init__(self, total: int, initial: int, global_batch: int, desc: str, max_minutes: Optional[float],
                 t_start: float, bar: bool):
        self.total = total
        self.global_batch = global_batch
        self.max_minutes = max_minutes
        self.t_start = t_start
        self.sps: Optional[float] = None
        self._t_last = time.perf_counter()
        self.bar = None
        if bar:
            from tqdm import tqdm

            if max_minutes is not None:
                desc = f"{desc} (stops after {max_minutes:g} min)"
            self.bar = tqdm(total=total, initial=min(initial, total), unit="step", dynamic_ncols=True, desc=desc,
                            file=sys.stderr)

    def start_epoch(self) -> None:
        self._t_last = time.perf_counter()

    def tick(self) -> None:
        """One step done: update the samples/s average."""
        now = time.perf_counter()
        sps = self.global_batch / max(now - self._t_last, 1e-9)
        self._t_last = now
        self.sps = sps if self.sps is None else 0.9 * self.sps + 0.1 * sps

    def show(self, step: int, loss: float, epoch: int, skipped: int) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        post = dict(loss=f"{loss:.4f}", sps=f"{self.sps:.2f}", ep=epoch, skipped=skipped)
        if self.max_minutes is not None:
            left = max(0.0, self.max_minutes - (time.monotonic() - self.t_start) / 60.0)
            post["budget_left"] = f"{left:.1f}min"
            fits = step + int(left * 60.0 * self.sps / self.global_batch)
            self.bar.total = max(step, min(self.total, fits))
        self.bar.set_postfix(**post, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
