"""Progress on the terminal: which run, which epoch, time spent and time left."""

from __future__ import annotations

import sys
import time


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.total = self.done = 0
        self.started = self.run_t0 = time.perf_counter()

    def _say(self, text: str, final: bool = True) -> None:
        if not self.enabled:
            return
        if self.live:  # rewrite one status line in place on a terminal
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, total: int, skipped: int, what: str = "runs to do") -> None:
        self.total, self.done, self.started = total, 0, time.perf_counter()
        if what == "runs to do":
            self._say(f"{total} runs to do, {skipped} already recorded (skipped).")
        elif total:
            self._say(f"{total} {what}.")

    def run_started(self, label: str) -> None:
        self.run_t0 = time.perf_counter()
        self._say(f"[{self.done + 1}/{self.total}] {label} ...", final=False)

    def epoch_callback(self, label: str):
        def report(done: int, total: int) -> None:
            spent = time.perf_counter() - self.run_t0
            left = spent / done * (total - done)
            self._say(f"[{self.done + 1}/{self.total}] {label}: epoch {done}/{total}, "
                      f"{_fmt(spent)} spent, ~{_fmt(left)} left", final=False)

        return report

    def run_finished(self, label: str, status: str, wall_s: float | None, error: str | None) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done)
        took = f" in {wall_s:.1f}s" if wall_s is not None else ""
        why = f": {error}" if error else ""
        self._say(f"[{self.done}/{self.total}] {label}: {status}{took}{why}"
                  f"  (suite ~{_fmt(left)} left)")
