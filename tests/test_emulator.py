"""Tests of the Tripo apiv3 emulator itself, over real HTTP on loopback.

The module starts its own `EmulatorServer` (port 0, 0.5 s tasks, a temporary asset cache) in
this process and resets it before every test; model outputs come from the real asset factory.
"""

from __future__ import annotations

from http.client import HTTPConnection
import json
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from emulator import catalog, images  # noqa: E402
from emulator.server import EmulatorServer  # noqa: E402

KEY = "tsk_emulator_test_key"
MODEL = "v3.1-20260211"
P1 = "P1-20260311"
TASK_SECONDS = 0.5


@pytest.fixture(scope="module")
def server():
    cache = tempfile.mkdtemp(prefix="tripo-emulator-test-cache-")
    emulator = EmulatorServer("127.0.0.1", 0, task_seconds=TASK_SECONDS, cache_dir=cache).start()
    yield emulator
    emulator.stop()
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy
    yield session
    session.close()


class Client:
    def __init__(self, server, http, key=KEY):
        self.url, self.http, self.key = server.url, http, key

    def request(self, method, path, **kwargs):
        headers = kwargs.pop("headers", {})
        if self.key:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def create(self, route, body, expect=200):
        response = self.request("POST", route, json=body)
        assert response.status_code == expect, response.text
        return response.json()["data"]["task_id"] if expect == 200 else response.json()

    def task(self, task_id):
        return self.request("GET", f"/v3/tasks/{task_id}").json()["data"]

    def wait(self, task_id, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(task_id)
            if task["status"] in ("success", "failed"):
                return task
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} did not finish")

    def balance(self):
        return self.request("GET", "/v3/account/balance").json()["data"]

    def usage(self, **params):
        return self.request("GET", "/v3/account/usage", params=params).json()["data"]["items"]

    def control(self, method, route, payload=None):
        response = self.http.request(method, f"{self.url}/_emulator/{route}", json=payload, timeout=30)
        response.raise_for_status()
        return response.json()

    def upload(self, data: bytes, filename="image.png"):
        # The content type of the file's format, as the official SDK sends it.
        fmt = images.sniff_format(data[:64], filename)
        content_type = catalog.UPLOAD_CONTENT_TYPES.get(fmt, "application/octet-stream")
        response = self.request("POST", "/v3/files", files={"file": (filename, data, content_type)})
        assert response.status_code == 200, response.text
        return response.json()["data"]["file_token"]


@pytest.fixture
def api(server, http):
    client = Client(server, http)
    client.control("POST", "reset")
    return client


def png(width, height, colour=(200, 40, 40)) -> bytes:
    return images.png_bytes(width, height, [bytes(colour) * width] * height)


def text_model(api, prompt="a wooden treasure chest", **extra):
    return api.create("/v3/generation/text-to-model", {"prompt": prompt, "model": MODEL, **extra})


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["message"] and body["suggestion"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body


# --- auth and the task lifecycle ----------------------------------------------------------------

def test_auth_is_required_on_every_v3_route(server, http, api):
    for method, path in (("GET", "/v3/account/balance"), ("POST", "/v3/generation/text-to-model"),
                         ("GET", "/v3/tasks/x"), ("POST", "/v3/files/presign")):
        assert_error(Client(server, http, key=None).request(method, path, json={}), 401, 1002)
        assert_error(Client(server, http, key="tcli_not_an_api_key").request(method, path, json={}),
                     401, 1002)
    api.control("POST", "config", {"api_key": "tsk_only_this_one"})
    assert_error(api.request("GET", "/v3/account/balance"), 401, 1002)
    assert Client(server, http, key="tsk_only_this_one").balance()["balance"] == 10000


def test_task_moves_queued_running_success_with_a_signed_expiring_download(api):
    api.control("POST", "config", {"task_seconds": 1.0})  # queued for the first 0.15 s
    task_id = text_model(api)
    seen = []
    while True:
        task = api.task(task_id)
        seen.append(task)
        if task["status"] in ("success", "failed"):
            break
        time.sleep(0.02)
    statuses = [t["status"] for t in seen]
    assert statuses[0] == "queued" and seen[0]["queuing_num"] > 0
    assert "running" in statuses and statuses[-1] == "success", statuses
    progress = [t["progress"] for t in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert any(0 < p < 100 for p in progress)
    assert all(isinstance(t["running_left_time"], int) for t in seen if t["status"] == "running")

    done = seen[-1]
    assert done["type"] == "text_to_model"
    assert done["input"] == {"prompt": "a wooden treasure chest", "model": MODEL}
    assert done["credits_consumed"] == 40
    assert done["created_at"].endswith("Z") and done["completed_at"].endswith("Z")
    url = done["output"]["model_url"]
    assert url.startswith(api.url + f"/files/{task_id}/") and "sig=" in url and "expires=" in url
    assert "rendered_image_url" in done["output"]
    steps = api.request("GET", f"/v3/tasks/{task_id}", params={"step": 1}).json()["data"]["steps"]
    assert steps and all(step["status"] == "success" for step in steps)

    download = api.http.get(url, timeout=30)  # no Authorization header
    assert download.status_code == 200
    assert download.content[:4] == b"glTF"
    assert int(download.headers["Content-Length"]) == len(download.content)

    assert api.http.get(url.replace("sig=", "sig=0"), timeout=30).status_code == 403
    api.control("POST", "config", {"url_ttl_seconds": 0})
    expired = api.task(task_id)["output"]["model_url"]
    time.sleep(0.05)
    assert api.http.get(expired, timeout=30).status_code == 403
    api.control("POST", "config", {"url_ttl_seconds": 300})
    fresh = api.task(task_id)["output"]["model_url"]  # every query signs afresh
    assert fresh != expired and api.http.get(fresh, timeout=30).status_code == 200


def test_tasks_list_reports_found_and_missed_ids(api, server, http):
    mine = api.create("/v3/generation/text-to-image", {"prompt": "a lamp"})
    theirs = Client(server, http, key="tsk_someone_else").create(
        "/v3/generation/text-to-image", {"prompt": "a lamp"})
    data = api.request("POST", "/v3/tasks/list", json={"task_ids": [mine, theirs, "nope"]}).json()["data"]
    assert list(data["tasks"]) == [mine] and data["tasks"][mine]["task_id"] == mine
    assert data["missed"] == [theirs, "nope"]
    assert_error(api.request("POST", "/v3/tasks/list", json={"task_ids": ["x"] * 101}), 400, 1004)
    assert_error(api.request("GET", f"/v3/tasks/{theirs}"), 404, 2001)


def test_image_outputs_and_rig_check_follow_the_subject(api):
    image = api.wait(api.create("/v3/generation/text-to-image", {"prompt": "a sleepy dog"}))
    picture = api.http.get(image["output"]["generated_image_url"], timeout=30)
    assert picture.content.startswith(b"\x89PNG")
    views = api.wait(api.create("/v3/generation/image-to-multiview", {"input": image["task_id"]}))
    assert set(views["output"]["generate_multiview_image"]) == {
        "front_view_url", "left_view_url", "back_view_url", "right_view_url"}
    # image task -> model: the emulator remembers what its own images show
    model = api.wait(api.create("/v3/generation/image-to-model", {"input": image["task_id"],
                                                                 "model": MODEL}))
    assert model["status"] == "success", model
    check = api.wait(api.create("/v3/animations/rig-check", {"input": model["task_id"]}))
    assert check["output"] == {"riggable": True, "rig_type": "quadruped"}


# --- validation and chain errors ----------------------------------------------------------------

VALIDATION_CASES = [
    ("/v3/generation/text-to-model", {"prompt": "a cat"}, 1004, "model"),
    ("/v3/generation/text-to-model", {"model": MODEL}, 1004, "prompt"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "x" * 1025}, 1004, "1024"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "negative_prompt": "n" * 256}, 1004, "255"),
    ("/v3/generation/text-to-model", {"model": "v9.9-20990101", "prompt": "a"}, 2017, "model"),
    ("/v3/generation/text-to-model", {"model": "v2.0-20240919", "prompt": "a"}, 2015, "deprecated"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "face_limit": 499}, 1004, "face_limit"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "face_limit": 500001}, 1004, "face_limit"),
    ("/v3/generation/text-to-model", {"model": P1, "prompt": "a", "face_limit": 47}, 1004, "face_limit"),
    ("/v3/generation/text-to-model", {"model": P1, "prompt": "a", "face_limit": 20001}, 1004, "face_limit"),
    ("/v3/generation/text-to-model", {"model": P1, "prompt": "a", "quad": True}, 1004, "quad"),
    ("/v3/generation/text-to-model", {"model": P1, "prompt": "a", "smart_low_poly": True}, 1004, "smart_low_poly"),
    ("/v3/generation/text-to-model", {"model": P1, "prompt": "a", "geometry_quality": "standard"}, 1004, "geometry_quality"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "generate_parts": True}, 1004, "texture=false"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "generate_parts": True,
                                      "texture": False}, 1004, "pbr=false"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "generate_parts": True,
                                      "texture": False, "pbr": False, "quad": True}, 1004, "quad"),
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "texture_quality": "ultra"}, 1004, "texture_quality"),
    ("/v3/generation/multiview-to-model", {"model": MODEL, "inputs": ["a", "b", "c"]}, 1004, "4 views"),
    ("/v3/generation/multiview-to-model", {"model": MODEL, "inputs": [None, "b", "c", "d"]}, 1004, "front"),
    ("/v3/generation/multiview-to-model", {"model": MODEL, "inputs": ["a", None, None, None]}, 1004, "two views"),
    ("/v3/generation/image-to-model", {"model": MODEL, "input": "file_does_not_exist"}, 1004, "file token"),
    ("/v3/animations/retarget", {"input": "t", "animations": ["preset:walk"] * 6}, 1004, "at most 5"),
    ("/v3/animations/retarget", {"input": "t", "animation": "preset:moonwalk"}, 1004, "preset"),
    ("/v3/animations/rig", {"input": "t", "rig_type": "dragon"}, 1004, "rig_type"),
    ("/v3/animations/rig", {"input": "t", "spec": "unity"}, 1004, "spec"),
    ("/v3/models/convert", {"input": "t", "format": "DAE"}, 1004, "format"),
    ("/v3/models/convert", {"input": "t", "format": "FBX", "fbx_preset": "maya"}, 1004, "fbx_preset"),
    ("/v3/mesh/decimate", {"input": "t", "face_limit": 20001}, 1004, "face_limit"),
    ("/v3/mesh/decimate", {"input": "t", "face_limit": 10001, "quad": True}, 1004, "quads"),
    ("/v3/mesh/segment", {"input": "t", "segmentation_granularity": "simple"}, 1004, "v2.0"),
    ("/v3/models/texture", {"input": "t", "texture_quality": "low"}, 1004, "texture_quality"),
    # strict: a misspelled or unknown key is refused, naming it
    ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "a", "texure": False}, 1004, "texure"),
    ("/v3/generation/image-to-model", {"model": MODEL, "input": "t", "prompt": "a"}, 1004, "prompt"),
    ("/v3/generation/multiview-to-model", {"model": MODEL, "input": "t"}, 1004, "input"),
    ("/v3/models/texture", {"input": "t", "texture_prompt": {"txt": "x"}}, 1004, "texture_prompt.txt"),
    ("/v3/models/texture", {"input": "t", "texture_quality": "fast"}, 1004, "v3.5"),
    ("/v3/animations/rig", {"input": "t", "rig_types": "biped"}, 1004, "rig_types"),
    ("/v3/generation/image-to-depth", {"input": "t", "process_res": 100}, 1004, "process_res"),
    ("/v3/generation/image-to-depth", {"input": "t", "process_res": "504"}, 1004, "process_res"),
    ("/v3/generation/image-to-splat", {"input": "t", "model_seed": "7"}, 1004, "model_seed"),
]


@pytest.mark.parametrize("route, body, code, words", VALIDATION_CASES)
def test_invalid_parameters_are_refused_with_a_specific_message(api, route, body, code, words):
    error = assert_error(api.request("POST", route, json=body), 400, code)
    assert words in error["message"]
    assert api.usage() == [] and api.balance()["balance"] == 10000


def test_malformed_body_and_unknown_routes(api):
    assert_error(api.request("POST", "/v3/generation/text-to-model", data=b"{not json",
                             headers={"Content-Type": "application/json"}), 400, 1003)
    for retired in ("/v3/models/stylize", "/v3/generation/refine-model", "/v3/models/refine"):
        assert_error(api.request("POST", retired, json={"input": "x"}), 400, 2016)


def test_chain_rules(api):
    assert_error(api.request("POST", "/v3/mesh/segment", json={"input": "no-such-task"}), 404, 2001)
    model = text_model(api)
    # not finished yet -> 2007
    assert_error(api.request("POST", "/v3/animations/rig", json={"input": model}), 400, 2007)
    api.wait(model)
    assert_error(api.request("POST", "/v3/animations/retarget",
                             json={"input": model, "animation": "preset:walk"}), 400, 2006)
    assert_error(api.request("POST", "/v3/mesh/complete", json={"input": model}), 400, 2006)
    image = api.wait(api.create("/v3/generation/text-to-image", {"prompt": "a chair"}))
    assert_error(api.request("POST", "/v3/models/texture", json={"input": image["task_id"]}), 400, 2006)
    assert_error(api.request("POST", "/v3/mesh/segment", json={"input": image["task_id"]}), 400, 2006)
    check = api.create("/v3/animations/rig-check", {"input": model})
    assert api.wait(check)["output"] == {"riggable": True, "rig_type": "biped"}


# --- content policy, failures, credits, limits --------------------------------------------------

def test_content_policy_and_failed_tasks_refund(api):
    assert_error(api.request("POST", "/v3/generation/text-to-model",
                             json={"model": MODEL, "prompt": "a FORBIDDEN thing"}), 400, 2008)
    assert api.usage() == []
    task_id = text_model(api, prompt="please failme now")
    assert api.balance() == {"balance": 10000 - 40, "frozen": 40}
    task = api.wait(task_id)
    assert task["status"] == "failed" and task["error_code"] == 1001 and task["error_message"]
    assert "credits_consumed" not in task and task["output"] == {}
    assert api.balance() == {"balance": 10000, "frozen": 0}
    assert api.usage()[0]["credits_consumed"] == 0


def test_costs_follow_the_published_table(api):
    cases = [
        ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "failme a"}, 40),
        ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "failme b", "texture": False}, 20),
        ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "failme c", "texture_quality": "detailed",
                                          "geometry_quality": "detailed"}, 100),
        ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "failme d", "quad": True}, 50),
        ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "failme e", "smart_low_poly": True}, 60),
        ("/v3/generation/text-to-model", {"model": MODEL, "prompt": "failme f", "generate_parts": True,
                                          "texture": False, "pbr": False}, 60),
        ("/v3/generation/text-to-model", {"model": P1, "prompt": "failme g"}, 80),
    ]
    api.control("POST", "config", {"task_seconds": 30})  # no refund while measuring
    for route, body, cost in cases:
        before = api.balance()["balance"]
        api.create(route, body)
        assert before - api.balance()["balance"] == cost, body


def test_balance_decreases_and_insufficient_credits_are_refused(api):
    image = api.create("/v3/generation/text-to-image", {"prompt": "a vase"})
    assert api.balance() == {"balance": 9990, "frozen": 10}
    api.wait(image)
    assert api.balance() == {"balance": 9990, "frozen": 0}
    assert api.task(image)["credits_consumed"] == 10
    api.control("POST", "config", {"balance": 30})
    assert_error(api.request("POST", "/v3/generation/text-to-model",
                             json={"model": MODEL, "prompt": "a cat"}), 403, 2010)
    assert [item["task_id"] for item in api.usage()] == [image]


def test_concurrency_and_rate_limits(api):
    api.control("POST", "config", {"concurrency_limit": 1, "task_seconds": 30})
    api.create("/v3/generation/text-to-image", {"prompt": "one"})
    assert_error(api.request("POST", "/v3/generation/text-to-image", json={"prompt": "two"}), 429, 2000)
    assert len(api.usage()) == 1
    # every create request counts against the rate, refused ones too: two so far
    api.control("POST", "config", {"concurrency_limit": 10, "rate_limit_per_minute": 3})
    api.create("/v3/generation/text-to-image", {"prompt": "three"})
    response = api.request("POST", "/v3/generation/text-to-image", json={"prompt": "four"})
    assert_error(response, 429, 1007)
    assert int(response.headers["Retry-After"]) >= 1
    assert len(api.usage()) == 2


def test_usage_is_newest_first_with_paging(api):
    ids = [api.create("/v3/generation/text-to-image", {"prompt": f"p{i}"}) for i in range(3)]
    items = api.usage()
    assert [item["task_id"] for item in items] == ids[::-1]
    assert set(items[0]) == {"task_id", "type", "status", "created_at", "credits_consumed"}
    assert [item["task_id"] for item in api.usage(limit=1, offset=1)] == [ids[1]]
    assert_error(api.request("GET", "/v3/account/usage", params={"limit": "x"}), 400, 1004)


# --- uploads ------------------------------------------------------------------------------------

def test_multipart_upload_and_image_size_validation(api):
    good = api.upload(png(64, 48))
    assert good.startswith("file_")
    assert api.create("/v3/generation/image-to-model", {"model": MODEL, "input": good}) is not None
    for width, height in ((10, 10), (6001, 20)):
        token = api.upload(png(width, height))
        error = assert_error(api.request("POST", "/v3/generation/image-to-model",
                                         json={"model": MODEL, "input": token}), 400, 1004)
        assert "px" in error["message"]
    glb = api.upload(b"glTF" + b"\x00" * 60, filename="thing.glb")
    assert_error(api.request("POST", "/v3/generation/image-to-model",
                             json={"model": MODEL, "input": glb}), 400, 1004)
    assert_error(api.request("POST", "/v3/files", files={"other": ("a.png", png(30, 30))}), 400, 1004)


def test_multipart_part_must_carry_its_formats_content_type(api):
    """A GLB goes up as model/gltf-binary, as the official SDK sends it; a generic or missing
    part type is refused with 1004 naming the field."""
    glb = b"glTF" + b"\x02\x00\x00\x00" + b"\x00" * 56
    for part_type in (None, "application/octet-stream"):
        part = ("thing.glb", glb) if part_type is None else ("thing.glb", glb, part_type)
        body = assert_error(api.request("POST", "/v3/files", files={"file": part}), 400, 1004)
        assert "file" in body["message"] and "model/gltf-binary" in body["message"]
    assert api.upload(glb, filename="thing.glb").startswith("file_")
    log = [r for r in api.control("GET", "requests")["requests"] if r["path"] == "/v3/files"]
    assert log[-1]["multipart"] == {"file": {"filename": "thing.glb",
                                             "content_type": "model/gltf-binary"}}


def test_multiview_from_a_multiview_task_and_edit_multiview_prompts(api):
    """The official SDK's shapes: inputs [{"task_id"}] and prompts [{view, prompt}]."""
    image = api.create("/v3/generation/text-to-image", {"prompt": "a red kettle"})
    views = api.wait(api.create("/v3/generation/image-to-multiview", {"input": api.wait(image)["task_id"]}))
    edited = api.wait(api.create("/v3/generation/edit-multiview", {
        "input": views["task_id"], "prompts": [{"view": "front", "prompt": "add a lid"},
                                               {"view": "back", "prompt": "add a handle"}]}))
    assert edited["status"] == "success" and set(edited["output"]["generate_multiview_image"]) == {
        "front_view_url", "left_view_url", "back_view_url", "right_view_url"}
    for source in (views, edited):
        model = api.wait(api.create("/v3/generation/multiview-to-model", {
            "model": MODEL, "inputs": [{"task_id": source["task_id"]}], "texture": False}))
        assert model["status"] == "success", model
    for body, field in (
            ({"input": views["task_id"], "prompt": "add a lid"}, "prompts"),
            ({"input": views["task_id"], "prompts": "add a lid"}, "prompts"),
            ({"input": views["task_id"], "prompts": [{"view": "top", "prompt": "x"}]}, "prompts[0].view"),
            ({"input": views["task_id"], "prompts": [{"view": "front", "text": "x"}]}, "prompts[0].text"),
            ({"input": views["task_id"], "prompts": [{"view": "front", "prompt": "a"},
                                                     {"view": "front", "prompt": "b"}]}, "prompts[1].view")):
        error = assert_error(api.request("POST", "/v3/generation/edit-multiview", json=body), 400, 1004)
        assert field in error["message"], (field, error)
    error = assert_error(api.request("POST", "/v3/generation/multiview-to-model", json={
        "model": MODEL, "inputs": [{"task_id": views["task_id"], "view": "front"}]}), 400, 1004)
    assert "inputs[0].view" in error["message"]


def test_upload_size_caps_are_checked_before_reading(api):
    """A body announced beyond the cap (50 MB multipart, 150 MB presigned) is refused at once."""
    presigned = api.request("POST", "/v3/files/presign", json={"format": "glb"}).json()["data"]
    for method, target, size in (("POST", "/v3/files", 60 * 1024 * 1024),
                                 ("PUT", presigned["presigned_url"].removeprefix(api.url),
                                  150 * 1024 * 1024 + 1)):
        connection = HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=10)
        connection.putrequest(method, target)
        if method == "POST":
            connection.putheader("Authorization", f"Bearer {KEY}")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()  # and no body at all
        response = connection.getresponse()
        assert response.status == 400 and json.loads(response.read())["code"] == 1004
        connection.close()


def test_factory_failure_fails_the_task_with_1001(api):
    token = api.upload(b"glTF" + b"\x02\x00\x00\x00" + b"\xff" * 56, filename="broken.glb")
    task = api.wait(api.create("/v3/models/import", {"input": token}))
    assert task["status"] == "failed" and task["error_code"] == 1001
    assert "asset production failed" in task["error_message"]


def test_presigned_upload_needs_no_auth_and_checks_its_signature(api):
    data = api.request("POST", "/v3/files/presign", json={"format": "png"}).json()["data"]
    assert data["file_token"].startswith("file_") and data["expires_in"] > 0
    # a token whose bytes never arrived cannot be used
    assert_error(api.request("POST", "/v3/generation/image-to-model",
                             json={"model": MODEL, "input": data["file_token"]}), 400, 1004)
    png_type = {"Content-Type": "image/png"}
    assert api.http.put(data["presigned_url"].replace("sig=", "sig=f"), data=png(30, 30),
                        headers=png_type, timeout=30).status_code == 403
    # the URL is signed for the declared format's content type: none, or another, is refused
    for wrong in ({}, {"Content-Type": "application/octet-stream"}):
        assert_error(api.http.put(data["presigned_url"], data=png(300, 200), headers=wrong,
                                  timeout=30), 403, 1005)
    assert api.http.put(data["presigned_url"], data=png(300, 200), headers=png_type,
                        timeout=30).status_code == 200
    task = api.create("/v3/generation/image-to-model", {"model": MODEL, "input": data["file_token"]})
    assert task
    puts = [r for r in api.control("GET", "requests")["requests"] if r["kind"] == "upload"]
    assert puts and not any(r["auth"] for r in puts)
    assert_error(api.request("POST", "/v3/files/presign", json={"format": "exe"}), 400, 1004)


def test_image_headers_are_read_without_decoding(tmp_path):
    jpeg = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 480, 640) + b"\x03" + b"\x00" * 9)
    webp_vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00" + \
        (799).to_bytes(3, "little") + (599).to_bytes(3, "little")
    for name, data, fmt, size in (("a.jpg", jpeg, "jpeg", (640, 480)),
                                  ("a.webp", webp_vp8x, "webp", (800, 600)),
                                  ("a.png", png(33, 44), "png", (33, 44))):
        path = tmp_path / name
        path.write_bytes(data)
        assert images.sniff_format(data[:64]) == fmt
        assert images.image_size(path, fmt) == size
    # a generated preview is a real, decodable PNG: 32 rows of filter byte + 32 RGB pixels
    preview = images.preview_png("a red lamp", size=32)
    assert images.image_size(_write(tmp_path / "p.png", preview), "png") == (32, 32)
    (length,) = struct.unpack(">I", preview[33:37])
    assert preview[37:41] == b"IDAT"
    assert len(zlib.decompress(preview[41:41 + length])) == 32 * (1 + 32 * 3)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- faults -------------------------------------------------------------------------------------

def fault_log(api):
    return [r["fault"] for r in api.control("GET", "requests")["requests"] if r["fault"]]


def test_answer_faults(api):
    api.control("POST", "faults", {"spec": "429:create,500:get,503:balance,2000:create,malformed:usage"})
    response = api.request("POST", "/v3/generation/text-to-image", json={"prompt": "x"})
    assert_error(response, 429, 1007)
    assert response.headers["Retry-After"] == "1"
    assert_error(api.request("GET", "/v3/tasks/whatever"), 500, 1000)
    assert_error(api.request("GET", "/v3/account/balance"), 503, 1000)
    assert_error(api.request("POST", "/v3/generation/text-to-image", json={"prompt": "x"}), 429, 2000)
    malformed = api.request("GET", "/v3/account/usage")
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        json.loads(malformed.text)
    assert api.usage() == []  # none of those creates was processed
    assert fault_log(api) == ["429:create", "500:get", "503:balance", "2000:create", "malformed:usage"]


def test_counted_and_any_faults(api):
    api.control("POST", "faults", {"spec": "500:any:2"})
    assert api.request("GET", "/v3/account/balance").status_code == 500
    assert api.request("GET", "/v3/account/usage").status_code == 500
    assert api.request("GET", "/v3/account/balance").status_code == 200
    assert api.control("GET", "faults")["faults"] == []
    bad = api.http.post(f"{api.url}/_emulator/faults", json={"spec": "boom:create"}, timeout=30)
    assert bad.status_code == 400 and "boom" in bad.json()["error"]


def test_connection_resets(api):
    api.control("POST", "faults", {"spec": "reset_before:create"})
    with pytest.raises(requests.exceptions.ConnectionError):
        api.request("POST", "/v3/generation/text-to-image", json={"prompt": "lost"})
    assert api.usage() == [] and api.balance()["balance"] == 10000

    api.control("POST", "faults", {"spec": "reset_after:create"})
    with pytest.raises(requests.exceptions.ConnectionError):
        api.request("POST", "/v3/generation/text-to-image", json={"prompt": "created anyway"})
    items = api.usage()
    assert len(items) == 1 and items[0]["type"] == "text_to_image"  # created and billed
    assert api.balance()["balance"] == 9990
    log = api.control("GET", "requests")["requests"]
    reset = [r for r in log if r["fault"] == "reset_after:create"]
    assert reset[0]["status"] is None and reset[0]["json"] == {"prompt": "created anyway"}


def test_slow_truncate_expire_and_authorised_downloads(api):
    api.control("POST", "config", {"slow_seconds": 0.4})
    api.control("POST", "faults", {"spec": "slow:balance"})
    started = time.monotonic()
    assert api.request("GET", "/v3/account/balance").status_code == 200
    assert time.monotonic() - started >= 0.4

    task = api.wait(api.create("/v3/generation/text-to-image", {"prompt": "a kettle"}))
    url = task["output"]["generated_image_url"]
    api.control("POST", "faults", {"spec": "truncate:download,expire:download"})
    with pytest.raises(requests.exceptions.RequestException):
        response = api.http.get(url, timeout=30)
        response.raise_for_status()
        assert len(response.content) == int(response.headers["Content-Length"])
    assert api.http.get(url, timeout=30).status_code == 403
    assert api.http.get(url, timeout=30).status_code == 200

    assert api.http.get(url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30).status_code == 200
    downloads = [r for r in api.control("GET", "requests")["requests"] if r["kind"] == "download"]
    assert [r["auth"] for r in downloads] == [False, False, False, True]
    assert [r["fault"] for r in downloads] == ["truncate:download", "expire:download", None, None]
    assert KEY not in json.dumps(api.control("GET", "requests"))  # the key value is never logged


def test_a_late_create_is_unanswered_and_appears_on_the_account_later(api):
    api.control("POST", "config", {"late_seconds": 0.5})
    api.control("POST", "faults", {"spec": "late:create,late:balance"})
    with pytest.raises(requests.exceptions.ConnectionError):
        api.request("POST", "/v3/generation/text-to-model", json={"prompt": "a late kettle",
                                                                  "model": "v3.1-20260211"})
    assert api.control("GET", "tasks")["tasks"] == {}
    with pytest.raises(requests.exceptions.ConnectionError):  # not a create: only cut
        api.request("GET", "/v3/account/balance")
    deadline = time.monotonic() + 10
    while not api.control("GET", "tasks")["tasks"]:
        assert time.monotonic() < deadline, "the late create never appeared"
        time.sleep(0.05)
    (task,) = api.control("GET", "tasks")["tasks"].values()
    assert task["input"]["prompt"] == "a late kettle"
    api.control("POST", "faults", {"spec": "500:get:9"})
    assert api.control("POST", "faults", {"spec": "", "clear": True})["faults"] == []


# --- control routes, big files, the command line ------------------------------------------------

def test_control_routes(api):
    task_id = api.create("/v3/generation/text-to-image", {"prompt": "a mug"})
    tasks = api.control("GET", "tasks")["tasks"]
    assert tasks[task_id]["key"] == KEY and tasks[task_id]["cost"] == 10
    assert tasks[task_id]["input"] == {"prompt": "a mug"}
    log = api.control("GET", "requests")["requests"]
    create = next(r for r in log if r["path"] == "/v3/generation/text-to-image")
    assert create["kind"] == "api" and create["auth"] and create["status"] == 200
    assert create["json"] == {"prompt": "a mug"} and create["seq"] >= 1
    bad = api.http.post(f"{api.url}/_emulator/config", json={"nope": 1}, timeout=30)
    assert bad.status_code == 400
    api.control("POST", "reset")
    assert api.control("GET", "tasks")["tasks"] == {}
    assert_error(api.request("GET", f"/v3/tasks/{task_id}"), 404, 2001)


def test_asset_profile_config_reaches_generation_requests(api, server, tmp_path):
    assert api.control("GET", "config")["config"]["asset_profile"] == "light"
    bad = api.http.post(f"{api.url}/_emulator/config", json={"asset_profile": "huge"}, timeout=30)
    assert bad.status_code == 400
    api.control("POST", "config", {"asset_profile": "realistic"})
    task_id = api.create("/v3/generation/text-to-image", {"prompt": "a rock"})
    assert server.api.tasks[task_id].asset_profile == "realistic"
    api.control("POST", "reset")
    assert api.control("GET", "config")["config"]["asset_profile"] == "light"

    # What the producer asks the factory for (a recording stand-in; the real realistic model is
    # checked by test_asset_factory.py's slow test).
    from emulator.production import Producer
    from emulator.state import Task

    class RecordingFactory:
        requests = []

        def produce(self, op, params, inputs=None):
            self.requests.append(params)
            return {"files": {"model": str(tmp_path / "model.glb")}, "info": {}}

    factory = RecordingFactory()
    producer = Producer(lambda: factory, tmp_path)
    for profile in ("light", "realistic"):
        task = Task(task_id=profile, key=KEY, type="text_to_model", route="", input={},
                    params={"prompt": "a rock", "model_seed": 1}, cost=0, created=0, duration=0,
                    asset_profile=profile)
        producer.run(task)
    light, realistic = factory.requests
    assert "profile" not in light  # light requests keep their cache keys
    assert realistic == {**light, "profile": "realistic"}


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_big_file_is_streamed(api):
    url = api.control("POST", "big-file", {"size_mb": 200})["url"]
    before = rss_kb()
    received = 0
    with api.http.get(url, stream=True, timeout=60) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == 200 * 1024 * 1024
        for block in response.iter_content(1 << 20):
            received += len(block)
    assert received == 200 * 1024 * 1024
    assert rss_kb() - before < 50 * 1024
    ranged = api.http.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert ranged.status_code == 206 and len(ranged.content) == 10


def test_command_line_prints_ready_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "tripo_emulator.py"), "--port", "0",
         "--cache-dir", str(tmp_path), "--balance", "123", "--faults", "503:balance"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:"), line
        url = line.split()[1]
        headers = {"Authorization": f"Bearer {KEY}"}
        session = requests.Session()
        session.trust_env = False
        assert session.get(f"{url}/v3/account/balance", headers=headers, timeout=10).status_code == 503
        balance = session.get(f"{url}/v3/account/balance", headers=headers, timeout=10).json()
        assert balance["data"]["balance"] == 123
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
