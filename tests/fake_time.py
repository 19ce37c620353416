"""Time a test controls, for code that takes an injected ``sleep``, ``clock`` (wall time) or
``monotonic``: the providers, their rate budget, downloads and the job engine. No bpy: both tiers
import it (tests/ is on sys.path in each)."""

from __future__ import annotations

import threading
import time


class Sleeps(list):
    """Injected sleep: records the waits and sleeps for real only up to ``cap`` seconds, so tests
    stay fast while other threads (and the emulator) still get a moment."""

    def __init__(self, cap: float = 0.02):
        super().__init__()
        self.cap = cap

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(min(seconds, self.cap))


class FakeClock:
    """Wall and monotonic time that move only when the code under test sleeps through
    :meth:`sleep` (by the seconds it asked for, after a real sleep of at most ``cap``) or when the
    test calls :meth:`advance`. While :meth:`hold` is in force, sleeping does not move it.

    The wall time starts at the real time, so what the code stamps stays comparable with a real
    server's times. Thread-safe: the job engine sleeps on its worker while the test advances.
    """

    def __init__(self, cap: float = 0.02):
        self.sleeps = Sleeps(cap)
        self._start = time.time()
        self._elapsed = 0.0
        self._held = False
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._start + self._elapsed

    def monotonic(self) -> float:
        return 1000.0 + self._elapsed

    def sleep(self, seconds: float) -> None:
        with self._lock:
            if not self._held:
                self._elapsed += max(0.0, seconds)
        self.sleeps(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._elapsed += seconds

    def hold(self) -> None:
        self._held = True

    def release(self) -> None:
        self._held = False
