"""The 3D AI Studio provider: its wire mapping and reasons without a network, then against the
emulator's 3D AI Studio flavour over real HTTP (generation, retexture, segment, convert, balance,
every error code, the rate limit, faults), then through Blender's operator.

Runs inside Blender against the installed extension; `emulator` is reset before each test (its
3D AI Studio side too, whose default rate limit of 3 a minute the `studio` fixture raises).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import bpy
import pytest
import requests

from conftest import PACKAGE, REPO, reset_runtime, write_png
from fake_time import FakeClock, Sleeps
from provider_helpers import (  # noqa: F401 - core and provider are fixtures
    build, check_create_not_sent_is_retried, core, made_providers, provider, run, wait_all)
from sample_files import write_glb

STUDIO_KEY = "studio-test-key-0123"


# --------------------------------------------------------------------------- fixtures / helpers


class Studio:
    """The emulator's 3D AI Studio side: control routes and its part of the request log."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.base_url = emulator.base_url
        self.api_key = STUDIO_KEY

    def configure(self, **config):
        self.emulator._control("POST", "aistudio/config", config)

    def tasks(self) -> dict:
        return self.emulator._control("GET", "aistudio/tasks")["tasks"]

    def requests(self) -> list[dict]:
        return [r for r in self.emulator.requests()
                if r["path"].startswith(("/v1/", "/account/", "/user/", "/aistudio/"))]

    def api_requests(self) -> list[dict]:
        return [r for r in self.requests() if r["kind"] == "api"]

    def creates(self) -> list[dict]:
        return [r for r in self.requests() if r["path"].startswith("/v1/3d-models/")]

    def downloads(self) -> list[dict]:
        return [r for r in self.requests() if r["kind"] == "download"]


@pytest.fixture
def studio(emulator):
    handle = Studio(emulator)
    handle.configure(rate_limit_per_minute=10000, task_seconds=0.5)
    return handle


@pytest.fixture
def make_provider(core, studio):
    """``rpm``/``window`` size the client's request budget, ``budget_clock`` is its clock."""
    def make(*, rpm: int = 10000, window: float = 60.0, budget_clock=time.monotonic, **options):
        options.setdefault("base_url", studio.base_url)
        options.setdefault("proxy", core.http.ProxyConfig("none"))
        options.setdefault("budget", core.studio.RequestBudget(rpm, window=window, clock=budget_clock))
        options.setdefault("requests_per_minute", rpm)
        return core.studio.AIStudioProvider(options.pop("api_key", studio.api_key), **options)

    yield from made_providers(make)


def no_key_to_files(studio):
    downloads = studio.downloads()
    assert all(r["auth"] is False for r in downloads), downloads
    return downloads


# =========================================================================== without a network


def test_supports_gives_a_reason_for_everything_it_does_not_offer(core):
    studio, types = core.studio, core.vocabulary
    offered = {types.TEXT_TO_MODEL, types.IMAGE_TO_MODEL, types.MULTIVIEW_TO_MODEL, types.TEXTURE_MODEL,
               types.MESH_SEGMENTATION, types.CONVERT_MODEL}
    for task_type in core.request_models.LIVE_TASK_TYPES:
        reason = studio.supports(task_type)
        if task_type in offered:
            assert reason is None, task_type
        else:
            assert reason and "3D AI Studio" in reason, task_type
            assert core.capabilities.feature_unavailable_reason("3daistudio", task_type) == reason
            assert core.capabilities.feature_unavailable_reason("tripo", task_type) is None
    assert "retired" in studio.supports("refine_model")
    assert "rigging" in studio.supports("animate_rig")
    assert "image generation" in studio.supports("text_to_image")


def test_unsupported_options_are_named_before_anything_is_sent(core, tmp_path):
    caps = core.capabilities
    key = core.studio.AIStudioProvider("k", base_url="http://127.0.0.1:9")  # never contacted
    parts = build(core, "texture_model", input="3f2a1b4c-0000-4000-8000-000000000001",
                  part_names=["wheel"])
    reason = key.unsupported_options(parts)
    assert reason.startswith("3D AI Studio does not document part_names for texturing")
    assert caps.feature_unavailable_reason("3daistudio", "texture_model",
                                           {"part_names": ["wheel"]}) == reason
    assert caps.feature_unavailable_reason("3daistudio", "texture_model", {}) is None
    assert caps.feature_unavailable_reason("tripo", "texture_model", {"part_names": ["a"]}) is None
    assert "P1" in caps.feature_unavailable_reason("3daistudio", "text_to_model",
                                                   {"model": "P1-20260311"})
    assert "v3.0 and v3.1" in caps.feature_unavailable_reason("3daistudio", "image_to_model",
                                                              {"model": "v2.5-20250123"})
    assert "model_seed" in caps.feature_unavailable_reason("3daistudio", "text_to_model",
                                                           {"model_seed": 7})
    assert "file tokens" in caps.feature_unavailable_reason("3daistudio", "image_to_model",
                                                            {"input": "file_abc123"})
    assert "another task" in caps.feature_unavailable_reason(
        "3daistudio", "image_to_model", {"input": "3f2a1b4c-0000-4000-8000-000000000001"})
    assert "no options" in caps.feature_unavailable_reason("3daistudio", "mesh_segmentation",
                                                           {"model": "v2.0-20260430"})
    assert "4096" in caps.feature_unavailable_reason("3daistudio", "convert_model",
                                                     {"format": "GLTF", "texture_size": 8192})
    assert caps.feature_unavailable_reason("3daistudio", "text_to_model",
                                           {"model": "v3.0-20250812", "prompt": "x"}) is None
    with pytest.raises(ValueError):
        caps.feature_unavailable_reason("meshy", "text_to_model")
    table = caps.support_table_markdown()
    assert table.splitlines()[0] == "| Feature | Tripo (apiv3) | 3D AI Studio |"
    assert "| Per-part texturing | yes | no: 3D AI Studio does not document part_names" in table
    labels = [label for label, _ in caps.support_table()]
    for wanted in ("Text to 3D", "Image to 3D", "Multiview to 3D", "Per-part texturing",
                   "Texturing (whole model)", "Segmentation", "Part completion", "Smart low poly",
                   "Rig check", "Rig", "Animations", "Credit balance", "Import a model file",
                   "Usage-based reconciliation of lost creates", "Batch status polling"):
        assert wanted in labels


def test_generation_wire_mapping(core, tmp_path):
    studio = core.studio
    provider = studio.AIStudioProvider("k", base_url="http://127.0.0.1:9")
    wire = provider.wire(build(core, "text_to_model", prompt="a lamp", face_limit=800,
                               texture_quality="detailed", negative_prompt="blur"))
    assert wire.route == "/v1/3d-models/tripo/text-to-3d/3.1/"  # the default model is v3.1
    assert wire.json == {"prompt": "a lamp", "face_limit": 800, "texture_quality": "detailed",
                         "negative_prompt": "blur"}
    wire = provider.wire(build(core, "text_to_model", prompt="a lamp", model="v3.0-20250812"))
    assert wire.route == "/v1/3d-models/tripo/text-to-3d/"  # 3.0 is the unsuffixed default
    png = write_png(tmp_path / "ref.png")
    wire = provider.wire(build(core, "image_to_model", input=str(png),
                               texture_alignment="geometry"))
    assert wire.route == "/v1/3d-models/tripo/image-to-3d/3.1/"
    assert set(wire.json) == {"image", "texture_alignment"}
    prefix = "data:image/png;base64,"
    assert wire.json["image"].startswith(prefix)
    assert base64.b64decode(wire.json["image"][len(prefix):]) == png.read_bytes()
    assert "<" in wire.described()["image"]  # logs and errors carry no image data
    wire = provider.wire(build(core, "image_to_model", input="https://example.com/a.png"))
    assert wire.json == {"image_url": "https://example.com/a.png"}
    back = write_png(tmp_path / "back.png", 32, 32)
    wire = provider.wire(build(
        core, "multiview_to_model", inputs=[str(png), None, str(back), "https://example.com/r.png"]))
    assert wire.route == "/v1/3d-models/tripo/multiview-to-3d/3.1/"
    images = wire.json["images"]
    assert [set(i) for i in images] == [{"image"}, {"image"}, {"image_url"}]
    assert base64.b64decode(images[1]["image"].split(",", 1)[1]) == back.read_bytes()
    with pytest.raises(core.errors.FeatureUnavailable, match="P1"):
        provider.create_task(build(core, "text_to_model", prompt="x", model="P1-20260311"))


def test_inline_images_are_capped(core, tmp_path, monkeypatch):
    provider = core.studio.AIStudioProvider("k", base_url="http://127.0.0.1:9")
    png = write_png(tmp_path / "big.png", 512, 512)
    monkeypatch.setattr(core.studio, "MAX_INLINE_IMAGE_BYTES", png.stat().st_size - 1)
    with pytest.raises(core.errors.ValidationError, match="URL"):
        provider.wire(build(core, "image_to_model", input=str(png)))


def test_utility_wire_mapping(core, tmp_path):
    provider = core.studio.AIStudioProvider("k", base_url="http://127.0.0.1:9")
    source = "3f2a1b4c-0000-4000-8000-000000000001"
    resolved = []

    def resolve(task_id):
        resolved.append(task_id)
        return "https://cdn.example/model.glb?sig=1"

    wire = provider.wire(build(core, "texture_model", input=source, pbr=False,
                               texture_quality="detailed",
                               texture_prompt={"text": "rusty iron"}), resolve)
    assert wire.route == "/v1/3d-models/tripo/texture-model/"
    assert dict(wire.form) == {"model_url": "https://cdn.example/model.glb?sig=1", "pbr": "false",
                               "texture_quality": "detailed", "prompt": "rusty iron"}
    assert resolved == [source] and wire.files == []
    style = write_png(tmp_path / "style.png")
    wire = provider.wire(build(core, "texture_model", input="https://x.example/m.glb",
                               texture_prompt={"image": "https://x.example/i.png",
                                               "style_image": str(style)}), resolve)
    assert dict(wire.form) == {"model_url": "https://x.example/m.glb",
                               "image_url": "https://x.example/i.png"}
    assert wire.files == [("style_image", style)]
    glb = write_glb(tmp_path / "mine.glb")
    wire = provider.wire(build(core, "mesh_segmentation", input=str(glb)), resolve)
    assert wire.route == "/v1/3d-models/tripo/mesh-segmentation/"
    assert wire.form == [] and wire.files == [("model", glb)]
    wire = provider.wire(build(core, "convert_model", input=source, format="fbx", quad=True,
                               scale_factor=2.5, fbx_preset="mixamo"), resolve)
    assert wire.route == "/v1/3d-models/tripo/convert-model/"
    assert dict(wire.form) == {"model_url": "https://cdn.example/model.glb?sig=1",
                               "format": "FBX", "quad": "true", "scale_factor": "2.5",
                               "fbx_preset": "mixamo"}


def test_status_answers_are_normalised(core):
    S = core.studio
    queued = S.task_from_status("a", {"status": "PENDING", "progress": 0, "results": []})
    assert queued.status is core.records.TaskStatus.QUEUED and not queued.is_finished
    running = S.task_from_status("a", {"status": "IN_PROGRESS", "progress": "42.6"})
    assert running.status is core.records.TaskStatus.RUNNING and running.progress == 43
    done = S.task_from_status("a", {"status": "FINISHED", "progress": 100, "failure_reason": None,
                                    "results": [
                                        {"asset_url": "https://s.example/p.png",
                                         "asset_type": "IMAGE", "metadata": None},
                                        {"asset": "https://s.example/m.glb?x=1",
                                         "asset_type": "3D_MODEL", "metadata": {"a": 1}},
                                        {"asset": "https://s.example/extra.zip", "asset_type": ""},
                                        {"asset_type": "3D_MODEL"}, "junk"]},
                              task_type="text_to_model", credits=40.0)
    assert done.is_success and done.progress == 100 and done.type == "text_to_model"
    assert done.output.model_url == "https://s.example/m.glb?x=1"
    assert done.output.rendered_image_url == "https://s.example/p.png"
    assert done.output.urls()["asset_3_url"] == "https://s.example/extra.zip"
    assert done.credits_consumed == 40.0
    failed = S.task_from_status("a", {"status": "FAILED", "failure_reason": "bad image"},
                                credits=40.0)
    assert failed.status is core.records.TaskStatus.FAILED and failed.error_message == "bad image"
    assert failed.credits_consumed == 0.0  # refunded
    assert "refunded" in S.task_from_status("a", {"status": "FAILED"}).error_message
    odd = S.task_from_status("a", {"status": "WHO KNOWS", "progress": None, "results": "x"})
    assert odd.status is core.records.TaskStatus.UNKNOWN and odd.progress == 0
    assert S.task_from_status("a", None).status is core.records.TaskStatus.UNKNOWN


@pytest.mark.parametrize("status, body, headers, cls, code", [
    (400, {"error": {"code": "VALIDATION_FAILED", "message": "prompt is required",
                     "details": {"prompt": ["This field is required."]}}}, {},
     "BadRequest", "VALIDATION_FAILED"),
    (401, {"code": "INVALID_API_KEY", "message": "Invalid API key."}, {},
     "AuthenticationError", "INVALID_API_KEY"),
    (402, {"error": "INSUFFICIENT_CREDITS", "message": "Not enough credits"}, {},
     "InsufficientCredits", "INSUFFICIENT_CREDITS"),
    (429, {"error": {"code": "rate_limited", "message": "slow down"}}, {"Retry-After": "17"},
     "RateLimited", "RATE_LIMITED"),
    (429, {"detail": "Request was throttled.", "retry_after": 9}, {}, "RateLimited", None),
    (400, {"code": "validation_failed"}, {}, "BadRequest", "VALIDATION_FAILED"),
    (403, {"detail": "nope"}, {}, "PermissionDenied", None),
    (503, None, {}, "ServerError", None),
    (418, "teapot", {}, "BadRequest", None),
])
def test_error_answers_map_to_our_errors(core, status, body, headers, cls, code):
    error = core.studio.error_from_answer(status, body, headers)
    assert type(error).__name__ == cls
    assert error.code == code and error.http_status == status
    assert "3D AI Studio" in error.user_message()
    if cls == "RateLimited":
        assert error.retry_after == (17.0 if code else 9.0)
    if status == 400 and isinstance(body, dict) and "error" in body:
        assert "prompt" in error.message and "required" in error.message


def test_request_budget_is_a_sliding_window_with_pauses(core):
    now = [1000.0]
    budget = core.studio.RequestBudget(3, window=60.0, clock=lambda: now[0])
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert budget.wait_time() == pytest.approx(60.0)
    now[0] += 30
    assert not budget.try_acquire() and budget.wait_time() == pytest.approx(30.0)
    now[0] += 30.5
    assert budget.available() == 3 and budget.try_acquire()
    budget.pause(10)
    assert budget.available() == 0 and budget.wait_time() == pytest.approx(10.0)
    assert not budget.try_acquire()
    now[0] += 10
    assert budget.try_acquire()
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    assert budget.try_acquire() and not budget.try_acquire()
    assert not budget.acquire(5, sleep) and slept == []  # would need ~60 s: gives up at once
    assert budget.acquire(120, sleep) and slept and sum(slept) < 61
    shared = core.studio.shared_budget("https://api.example", "key-a", 3)
    assert core.studio.shared_budget("https://api.example", "key-a", 5) is shared
    assert shared.per_minute == 5
    assert core.studio.shared_budget("https://api.example", "key-b", 3) is not shared


def test_estimates_follow_the_published_table(core):
    S = core.studio
    cases = [
        ("text_to_model", {"prompt": "x"}, 40),
        ("image_to_model", {"input": "https://e.x/i.png"}, 60),
        ("text_to_model", {"prompt": "x", "texture_quality": "detailed",
                           "geometry_quality": "detailed"}, 100),
        ("image_to_model", {"input": "https://e.x/i.png", "texture_quality": "detailed",
                            "geometry_quality": "detailed"}, 120),
        ("text_to_model", {"prompt": "x", "quad": True}, 50),
        ("text_to_model", {"prompt": "x", "smart_low_poly": True}, 60),
        ("text_to_model", {"prompt": "x", "texture": False}, 20),
        ("text_to_model", {"prompt": "x", "texture": False, "pbr": True}, 20),
        ("image_to_model", {"input": "https://e.x/i.png", "texture": False}, 40),
        ("text_to_model", {"prompt": "x", "model": "P1-20260311"}, 80),
        ("image_to_model", {"input": "https://e.x/i.png", "model": "P1-20260311"}, 100),
        ("text_to_model", {"prompt": "x", "texture": False, "pbr": False,
                           "generate_parts": True}, 60),
        ("texture_model", {"input": "https://e.x/m.glb"}, 20),
        ("texture_model", {"input": "https://e.x/m.glb", "texture_quality": "detailed",
                           "texture_prompt": {"style_image": "https://e.x/s.png"}}, 50),
        ("convert_model", {"input": "https://e.x/m.glb", "format": "FBX"}, 10),
        ("convert_model", {"input": "https://e.x/m.glb", "format": "FBX",
                           "pivot_to_center_bottom": True}, 20),
        ("convert_model", {"input": "https://e.x/m.glb", "format": "OBJ", "quad": True}, 30),
        ("mesh_segmentation", {"input": "https://e.x/m.glb"}, 80),
    ]
    for task_type, params, credits in cases:
        estimate = S.estimate_credits(build(core, task_type, **params))
        assert estimate.credits == credits, (task_type, params, estimate.breakdown)
        assert estimate.is_estimate and not estimate.is_guess
        assert estimate.describe() == f"≈ {credits} credits (estimate)"
        assert "3D AI Studio" in estimate.source
    with pytest.raises(core.errors.FeatureUnavailable):
        S.estimate_credits(build(core, "animate_rig", input="https://e.x/m.glb"))


def test_any_non_empty_key_and_nothing_leaks(core):
    S = core.studio
    for key in ("", "   ", None):
        with pytest.raises(core.errors.ValidationError):
            S.AIStudioProvider(key, base_url="http://127.0.0.1:9")
    with pytest.raises(core.errors.ValidationError, match="https"):
        S.AIStudioProvider("k", base_url="http://api.3daistudio.com")
    provider = S.AIStudioProvider("sk_live_no_tsk_prefix_needed", base_url="http://127.0.0.1:9")
    assert "sk_live" not in repr(provider)
    assert provider.name == "3daistudio"
    settings = core.settings.ConnectionSettings(provider="3daistudio", api_key="abc",
                                                base_url="http://127.0.0.1:9")
    made = core.settings.make_provider(settings)
    assert isinstance(made, S.AIStudioProvider)
    with pytest.raises(core.errors.FeatureUnavailable):
        provider.upload_file(__file__)


def test_rate_from_the_environment(core, monkeypatch):
    S = core.studio
    monkeypatch.delenv(S.RATE_ENV, raising=False)
    assert S.requests_per_minute_from() == 3
    monkeypatch.setenv(S.RATE_ENV, "120")
    assert S.AIStudioProvider("env-key", base_url="http://127.0.0.1:9").requests_per_minute == 120
    monkeypatch.setenv(S.RATE_ENV, "lots")
    assert S.requests_per_minute_from() == 3


# =========================================================================== against the emulator


def test_text_to_model_end_to_end(core, provider, studio, tmp_path):
    request = build(core, "text_to_model", prompt="a wooden treasure chest", face_limit=3000)
    task_id = provider.create_task(request)
    task = wait_all(provider, [task_id])[task_id]
    assert task.is_success and task.type == "text_to_model"
    assert "queued" in task.seen or "running" in task.seen  # progress was reported on the way
    assert task.created_at and task.created_at.endswith("Z") and task.completed_at
    assert task.credits_consumed == provider.estimate(request).credits == 40
    create = studio.creates()[0]
    assert create["path"] == "/v1/3d-models/tripo/text-to-3d/3.1/"
    assert create["json"] == {"prompt": "a wooden treasure chest", "face_limit": 3000}
    assert create["auth"] is True
    record = studio.tasks()[task_id]
    assert record["status"] == "FINISHED" and record["cost"] == 40
    dest = provider.download(task.output.model_url, tmp_path / "chest.glb", task_id=task_id)
    assert dest.read_bytes() == Path(record["files"]["model"]).read_bytes()
    assert dest.read_bytes()[:4] == b"glTF"
    preview = provider.download(task.output.rendered_image_url, tmp_path / "preview.img")
    assert preview.read_bytes() == Path(record["files"]["rendered_image"]).read_bytes()
    assert len(no_key_to_files(studio)) == 2
    assert provider.balance().balance == 1000.0 - 40
    statuses = [r for r in studio.api_requests() if "/generation-request/" in r["path"]]
    assert statuses and all(r["path"] == f"/v1/generation-request/{task_id}/status/"
                            for r in statuses)


def test_image_to_model_sends_a_local_png_inline(core, provider, studio, tmp_path):
    png = write_png(tmp_path / "robot.png", 96, 96)
    task = run(provider, build(core, "image_to_model", input=str(png), model="v3.0-20250812",
                               enable_image_autofix=True))
    assert task.is_success
    create = studio.creates()[0]
    assert create["path"] == "/v1/3d-models/tripo/image-to-3d/"
    image = create["json"]["image"]
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == png.read_bytes()
    assert create["json"]["enable_image_autofix"] is True and "image_url" not in create["json"]
    assert not [r for r in studio.emulator.requests() if "/files" in r["path"]]  # no uploads
    assert studio.tasks()[task.task_id]["cost"] == 60


def test_multiview_to_model(core, provider, studio, tmp_path):
    front = write_png(tmp_path / "front.png")
    back = write_png(tmp_path / "back.png", 48, 48)
    task = run(provider, build(core, "multiview_to_model",
                               inputs=[str(front), None, str(back), None]))
    assert task.is_success and task.output.model_url
    images = studio.creates()[0]["json"]["images"]
    assert len(images) == 2 and all(set(i) == {"image"} for i in images)
    assert studio.creates()[0]["path"] == "/v1/3d-models/tripo/multiview-to-3d/3.1/"


def test_retexture_segment_and_convert_chain_from_a_generation(core, provider, studio, tmp_path):
    base = run(provider, build(core, "text_to_model", prompt="a toy robot"))
    retextured = run(provider, build(core, "texture_model", input=base.task_id,
                                     texture_prompt={"text": "polished brass"}))
    assert retextured.is_success and retextured.output.model_url
    records = studio.tasks()
    texture = records[retextured.task_id]
    assert texture["input"]["model_url"] == base.output.model_url  # resolved from the task id
    assert texture["input"]["prompt"] == "polished brass"
    assert texture["input"]["_content"] == "multipart"
    assert texture["source"] == base.task_id and texture["cost"] == 20
    # The source's URL came from the last poll: no status request for it after the create.
    texture_seq = next(r["seq"] for r in studio.creates() if "texture-model" in r["path"])
    assert not [r for r in studio.api_requests()
                if r["seq"] > texture_seq and base.task_id in r["path"]]
    model = provider.download(retextured.output.model_url, tmp_path / "brass.glb")
    assert model.read_bytes()[:4] == b"glTF"

    glb = write_glb(tmp_path / "upload.glb")
    glb.write_bytes(model.read_bytes())
    segmented = run(provider, build(core, "mesh_segmentation", input=str(glb)))
    assert segmented.is_success
    segment = studio.tasks()[segmented.task_id]
    assert segment["input"]["model"] == {"file": "upload.glb", "size": glb.stat().st_size}
    assert segment["cost"] == 80

    converted = run(provider, build(core, "convert_model", input=retextured.task_id,
                                    format="FBX", pivot_to_center_bottom=True))
    assert converted.is_success
    assert urlsplit(converted.output.model_url).path.endswith(".fbx")
    convert = studio.tasks()[converted.task_id]
    assert convert["input"]["format"] == "FBX" and convert["input"]["pivot_to_center_bottom"] == "true"
    assert convert["cost"] == 20  # advanced (pivot) conversion
    fbx = provider.download(converted.output.model_url, tmp_path / "robot.fbx",
                            task_id=converted.task_id)
    assert fbx.read_bytes() == Path(convert["files"]["model"]).read_bytes()
    assert provider.balance().balance == 1000.0 - (40 + 20 + 80 + 20)
    no_key_to_files(studio)


def test_retexture_of_selected_parts_is_refused_without_a_request(core, provider, studio):
    request = build(core, "texture_model", input="3f2a1b4c-0000-4000-8000-000000000001",
                    part_names=["wheel", "cabin"])
    with pytest.raises(core.errors.FeatureUnavailable) as info:
        provider.create_task(request)
    assert "does not document part_names for texturing" in info.value.reason
    assert info.value.user_message().startswith("3D AI Studio does not document part_names")
    assert studio.requests() == []


def test_texture_source_must_have_finished(core, provider, studio):
    studio.configure(task_seconds=30)
    base = provider.create_task(build(core, "text_to_model", prompt="a slow vase"))
    with pytest.raises(core.errors.ValidationError, match="not finished"):
        provider.create_task(build(core, "texture_model", input=base))
    assert len(studio.creates()) == 1


def test_balance_is_read_from_a_string_and_the_other_wallet_path(core, provider, studio,
                                                                  monkeypatch):
    studio.configure(balance=150)
    balance = provider.balance()
    assert balance.balance == 150.0 and balance.frozen == 0.0
    answer = requests.get(studio.base_url + "/account/user/wallet/",
                          headers={"Authorization": f"Bearer {STUDIO_KEY}"})
    assert answer.json() == {"balance": "150.00"}
    monkeypatch.setattr(core.studio, "WALLET_PATHS", ("/account/nowhere/", "/user/wallet/"))
    other = core.studio.AIStudioProvider(STUDIO_KEY, base_url=studio.base_url,
                                         proxy=core.http.ProxyConfig("none"),
                                         budget=core.studio.RequestBudget(1000))
    other._wallet_path = "/account/nowhere/"
    assert other.balance().balance == 150.0
    assert other._wallet_path == "/user/wallet/"
    assert other.balance().balance == 150.0  # remembered: one request this time
    paths = [r["path"] for r in studio.emulator.requests() if "wallet" in r["path"]
             or "nowhere" in r["path"]]
    assert paths[-3:] == ["/account/nowhere/", "/user/wallet/", "/user/wallet/"]
    other.close()


def test_400_validation_failed(core, provider, studio, tmp_path):
    base = run(provider, build(core, "text_to_model", prompt="a stool"))
    # A model URL where an image is expected passes our checks but not the server's.
    with pytest.raises(core.errors.BadRequest) as info:
        provider.create_task(build(core, "image_to_model", input=base.output.model_url))
    assert info.value.code == "VALIDATION_FAILED" and info.value.http_status == 400
    assert "3D AI Studio refused the request as invalid" in info.value.user_message()
    resp = provider._send("POST", "/v1/3d-models/tripo/text-to-3d/", what="raw",
                          json={"prompt": "x", "model_seed": 3})
    error = core.studio.error_from_answer(resp.status_code, resp.json(), resp.headers)
    assert error.code == "VALIDATION_FAILED" and "model_seed" in error.message
    assert len(studio.tasks()) == 1  # refused creates made nothing


def test_401_invalid_api_key(core, make_provider, studio):
    studio.configure(api_key=STUDIO_KEY)
    wrong = make_provider(api_key="not-the-key")
    with pytest.raises(core.errors.AuthenticationError) as info:
        wrong.balance()
    assert info.value.code == "INVALID_API_KEY"
    assert "3D AI Studio" in info.value.user_message()
    assert "not-the-key" not in info.value.user_message()
    with pytest.raises(core.errors.AuthenticationError):
        wrong.create_task(build(core, "text_to_model", prompt="a cup"))
    assert studio.tasks() == {}
    assert make_provider().balance().balance == 1000.0


def test_402_insufficient_credits(core, provider, studio):
    studio.configure(balance=30)
    with pytest.raises(core.errors.InsufficientCredits) as info:
        provider.create_task(build(core, "text_to_model", prompt="a cup"))  # 40 credits
    assert info.value.code == "INSUFFICIENT_CREDITS" and info.value.http_status == 402
    assert "Wallet" in info.value.user_message()
    assert studio.tasks() == {} and provider.balance().balance == 30.0
    # Geometry only costs 20: that one fits.
    assert run(provider, build(core, "text_to_model", prompt="a cup", texture=False)).is_success
    assert provider.balance().balance == 10.0


def test_429_rate_limited_pauses_every_request_until_retry_after(core, make_provider, studio):
    studio.configure(rate_limit_per_minute=2)
    provider = make_provider()
    provider.balance()
    provider.balance()
    with pytest.raises(core.errors.RateLimited) as info:
        provider.balance()
    assert info.value.code == "RATE_LIMITED" and info.value.http_status == 429
    assert 50 <= info.value.retry_after <= 60
    sent = len(studio.api_requests())
    assert sent == 3
    # The budget is paused: nothing more leaves the machine until Retry-After has passed.
    with pytest.raises(core.errors.RateLimited) as info:
        provider.create_task(build(core, "text_to_model", prompt="a cup"))
    assert info.value.http_status is None and info.value.retry_after > 50
    assert provider.poll_tasks(["3f2a1b4c-0000-4000-8000-000000000001"]).tasks == {}
    assert len(studio.api_requests()) == sent
    assert studio.tasks() == {}


def test_retry_after_is_honoured_and_the_budget_recovers(core, make_provider, studio):
    sleeps = Sleeps(cap=5.0)
    studio.configure(rate_limit_per_minute=2, rate_window_seconds=2)
    provider = make_provider(sleep=sleeps)
    provider.balance()
    task_id = provider.create_task(build(core, "text_to_model", prompt="a pot", texture=False))
    task = provider.get_task(task_id)  # 429 Retry-After 2, waited for, then answered
    assert task.task_id == task_id
    assert [r["status"] for r in studio.api_requests()] == [200, 200, 429, 200]
    assert any(1.0 <= s <= 2.5 for s in sleeps), sleeps
    # An injected 429 on a status request is retried after its Retry-After too.
    studio.emulator.set_faults("429:get")
    sleeps.clear()
    time.sleep(2.1)
    assert provider.get_task(task_id).task_id == task_id
    assert sleeps and sleeps[0] == pytest.approx(1.0, abs=0.5)


def test_client_budget_keeps_requests_under_the_limit(core, make_provider, studio):
    studio.configure(rate_limit_per_minute=3)
    provider = make_provider(rpm=3)
    provider.balance()
    task_id = provider.create_task(build(core, "text_to_model", prompt="a bowl"))
    provider.poll_tasks([task_id])  # paced: created just now, so not asked yet
    assert len(studio.api_requests()) == 2
    provider.get_task(task_id)
    with pytest.raises(core.errors.RateLimited) as info:
        provider.balance()
    assert info.value.http_status is None  # our budget, not the server, said no
    assert 55 <= info.value.retry_after <= 60
    with pytest.raises(core.errors.RateLimited):
        provider.create_task(build(core, "text_to_model", prompt="a bowl"))
    assert provider.poll_tasks([task_id]).tasks == {}
    assert [r["status"] for r in studio.api_requests()] == [200, 200, 200]  # never a 429
    assert len(studio.tasks()) == 1


def test_polling_spends_the_budget_on_the_least_recently_polled(core, make_provider, studio):
    creator = make_provider()
    ids = [creator.create_task(build(core, "text_to_model", prompt=f"crate {i}")) for i in range(3)]
    clock = FakeClock()
    poller = make_provider(rpm=1, window=0.4, budget_clock=clock.monotonic)  # a status request per 0.4 s
    seen = []
    for _ in range(10):
        result = poller.poll_tasks(ids)
        assert len(result.tasks) <= 1
        seen += list(result.tasks)
        if len(set(seen)) == 3:
            break
        clock.advance(0.4)
    assert sorted(seen[:3]) == sorted(ids)  # each task once before any twice


def test_unknown_task_is_missed(core, make_provider, studio):
    clock = FakeClock()
    provider = make_provider(monotonic=clock.monotonic)
    unknown = "3f2a1b4c-0000-4000-8000-00000000dead"
    with pytest.raises(core.errors.TaskNotFound):
        provider.get_task(unknown)
    task_id = provider.create_task(build(core, "text_to_model", prompt="a jar"))
    clock.advance(1.0)  # past the pacing: a task created just now is not asked yet
    result = provider.poll_tasks([unknown, task_id])
    assert result.missed == [unknown] and task_id in result.tasks


def test_failed_generations_are_refunded(core, provider, studio):
    task = run(provider, build(core, "text_to_model", prompt="please failme"))
    assert task.status is core.records.TaskStatus.FAILED
    assert "failure" in task.error_message and task.credits_consumed == 0.0
    blocked = run(provider, build(core, "text_to_model", prompt="something forbidden"))
    assert "content filter" in blocked.error_message
    assert provider.balance().balance == 1000.0
    assert all(r["settled"] for r in studio.tasks().values())


def test_results_expire_after_their_lifetime(core, provider, studio, tmp_path):
    studio.configure(result_ttl_seconds=1)
    task = run(provider, build(core, "text_to_model", prompt="a fading lamp"))
    time.sleep(1.6)
    with pytest.raises(core.errors.DownloadError) as info:
        provider.download(task.output.model_url, tmp_path / "lamp.glb", task_id=task.task_id)
    assert "24 h" in info.value.user_message() and info.value.http_status == 403
    assert not (tmp_path / "lamp.glb").exists()
    assert [r["status"] for r in studio.downloads()] == [403, 403]  # refreshed once, in vain
    with pytest.raises(core.errors.BadRequest, match="could not be fetched"):
        provider.create_task(build(core, "convert_model", input=task.task_id, format="OBJ"))


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", ["500:get", "503:get", "reset_before:get", "malformed:get",
                                   "429:get", "slow:get"])
def test_status_reads_are_retried_through_faults(core, make_provider, studio, fault):
    provider = make_provider(sleep=Sleeps(cap=2.0))  # a 429 pauses the budget for real
    task = run(provider, build(core, "text_to_model", prompt="a mug"))
    studio.emulator.set_faults(fault)
    assert provider.get_task(task.task_id).is_success
    faulted = [r for r in studio.api_requests() if r["fault"]]
    assert [r["fault"] for r in faulted] == [fault]


def test_a_faulty_status_request_does_not_stop_the_polling_round(core, make_provider, studio):
    clock = FakeClock()
    provider = make_provider(monotonic=clock.monotonic)
    ids = [provider.create_task(build(core, "text_to_model", prompt=f"box {i}")) for i in range(2)]
    clock.advance(1.0)  # past the pacing of tasks created just now
    studio.emulator.set_faults("500:get")
    result = provider.poll_tasks(ids)
    assert len(result.tasks) == 1 and not result.missed  # the other one: next round
    clock.advance(1.0)
    studio.emulator.set_faults("500:get:2")
    with pytest.raises(core.errors.ServerError):
        provider.poll_tasks(ids)


@pytest.mark.parametrize("fault", ["reset_after:create", "reset_before:create", "500:create",
                                   "503:create", "malformed:create"])
def test_unknown_create_outcome_is_never_resent(core, provider, studio, fault):
    studio.emulator.set_faults(fault)
    with pytest.raises(core.errors.CreateOutcomeUnknown) as info:
        provider.create_task(build(core, "text_to_model", prompt="a kettle"))
    assert info.value.request is not None and info.value.sent_at
    sent = len(studio.api_requests())
    with pytest.raises(core.errors.CreateOutcomeUnknown, match="no task list"):
        provider.reconcile_create(info.value.request, info.value.sent_at)
    assert len(studio.api_requests()) == sent == 1  # reconciling sends nothing
    assert len(studio.creates()) == 1
    assert len(studio.tasks()) == (1 if fault == "reset_after:create" else 0)


def test_refused_create_is_handed_back_to_be_queued(core, make_provider, studio):
    clock = FakeClock()
    provider = make_provider(budget_clock=clock.monotonic)
    studio.emulator.set_faults("429:create")
    with pytest.raises(core.errors.RateLimited) as info:
        provider.create_task(build(core, "text_to_model", prompt="a kettle"))
    assert info.value.retry_after == 1.0 and studio.tasks() == {}
    assert len(studio.creates()) == 1  # not resubmitted by the provider: the engine queues it
    with pytest.raises(core.errors.RateLimited):  # the budget honours the Retry-After
        provider.create_task(build(core, "text_to_model", prompt="a kettle"))
    clock.advance(1.05)
    task_id = provider.create_task(build(core, "text_to_model", prompt="a kettle"))
    assert list(studio.tasks()) == [task_id] and len(studio.creates()) == 2


def test_create_not_sent_is_retried(core, make_provider):
    check_create_not_sent_is_retried(core, make_provider)


@pytest.mark.parametrize("fault", ["truncate:download", "503:download", "reset_before:download",
                                   "expire:download"])
def test_downloads_survive_faults(core, provider, studio, tmp_path, fault):
    task = run(provider, build(core, "text_to_model", prompt="a crate"))
    studio.emulator.set_faults(fault)
    dest = provider.download(task.output.model_url, tmp_path / "crate.glb", task_id=task.task_id)
    assert dest.read_bytes() == Path(studio.tasks()[task.task_id]["files"]["model"]).read_bytes()
    assert [r["fault"] for r in studio.downloads()] == [fault, None]
    no_key_to_files(studio)


def test_key_never_logged(core, provider, studio, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    task = run(provider, build(core, "text_to_model", prompt="a key ring"))
    provider.download(task.output.model_url, tmp_path / "ring.glb")
    studio.emulator.set_faults("reset_after:create")
    with pytest.raises(core.errors.CreateOutcomeUnknown):
        provider.create_task(build(core, "image_to_model",
                                   input=str(write_png(tmp_path / "k.png"))))
    assert STUDIO_KEY not in caplog.text
    assert "base64," not in caplog.text.replace("base64,<", "")  # no image data in logs


def test_job_engine_at_the_default_three_requests_a_minute(core, tmod, studio, tmp_path):
    """The real default on both sides: 3 requests a minute. One generation goes through the job
    engine without a single 429: create, one paced status request ~20 s later, download."""
    jobs, journal = tmod("core.engine.jobs"), tmod("core.engine.journal")
    studio.configure(rate_limit_per_minute=3)
    budget = core.studio.RequestBudget(3)  # shared by the engine's threads, like the real one

    def factory():
        return core.studio.AIStudioProvider(STUDIO_KEY, base_url=studio.base_url,
                                            proxy=core.http.ProxyConfig("none"), budget=budget,
                                            requests_per_minute=3)

    engine = jobs.JobEngine(factory, journal.Journal(str(tmp_path / "journal")), tmp_path / "dl",
                            provider_name="3daistudio", base_url=studio.base_url).start()
    try:
        job = jobs.Job.new("chair", [jobs.Step("text_to_model", {"prompt": "a plain chair"})])
        engine.submit(job)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            event = engine.events.get(timeout=deadline - time.monotonic())
            if event.kind in ("ready", "failed", "needs_decision"):
                break
        assert event.kind == "ready", event.message
        step = event.job["steps"][0]
        assert Path(step["files"]["model_url"]).read_bytes()[:4] == b"glTF"
        assert step["task"]["credits_consumed"] == 40
    finally:
        engine.stop()
    api = studio.api_requests()
    assert [r["status"] for r in api] == [200] * len(api) and 2 <= len(api) <= 3
    assert api[0]["path"].startswith("/v1/3d-models/tripo/text-to-3d/")
    first_poll = next(r for r in api if "/generation-request/" in r["path"])
    assert first_poll["time"] - api[0]["time"] >= 19  # paced: 60 s / 3 requests


# =========================================================================== through Blender


@pytest.fixture
def studio_prefs(prefs, studio, tmod, tmp_path, monkeypatch):
    """The extension pointed at the emulator's 3D AI Studio side."""
    for name in ("TRIPO_API_KEY", "TRIPO_API_BASE", "TRIPO_PROVIDER", "AISTUDIO_API_KEY",
                 "AISTUDIO_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AISTUDIO_REQUESTS_PER_MINUTE", "10000")
    prefs.provider = "3daistudio"
    prefs.aistudio_api_key = STUDIO_KEY
    prefs.aistudio_base_url = studio.base_url
    prefs.proxy_mode = "none"
    prefs.download_dir = str(tmp_path / "downloads")
    yield studio
    reset_runtime(tmod)
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.provider = "tripo"
    prefs.aistudio_api_key = ""
    prefs.aistudio_base_url = tmod("core.providers.settings").AISTUDIO_URL
    prefs.download_dir = ""


def test_generate_operator_imports_a_3daistudio_model(studio_prefs):
    studio = studio_prefs
    scene = bpy.context.scene
    scene.tripo.prompt = "a wooden treasure chest"
    scene.tripo.face_limit = 4000
    assert bpy.ops.tripo.generate() == {"FINISHED"}  # background mode: returns once imported
    objects = [o for o in bpy.data.objects if "tripo" in o]
    assert len(objects) == 1
    meta = objects[0]["tripo"].to_dict()
    assert meta["provider"] == "3daistudio"
    (task_id, record), = studio.tasks().items()
    assert meta["task_id"] == task_id and meta["task_type"] == "text_to_model"
    assert meta["credits"] == record["cost"] == 40
    assert objects[0].type == "MESH" and len(objects[0].data.polygons) <= 4000
    create = studio.creates()[0]
    assert create["path"] == "/v1/3d-models/tripo/text-to-3d/3.1/"
    assert create["json"]["prompt"] == "a wooden treasure chest"
    assert not [r for r in studio.emulator.requests() if r["path"].startswith("/v3/")]


def test_operator_reports_the_3daistudio_error(studio_prefs):
    studio_prefs.configure(balance=5)
    bpy.context.scene.tripo.prompt = "a chair"
    with pytest.raises(RuntimeError, match="(?i)credit"):
        bpy.ops.tripo.generate()
    assert not any("tripo" in o for o in bpy.data.objects)


# =========================================================================== the batch runner


BATCH = REPO / "scripts" / "tripo_batch.py"
BATCH_RUNNER = REPO / "tripo_blender" / "blender" / "batch_runner.py"


@pytest.mark.skipif(not (BATCH.is_file() and BATCH_RUNNER.is_file()),
                    reason="the batch runner is not written yet")
def test_batch_runner_against_the_3daistudio_emulator(studio, tmp_path):
    from conftest import blender_command
    batch = tmp_path / "studio_batch.toml"
    batch.write_text('''
[batch]
project = "STUDIO"

[defaults]
options = { model = "v3.1-20260211", face_limit = 3000 }

[[jobs]]
name = "crate"
prompt = "a small wooden crate"

[[jobs]]
name = "lantern"
prompt = "a brass lantern"
''')
    out = tmp_path / "out"
    user_dir = tmp_path / "blender-user"  # the batch's own Blender: its own throw-away profile
    user_dir.mkdir()
    env = {**os.environ, "TRIPO_PROVIDER": "3daistudio", "AISTUDIO_API_KEY": STUDIO_KEY,
           "AISTUDIO_API_BASE": studio.base_url, "AISTUDIO_REQUESTS_PER_MINUTE": "10000",
           "BLENDER_USER_RESOURCES": str(user_dir)}
    for name in ("TRIPO_API_KEY", "TRIPO_API_BASE"):
        env.pop(name, None)
    command = [*blender_command(), "-b", "--online-mode", "--python", str(BATCH), "--",
               str(batch), "--out", str(out)]
    if os.environ.get("TRIPO_EXTENSION_ZIP"):
        command += ["--extension-zip", os.environ["TRIPO_EXTENSION_ZIP"]]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    tasks = studio.tasks()
    assert len(tasks) == 2 and all(r["status"] == "FINISHED" for r in tasks.values())
    assert sorted(r["input"]["prompt"] for r in tasks.values()) == ["a brass lantern",
                                                                    "a small wooden crate"]
    assert all(r["route"].endswith("/text-to-3d/3.1/") for r in tasks.values())
    report = json.loads((out / "report.json").read_text())
    assert "3daistudio" in json.dumps(report)
    assert len(list(out.rglob("*.glb"))) >= 2
