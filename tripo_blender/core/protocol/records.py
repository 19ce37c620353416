"""What Tripo answers with: a task's status, outputs and record, and a row of the usage list.
Parsing is lenient: odd or missing fields never raise.

Plain Python (pydantic v2 + stdlib), no ``bpy`` (see ``core/__init__``).
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
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


class Task(BaseModel):
    """A task as the API reports it. Parsing is defensive: missing or None fields are fine."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    task_id: str = ""
    type: Optional[str] = None
    status: TaskStatus = TaskStatus.UNKNOWN
    progress: int = 0
    input: dict[str, Any] = Field(default_factory=dict)
    output: TaskOutput = Field(default_factory=TaskOutput)
    credits_consumed: Optional[float] = None
    created_at: Optional[str] = None
    completed_at: Optional[str] = None
    error_code: Optional[int] = None
    error_message: Optional[str] = Field(
        None, validation_alias=AliasChoices("error_message", "error_msg")
    )
    running_left_time: Optional[float] = None
    queuing_num: Optional[int] = None

    @field_validator("task_id", mode="before")
    @classmethod
    def _task_id(cls, value: Any) -> str:
        return "" if value is None else str(value)

    @field_validator("created_at", "completed_at", "error_message", mode="before")
    @classmethod
    def _opt_str(cls, value: Any) -> Optional[str]:
        return _to_str_or_none(value)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Optional[str]:
        return normalize_task_type(_to_str_or_none(value))

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> TaskStatus:
        if isinstance(value, TaskStatus):
            return value
        return TaskStatus(value) if isinstance(value, str) else TaskStatus.UNKNOWN

    @field_validator("progress", mode="before")
    @classmethod
    def _progress(cls, value: Any) -> int:
        number = _to_float_or_none(value)
        if number is None:
            return 0
        return max(0, min(100, int(round(number))))

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> dict:
        return dict(value) if isinstance(value, dict) else {}

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, value: Any) -> Any:
        return value if isinstance(value, (dict, TaskOutput)) else {}

    @field_validator("credits_consumed", "running_left_time", mode="before")
    @classmethod
    def _opt_float(cls, value: Any) -> Optional[float]:
        return _to_float_or_none(value)

    @field_validator("error_code", "queuing_num", mode="before")
    @classmethod
    def _opt_int(cls, value: Any) -> Optional[int]:
        return _to_int_or_none(value)

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

    task_id: str = ""
    type: Optional[str] = None
    status: TaskStatus = TaskStatus.UNKNOWN
    created_at: Optional[str] = None
    credits_consumed: Optional[float] = None

    @field_validator("task_id", mode="before")
    @classmethod
    def _task_id(cls, value: Any) -> str:
        return "" if value is None else str(value)

    @field_validator("created_at", mode="before")
    @classmethod
    def _opt_str(cls, value: Any) -> Optional[str]:
        return _to_str_or_none(value)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Optional[str]:
        return normalize_task_type(_to_str_or_none(value))

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> TaskStatus:
        return TaskStatus(value) if isinstance(value, str) else TaskStatus.UNKNOWN

    @field_validator("credits_consumed", mode="before")
    @classmethod
    def _credits(cls, value: Any) -> Optional[float]:
        return _to_float_or_none(value)
