"""The provider seam: what the job engine needs from a 3D generation service.

A provider turns validated :class:`~.request_models.TaskRequest` objects into remote tasks and
reports on them. :class:`~.tripo_v3.TripoV3Provider` is the Tripo apiv3 implementation; tests
or other services plug in here.

Thread use: never from Blender's main thread for network calls (they block); a provider may
be shared by worker threads (``TripoV3Provider`` keeps one HTTP session per thread). No ``bpy``
here (see ``core/__init__``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Union
import os

from ..costs import CostEstimate, estimate_credits
from .download import DEFAULT_MAX_BYTES
from ..protocol.records import Task
from ..protocol.request_models import TaskRequest

__all__ = ["Provider", "PollResult", "Balance"]


@dataclass
class PollResult:
    """Answer of :meth:`Provider.poll_tasks`: tasks by id, and the ids the server did not know."""

    tasks: dict[str, Task] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Balance:
    """Credits of the account: ``balance`` available, ``frozen`` held by running tasks."""

    balance: float
    frozen: float = 0.0


class Provider(ABC):
    """A 3D generation service."""

    #: Short identifier, e.g. ``"tripo_v3"``.
    name: str = "provider"
    #: Whether :meth:`reconcile_create` can prove that a lost create made no task (a listing of
    #: every billed task). Without one the job engine asks the user at once.
    can_reconcile: bool = True

    def supports(self, task_type: str) -> Optional[str]:
        """None when ``task_type`` is offered, else the reason it is not (for the UI)."""
        return None

    @abstractmethod
    def create_task(self, request: TaskRequest) -> str:
        """Validate, upload local inputs, submit once; return the new task id.

        Raises :class:`~.errors.ValidationError` before sending anything,
        :class:`~.errors.RateLimited` / :class:`~.errors.ConcurrencyLimited` when the server
        kept refusing (nothing created; safe to queue and submit later),
        :class:`~.errors.CreateOutcomeUnknown` when the request may have reached the server
        but no answer came back (then call :meth:`reconcile_create`; never resubmit blindly),
        or another :class:`~.errors.TripoError` when the server refused it.
        """

    @abstractmethod
    def reconcile_create(self, request: TaskRequest, sent_at: float, *,
                         exclude: Iterable[str] = ()) -> Optional[str]:
        """After :class:`~.errors.CreateOutcomeUnknown`: the id of the task that request
        created, or None when the server lists no such task right now (the job engine takes
        that as proof only once its reconcile window has passed: a request may arrive late). Raises
        :class:`~.errors.CreateOutcomeUnknown` again when it cannot tell yet. ``request`` and
        ``sent_at`` are the exception's; ``exclude`` lists task ids already tracked (so two
        identical submissions are not both matched to one task)."""

    @abstractmethod
    def get_task(self, task_id: str) -> Task:
        """The task's current state (:class:`~.errors.TaskNotFound` if unknown)."""

    @abstractmethod
    def poll_tasks(self, task_ids: Iterable[str]) -> PollResult:
        """The state of many tasks at once; unknown ids are listed in ``missed``."""

    @abstractmethod
    def upload_file(self, path: Union[str, os.PathLike]) -> str:
        """Upload a local file; return its file token."""

    @abstractmethod
    def download(self, url: str, dest: Union[str, os.PathLike], *, task_id: Optional[str] = None,
                 output_key: str = "model_url", max_bytes: Optional[int] = DEFAULT_MAX_BYTES,
                 progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Path:
        """Download an output URL to ``dest``; with ``task_id`` an expired URL is refreshed by
        querying the task again for ``output_key``. ``progress(bytes, total)`` is called per
        chunk and may raise ``DownloadCancelled`` to stop."""

    @abstractmethod
    def balance(self) -> Balance:
        """Credits of the account."""

    def estimate(self, request: TaskRequest) -> CostEstimate:
        """Estimated credits of ``request``."""
        return estimate_credits(request)

    def close(self) -> None:
        """Release network resources. The provider is not used afterwards."""

    def __enter__(self) -> "Provider":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
