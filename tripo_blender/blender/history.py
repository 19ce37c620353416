"""The task history the History panel lists (main thread): scanned from the journals and the
sidecars (core/engine/history.py) on request, kept in memory, searched in memory.

Draw code never scans: the panel asks for a scan (`want()`), the UI timer does it on its next
tick (`refresh_if_wanted`), and a new import marks the list stale so the timer rescans it.
"""

from __future__ import annotations

import logging
import time

from ..core.engine import history as core_history
from . import importer, landing
from . import settings as blender_settings

log = logging.getLogger(__name__)

RESCAN_MIN_SECONDS = 2.0  # a batch of imports rescans once, not once per asset


class History:
    def __init__(self):
        self.entries: list[core_history.HistoryEntry] = []
        self.generation = 0          # bumped by every scan (keys the search cache)
        self.loaded = False
        self.stale = False
        self.wanted = False
        self.scanned_at = 0.0
        self._search_key = None
        self._search_result: list = []

    def sources(self, context=None) -> tuple[list[str], list[str]]:
        """(journal folders, sidecar folders): this machine's journal and download folder, and
        every batch run's output folder the batch runner remembered."""
        roots = core_history.read_roots(blender_settings.user_data_dir())
        journals = [blender_settings.user_data_dir("journal")] + [f"{r}/.journal" for r in roots]
        download_dir = blender_settings.connection_settings(context).download_dir
        return journals, [download_dir, *roots]

    def refresh(self, context=None) -> list[core_history.HistoryEntry]:
        journals, roots = self.sources(context)
        started = time.perf_counter()
        self.entries = core_history.scan(journals, roots)
        self.generation += 1
        self.loaded, self.stale, self.wanted = True, False, False
        self.scanned_at = time.monotonic()
        log.debug("task history: %d task(s) in %.1f ms", len(self.entries),
                  (time.perf_counter() - started) * 1000)
        return self.entries

    def want(self) -> None:
        """From draw code: a scan is wanted (done by the next timer tick, not during the draw)."""
        if not self.loaded:
            self.wanted = True

    def invalidate(self) -> None:
        self.stale = True

    def refresh_if_wanted(self, context=None) -> bool:
        """For the UI timer: scans when the panel asked for it, or when a new result made the
        list stale (at most every RESCAN_MIN_SECONDS). True when the list changed."""
        due = self.wanted or (self.loaded and self.stale and
                              time.monotonic() - self.scanned_at >= RESCAN_MIN_SECONDS)
        if not due:
            return False
        self.refresh(context)
        return True

    def search(self, query: str) -> list[core_history.HistoryEntry]:
        key = (query, self.generation)
        if key != self._search_key:
            self._search_key, self._search_result = key, core_history.search(self.entries, query)
        return self._search_result

    def get(self, task_id: str) -> core_history.HistoryEntry | None:
        return next((e for e in self.entries if e.task_id == task_id), None)


def can_reimport(entry: core_history.HistoryEntry) -> bool:
    return bool(entry.model) or landing.is_image_result(entry.job or {})


def reimport(context, entry: core_history.HistoryEntry) -> importer.ImportResult:
    """Imports a history entry's downloaded model (or splat, or depth map) again, at the 3D
    cursor."""
    if not entry.importable and not landing.is_image_result(entry.job or {}):
        raise RuntimeError(f"Task {entry.task_id} has no downloaded model to import "
                           f"({entry.task_type or 'unknown type'}).")
    return landing.land_again(context, entry.job)


def after_import(job: dict) -> None:
    """A result was imported: its sidecars keep the task in the history for good."""
    core_history.write_job_sidecars(job)
    get_history().invalidate()


_history: History | None = None


def get_history() -> History:
    global _history
    if _history is None:
        _history = History()
    return _history
