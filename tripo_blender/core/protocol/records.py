"""What Tripo answers with: a task's status, outputs and record, and a row of the usage list.
Parsing is lenient: odd or missing fields never raise.

Plain Python (pydantic v2 + stdlib), no ``bpy`` (see ``core/__init__``).
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Annotated, Any, Optional

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from .vocabulary import normalize_task_type

log = logging.getLogger(__name__)


class TaskStatus(str, Enum):
    """Status of a task. Unknown strings become ``UNKNOWN`` (treated as not finished)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> "TaskStatus":
        if isinstance(value, str):
            text = value.strip().lower()
            for member in cls:
                if member.value == text:
                    return member
            if text == "canceled":
                return cls.CANCELLED
            # v2 final states that v3 reports as failed (2008 / 2018).
            if text in ("banned", "expired"):
                return cls.FAILED
        return cls.UNKNOWN

    @property
    def is_finished(self) -> bool:
        return self in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED)


#: Keys of the four views in ``TaskOutput.multiview``.
MULTIVIEW_KEYS = ("front_view_url", "left_view_url", "back_view_url", "right_view_url")


def _to_str_or_none(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    return str(value)


def _to_float_or_none(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result else None


def _to_int_or_none(value: Any) -> Optional[int]:
    number = _to_float_or_none(value)
    return None if number is None else int(number)


class TaskOutput(BaseModel):
    """Outputs of a task. Unknown fields are kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    model_url: Optional[str] = None
    rendered_image_url: Optional[str] = None
    generated_image_url: Optional[str] = None
    uv_render_url: Optional[str] = None
    depth_image_url: Optional[str] = None
    riggable: Optional[bool] = None
    rig_type: Optional[str] = Field(None, validation_alias=AliasChoices("rig_type", "topology"))
    #: Views from ``generate_multiview_image``: ``{"front_view_url": ..., ...}``.
    multiview: Optional[dict[str, Optional[str]]] = Field(
        None, validation_alias=AliasChoices("multiview", "generate_multiview_image")
    )

    @field_validator(
        "model_url", "rendered_image_url", "generated_image_url", "uv_render_url",
        "depth_image_url", "rig_type", mode="before",
    )
    @classmethod
    def _str_fields(cls, value: Any) -> Optional[str]:
        return value if isinstance(value, str) and value else _to_str_or_none(
            value if not isinstance(value, (dict, list)) else None
        )

    @field_validator("riggable", mode="before")
    @classmethod
    def _riggable(cls, value: Any) -> Optional[bool]:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "yes", "1"):
                return True
            if text in ("false", "no", "0"):
                return False
            return None
        if isinstance(value, (int, float)):
            return bool(value)
        return None

    @field_validator("multiview", mode="before")
    @classmethod
    def _multiview(cls, value: Any) -> Optional[dict]:
        if isinstance(value, dict):
            return {str(k): (v if isinstance(v, str) and v else None) for k, v in value.items()}
        if isinstance(value, list):  # a list in [front, left, back, right] order
            return {k: (v if isinstance(v, str) and v else None)
                    for k, v in zip(MULTIVIEW_KEYS, value)}
        return None

    def urls(self) -> dict[str, str]:
        """Every URL output by key: the named fields, ``multiview.<view>`` and extra ``*_url``."""
        found: dict[str, str] = {}
        for key in ("model_url", "rendered_image_url", "generated_image_url", "uv_render_url",
                    "depth_image_url"):
            value = getattr(self, key)
            if value:
                found[key] = value
        for key, value in (self.multiview or {}).items():
            if value:
                found[f"multiview.{key}"] = value
        for key, value in (self.model_extra or {}).items():
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                found[key] = value
        return found

    def get_url(self, key: str) -> Optional[str]:
        """URL of one output key: ``model_url``, ``multiview.front_view_url`` (or
        ``multiview:front_view_url``, ``multiview:front``), an extra key."""
        if key.startswith(("multiview.", "multiview:")):
            view = key[len("multiview."):]
            views = self.multiview or {}
            return views.get(view) or views.get(f"{view}_view_url")
        if key in type(self).model_fields:
            value = getattr(self, key)
            return value if isinstance(value, str) else None
        value = (self.model_extra or {}).get(key)
        return value if isinstance(value, str) else None


# Lenient field types shared by the records: an odd value from the server becomes the empty
# value of its field, never a validation error.
def _to_task_id(value: Any) -> str:
    return "" if value is None else str(value)


def _to_task_type(value: Any) -> Optional[str]:
    return normalize_task_type(_to_str_or_none(value))


def _to_status(value: Any) -> TaskStatus:
    if isinstance(value, TaskStatus):
        return value
    return TaskStatus(value) if isinstance(value, str) else TaskStatus.UNKNOWN


def _to_progress(value: Any) -> int:
    number = _to_float_or_none(value)
    return 0 if number is None else max(0, min(100, int(round(number))))


_TaskId = Annotated[str, BeforeValidator(_to_task_id)]
_TaskType = Annotated[Optional[str], BeforeValidator(_to_task_type)]
_Status = Annotated[TaskStatus, BeforeValidator(_to_status)]
_OptStr = Annotated[Optional[str], BeforeValidator(_to_str_or_none)]
_OptFloat = Annotated[Optional[float], BeforeValidator(_to_float_or_none)]
_OptInt = Annotated[Optional[int], BeforeValidator(_to_int_or_none)]


class Task(BaseModel):
    """A task as the API reports it. Parsing is defensive: missing or None fields are fine."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    task_id: _TaskId = ""
    type: _TaskType = None
    status: _Status = TaskStatus.UNKNOWN
    progress: Annotated[int, BeforeValidator(_to_progress)] = 0
    input: Annotated[dict[str, Any], BeforeValidator(lambda v: dict(v) if isinstance(v, dict) else {})] = \
        Field(default_factory=dict)
    output: Annotated[TaskOutput, BeforeValidator(lambda v: v if isinstance(v, (dict, TaskOutput)) else {})] = \
        Field(default_factory=TaskOutput)
    credits_consumed: _OptFloat = None
    created_at: _OptStr = None
    completed_at: _OptStr = None
    error_code: _OptInt = None
    error_message: _OptStr = Field(None, validation_alias=AliasChoices("error_message", "error_msg"))
    running_left_time: _OptFloat = None
    queuing_num: _OptInt = None

    @classmethod
    def from_api(cls, data: Any, *, task_id: Optional[str] = None) -> "Task":
        """Parse a task object from the API. Never raises for odd field values; a payload
        that is not an object yields an ``UNKNOWN`` task with ``task_id`` (if given)."""
        if not isinstance(data, dict):
            data = {}
        if task_id and not data.get("task_id"):
            data = {**data, "task_id": task_id}
        try:
            return cls.model_validate(data)
        except PydanticValidationError:  # pragma: no cover - validators are lenient
            log.warning("Could not parse task %s; treating it as unknown", task_id)
            return cls(task_id=task_id or str(data.get("task_id") or ""))

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def is_success(self) -> bool:
        return self.status is TaskStatus.SUCCESS


class UsageItem(BaseModel):
    """One row of ``GET /v3/account/usage``."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    task_id: _TaskId = ""
    type: _TaskType = None
    status: _Status = TaskStatus.UNKNOWN
    created_at: _OptStr = None
    credits_consumed: _OptFloat = None
