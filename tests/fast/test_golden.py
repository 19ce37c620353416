"""Our requests against what the official SDK (tripo3d 1.0.0) sends for the same intent.

The fixtures in tests/golden/ were recorded from the SDK itself by scripts/record_sdk_golden.py
(see tests/golden/README.md). Nothing here needs the SDK or the internet: create requests are
compared as built (route and JSON body); uploads and reads are made against the local emulator
and compared as it received them (method, route, query, content types, multipart fields).

The body rule: every key the SDK sends, we send with the same value; a key only we send must
be one the SDK left out because its value is the SDK's declared default (``server_defaults``),
and we send exactly that default. So the server sees the same intent, and our result never
depends on what the server would assume.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sample_files import write_glb, write_png

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FIXTURES = {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(GOLDEN.glob("*.json"))}
CREATES = {name: f for name, f in FIXTURES.items() if "task_type" in f["ours"]}
PROVIDER_CALLS = {name: f for name, f in FIXTURES.items() if "provider" in f["ours"]}

#: Every route the official SDK tripo3d 1.0.0 calls.
SDK_ROUTES = {
    "/v3/generation/text-to-model", "/v3/generation/image-to-model",
    "/v3/generation/multiview-to-model", "/v3/generation/text-to-image",
    "/v3/generation/image-to-image", "/v3/generation/image-to-multiview",
    "/v3/generation/edit-multiview", "/v3/generation/image-to-splat",
    "/v3/generation/image-to-depth", "/v3/models/texture", "/v3/models/convert",
    "/v3/models/import", "/v3/animations/rig-check", "/v3/animations/rig",
    "/v3/animations/retarget", "/v3/mesh/segment", "/v3/mesh/complete", "/v3/mesh/decimate",
    "/v3/mesh/uv", "/v3/files", "/v3/files/presign", "/v3/tasks/{task_id}", "/v3/tasks/list",
    "/v3/account/balance", "/v3/account/usage",
}


def _route_pattern(route: str) -> str:
    if route.startswith("/v3/tasks/") and route != "/v3/tasks/list":
        return "/v3/tasks/{task_id}"
    return route


def test_every_sdk_route_has_a_golden_fixture():
    recorded = {_route_pattern(r["route"]) for f in FIXTURES.values() for r in f["requests"]}
    assert SDK_ROUTES <= recorded, SDK_ROUTES - recorded


def assert_same_intent(ours: dict, sdk: dict, server_defaults: dict, where: str = "") -> None:
    for key, value in sdk.items():
        assert key in ours, f"{where}{key}: the SDK sends it, we do not"
        assert ours[key] == value, f"{where}{key}: we send {ours[key]!r}, the SDK {value!r}"
    for key in set(ours) - set(sdk):
        assert key in server_defaults, (
            f"{where}{key}: we send it, the SDK does not and declares no default for it")
        assert ours[key] == server_defaults[key], (
            f"{where}{key}: we send {ours[key]!r}; the SDK leaves it to the server's "
            f"{server_defaults[key]!r}")


@pytest.mark.parametrize("name", sorted(CREATES))
def test_create_request_matches_the_sdk(tmod, name):
    fixture = CREATES[name]
    (sent,) = fixture["requests"]
    request = tmod("core.protocol.request_models").build_request(fixture["ours"]["task_type"],
                                                                 **fixture["ours"]["params"])
    assert (sent["method"], sent["route"]) == ("POST", request.route)
    assert sent["headers"]["content-type"] == "application/json"
    assert_same_intent(request.to_body(), sent["json"], fixture["server_defaults"])


def test_sent_creates_are_json_with_the_key(tmod, emulator):
    """The headers of a create as it leaves our provider (the body is compared above)."""
    request_models = tmod("core.protocol.request_models")
    v3, http = tmod("core.providers.tripo_v3"), tmod("core.providers.http")
    provider = v3.TripoV3Provider(emulator.api_key, base_url=emulator.base_url,
                                  proxy=http.ProxyConfig("none"))
    try:
        provider.create_task(request_models.build_request("text_to_image", prompt="a castle",
                                                          negative_prompt="fog"))
    finally:
        provider.close()
    (create,) = emulator.creates()
    expected = FIXTURES["text_to_image"]["requests"][0]
    assert create["content_type"] == expected["headers"]["content-type"]
    assert create["auth"] is True and create["json"] == expected["json"]


@pytest.mark.parametrize("name", sorted(PROVIDER_CALLS))
def test_uploads_and_reads_match_the_sdk(tmod, emulator, tmp_path, monkeypatch, name):
    fixture = PROVIDER_CALLS[name]
    ours = fixture["ours"]
    v3, http, errors = tmod("core.providers.tripo_v3"), tmod("core.providers.http"), tmod("core.protocol.errors")
    provider = v3.TripoV3Provider(emulator.api_key, base_url=emulator.base_url,
                                  proxy=http.ProxyConfig("none"))
    try:
        if ours["provider"] == "upload_file":
            sdk_name = Path(fixture["requests"][0].get("multipart", {}).get("file", {})
                            .get("filename", "model.glb"))
            if ours["file"] == "png":
                path = write_png(tmp_path / sdk_name.name, 64, 64)
            else:
                path = write_glb(tmp_path / "model.glb")
            if ours["file"] == "big_glb":  # the presigned path, as the SDK takes above 50 MB
                monkeypatch.setattr(v3, "MULTIPART_MAX_BYTES", 10)
            provider.upload_file(path)
        else:
            try:
                getattr(provider, ours["provider"])(*ours["args"])
            except errors.TaskNotFound:  # the fixture's task id is not on the emulator
                pass
    finally:
        provider.close()
    received = [r for r in emulator.requests() if r["kind"] in ("api", "upload")]
    assert len(received) == len(fixture["requests"]), received
    for got, sent in zip(received, fixture["requests"]):
        where = f"{sent['method']} {sent['route']}: "
        assert got["method"] == sent["method"], where
        if sent["route"] == "<presigned_url>":
            assert got["kind"] == "upload" and got["path"].startswith("/uploads/"), where
        else:
            assert got["path"] == sent["route"], where
            assert got["query"] == sent["query"], where
        # The API key goes to the API, never to the presigned storage URL.
        assert got["auth"] is ("authorization" in sent["headers"]), where
        content_type = sent["headers"].get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            assert (got["content_type"] or "").startswith("multipart/form-data"), where
            assert got["multipart"] == sent["multipart"], where
        else:
            assert got["content_type"] == (content_type or None), where
        if "json" in sent:
            assert got["json"] == sent["json"], where
