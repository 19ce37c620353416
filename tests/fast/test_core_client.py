"""The Tripo apiv3 provider against the local emulator: every task type end to end, every
error code the emulator can produce, every fault kind, uploads, downloads, proxies.

The fast tier (no Blender): `emulator` is reset before each test.
"""

from __future__ import annotations

import logging
import socket
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from fake_time import FakeClock
from provider_helpers import (  # noqa: F401 - core and provider are fixtures
    build, check_create_not_sent_is_retried, core, made_providers, provider, run, wait_all)
from sample_files import write_png


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture
def make_provider(core, emulator):
    def make(**options):
        options.setdefault("base_url", emulator.base_url)
        options.setdefault("proxy", core.http.ProxyConfig("none"))
        return core.v3.TripoV3Provider(options.pop("api_key", emulator.api_key), **options)

    yield from made_providers(make)


def api_log(emulator):
    return [r for r in emulator.requests() if r["kind"] != "control"]


def creates(emulator):
    reads = ("/v3/tasks", "/v3/account", "/v3/files")
    return [r for r in api_log(emulator)
            if r["method"] == "POST" and r["path"].startswith("/v3/") and not r["path"].startswith(reads)]


def assert_no_key_sent_to_files(emulator):
    file_requests = [r for r in emulator.requests() if r["kind"] in ("download", "upload")]
    assert all(r["auth"] is False for r in file_requests), file_requests
    return file_requests


def check_outputs(provider, emulator, task, dest_dir: Path):
    """Downloads every URL output of a finished task and compares the bytes with the file the
    emulator serves."""
    assert task.is_success, (task.type, task.error_code, task.error_message)
    files = emulator.tasks()[task.task_id]["files"]
    urls = task.output.urls()
    assert urls, task
    for key, url in urls.items():
        name = key.split(".")[-1].removesuffix("_url")
        dest = dest_dir / task.task_id / (name + Path(urlsplit(url).path).suffix)
        got = provider.download(url, dest, task_id=task.task_id, output_key=key)
        assert got == dest and dest.read_bytes() == Path(files[name]).read_bytes(), key
        assert not list(dest.parent.glob("*.part"))
    assert_no_key_sent_to_files(emulator)
    return urls


# --------------------------------------------------------------------------- success paths


def test_model_chain_every_post_processing_type(core, provider, emulator, tmp_path):
    base = run(provider, build(core, "text_to_model", prompt="a wooden robot", face_limit=5000))
    assert base.type == "text_to_model" and base.credits_consumed == 40.0
    check_outputs(provider, emulator, base, tmp_path)

    first_round = {
        "texture_model": build(core, "texture_model", input=base.task_id,
                               texture_prompt={"text": "rusty metal"}),
        "mesh_segmentation": build(core, "mesh_segmentation", input=base.task_id),
        "animate_prerigcheck": build(core, "animate_prerigcheck", input=base.task_id),
        "animate_rig": build(core, "animate_rig", input=base.task_id, rig_type="biped"),
        "highpoly_to_lowpoly": build(core, "highpoly_to_lowpoly", input=base.task_id, face_limit=1000),
        "mesh_uv": build(core, "mesh_uv", input=base.task_id),
        "convert_model": build(core, "convert_model", input=base.task_id, format="FBX"),
    }
    ids = {kind: provider.create_task(req) for kind, req in first_round.items()}
    done = wait_all(provider, ids.values())
    for kind, task_id in ids.items():
        task = done[task_id]
        assert task.type == kind
        core.chains.check_chain(kind, base.type, task.status)
        if kind == "animate_prerigcheck":
            assert task.is_success and task.output.riggable is True and task.output.rig_type == "biped"
        else:
            check_outputs(provider, emulator, task, tmp_path)

    second_round = {
        "mesh_completion": build(core, "mesh_completion", input=ids["mesh_segmentation"]),
        "animate_retarget": build(core, "animate_retarget", input=ids["animate_rig"],
                                  animations=["preset:walk", "preset:run"]),
    }
    ids2 = {kind: provider.create_task(req) for kind, req in second_round.items()}
    done2 = wait_all(provider, ids2.values())
    for kind, task_id in ids2.items():
        assert done2[task_id].type == kind
        check_outputs(provider, emulator, done2[task_id], tmp_path)
    assert done2[ids2["animate_retarget"]].credits_consumed == 20.0  # per clip
    # Every poll went through POST /v3/tasks/list; no per-task GET was needed.
    assert not [r for r in api_log(emulator) if r["method"] == "GET" and r["path"].startswith("/v3/tasks/")]


def test_image_chain_every_image_type(core, provider, emulator, tmp_path):
    image = run(provider, build(core, "text_to_image", prompt="a green teapot"))
    check_outputs(provider, emulator, image, tmp_path)
    assert image.output.generated_image_url

    ids = {
        "image_to_model": provider.create_task(build(core, "image_to_model", input=image.task_id)),
        "generate_image": provider.create_task(build(core, "generate_image", prompt="a blue teapot",
                                                     input=image.task_id)),
        "generate_multiview_image": provider.create_task(build(core, "generate_multiview_image",
                                                               input=image.task_id)),
    }
    done = wait_all(provider, ids.values())
    for kind, task_id in ids.items():
        assert done[task_id].type == kind
        check_outputs(provider, emulator, done[task_id], tmp_path)
    views = done[ids["generate_multiview_image"]].output.multiview
    assert set(views) == {"front_view_url", "left_view_url", "back_view_url", "right_view_url"}

    multiview_id = ids["generate_multiview_image"]
    ids2 = {
        "edit_multiview_image": provider.create_task(build(core, "edit_multiview_image", input=multiview_id,
                                                           prompts={"front": "add a lid"})),
        "multiview_to_model": provider.create_task(build(core, "multiview_to_model", input=multiview_id)),
    }
    done2 = wait_all(provider, ids2.values())
    for kind, task_id in ids2.items():
        assert done2[task_id].type == kind
        check_outputs(provider, emulator, done2[task_id], tmp_path)
    sent = {r["path"]: r["json"] for r in creates(emulator)}
    # The official SDK's shapes: a multiview image task as inputs [{"task_id"}], per-view prompts.
    assert sent["/v3/generation/edit-multiview"] == {
        "input": multiview_id, "prompts": [{"view": "front", "prompt": "add a lid"}]}
    assert sent["/v3/generation/multiview-to-model"]["inputs"] == [{"task_id": multiview_id}]
    assert "input" not in sent["/v3/generation/multiview-to-model"]
    edited = run(provider, build(core, "multiview_to_model", input=ids2["edit_multiview_image"]))
    check_outputs(provider, emulator, edited, tmp_path)


def test_local_files_are_uploaded_at_create_time(core, provider, emulator, tmp_path):
    front = write_png(tmp_path / "front.png", 96, 96)
    side = write_png(tmp_path / "side.png", 96, 80)
    ids = [
        provider.create_task(build(core, "image_to_model", input=str(front), texture=False)),
        provider.create_task(build(core, "multiview_to_model",
                                   inputs={"front": str(front), "left": str(side), "back": str(side)})),
    ]
    uploads = [r for r in api_log(emulator) if r["path"] == "/v3/files"]
    assert len(uploads) == 3 and all(r["auth"] for r in uploads)  # front, side, front again
    sent = [r["json"] for r in creates(emulator)]
    assert sent[0]["input"].startswith("file_")
    assert sent[1]["inputs"][0].startswith("file_") and sent[1]["inputs"][1] == sent[1]["inputs"][2]
    assert sent[1]["inputs"][3] is None
    done = wait_all(provider, ids)
    for task in done.values():
        check_outputs(provider, emulator, task, tmp_path)

    # import_model: a local GLB (the model just made) is uploaded and imported.
    model = next(t for t in done.values() if t.type == "image_to_model")
    glb = provider.download(model.output.model_url, tmp_path / "to_import.glb")
    imported = run(provider, build(core, "import_model", input=str(glb)))
    assert imported.type == "import_model"
    parts = [r["multipart"] for r in api_log(emulator) if r["path"] == "/v3/files"]
    assert parts[0] == {"file": {"filename": "front.png", "content_type": "image/png"}}
    assert parts[-1] == {"file": {"filename": "to_import.glb", "content_type": "model/gltf-binary"}}
    check_outputs(provider, emulator, imported, tmp_path)
    textured = run(provider, build(core, "texture_model", input=imported.task_id))
    check_outputs(provider, emulator, textured, tmp_path)


def test_large_uploads_use_presigned_put_without_the_key(core, provider, emulator, tmp_path, monkeypatch):
    monkeypatch.setattr(core.v3, "MULTIPART_MAX_BYTES", 100)  # force the presigned path for an image
    image = write_png(tmp_path / "ref.png", 128, 128)
    task = run(provider, build(core, "image_to_model", input=str(image), texture=False))
    check_outputs(provider, emulator, task, tmp_path)
    log = api_log(emulator)
    presign = [r for r in log if r["path"] == "/v3/files/presign"]
    puts = [r for r in log if r["kind"] == "upload"]
    assert len(presign) == 1 and presign[0]["json"] == {"format": "png"} and presign[0]["auth"] is True
    assert len(puts) == 1 and puts[0]["method"] == "PUT" and puts[0]["status"] == 200
    assert puts[0]["content_type"] == "image/png"
    assert_no_key_sent_to_files(emulator)


def test_upload_size_limits(core, provider, emulator, tmp_path):
    big = tmp_path / "big.glb"
    with open(big, "wb") as handle:  # sparse: 51 MB without writing 51 MB
        handle.write(b"glTF" + b"\x02\x00\x00\x00")
        handle.truncate(51 * 1024 * 1024)
    token = provider.upload_file(big)
    assert token.startswith("file_")
    paths = [(r["method"], r["path"]) for r in api_log(emulator)]
    assert ("POST", "/v3/files/presign") in paths and ("POST", "/v3/files") not in paths
    # A GLB's presigned PUT carries model/gltf-binary, as the official SDK sends it.
    put = next(r for r in api_log(emulator) if r["kind"] == "upload")
    assert (put["status"], put["content_type"]) == (200, "model/gltf-binary")
    assert_no_key_sent_to_files(emulator)

    too_big = tmp_path / "huge.glb"
    with open(too_big, "wb") as handle:
        handle.write(b"glTF")
        handle.truncate(151 * 1024 * 1024)
    before = len(api_log(emulator))
    with pytest.raises(core.errors.ValidationError, match="150 MB"):
        provider.create_task(core.request_models.load_request("import_model", {"input": str(too_big)}))
    assert len(api_log(emulator)) == before


def test_uploads_are_retried_on_server_errors(core, provider, emulator, tmp_path):
    emulator.set_faults("503:upload,reset_before:upload")
    token = provider.upload_file(write_png(tmp_path / "a.png"))
    assert token.startswith("file_")
    uploads = [r for r in api_log(emulator) if r["path"] == "/v3/files"]
    assert [r["fault"] for r in uploads] == ["503:upload", "reset_before:upload", None]


def test_balance_usage_and_polling_in_chunks(core, provider, emulator):
    assert provider.balance() == core.provider.Balance(balance=10000.0, frozen=0.0)
    task_id = provider.create_task(build(core, "text_to_model", prompt="a lamp", texture=False))
    balance = provider.balance()
    assert balance.balance == 10000.0 - 20 and balance.frozen == 20
    usage = provider.usage(limit=10)
    assert [(u.task_id, u.type) for u in usage] == [(task_id, "text_to_model")]
    unknown = [f"00000000-0000-4000-8000-{i:012d}" for i in range(150)]
    result = provider.poll_tasks(unknown[:75] + [task_id] + unknown[75:] + [task_id])
    lists = [r for r in api_log(emulator) if r["path"] == "/v3/tasks/list"]
    assert [len(r["json"]["task_ids"]) for r in lists] == [100, 51]
    assert set(result.tasks) == {task_id} and sorted(result.missed) == sorted(unknown)
    wait_all(provider, [task_id])
    assert provider.balance().frozen == 0


def test_failed_task_reports_code_and_message(core, provider, emulator):
    task = run(provider, build(core, "text_to_model", prompt="please failme now"))
    assert task.status is core.records.TaskStatus.FAILED and task.is_finished and not task.is_success
    assert task.error_code == 1001 and "failed" in task.error_message
    assert task.output.urls() == {}


# --------------------------------------------------------------------------- error codes


def _raises(cls, fn):
    with pytest.raises(cls) as info:
        fn()
    exc = info.value
    assert type(exc) is cls, type(exc)
    assert exc.request_id and exc.request_id.startswith("req_")
    assert exc.user_message()
    return exc


def test_http_401_is_authentication_error(core, make_provider, emulator):
    emulator.configure(api_key="tsk_the_only_right_key")
    provider = make_provider(api_key="tsk_some_other_key_0")
    exc = _raises(core.errors.AuthenticationError, provider.balance)
    assert (exc.http_status, exc.code) == (401, 1002)
    with pytest.raises(core.errors.AuthenticationError):
        provider.create_task(build(core, "text_to_model", prompt="x"))
    assert len(api_log(emulator)) == 2  # neither retried


def test_400_codes_1003_1004_are_bad_requests(core, provider, emulator):
    route = "/v3/generation/text-to-model"
    exc = _raises(core.errors.BadRequest, lambda: provider._call("POST", route, json=[1, 2]))
    assert (exc.http_status, exc.code) == (400, 1003)
    exc = _raises(core.errors.BadRequest,
                  lambda: provider._call("POST", route, json={"prompt": 5, "model": "v3.1-20260211"}))
    assert (exc.http_status, exc.code) == (400, 1004) and "prompt" in exc.message
    assert emulator.tasks() == {}


def test_403_1005_is_permission_denied(core, provider, emulator):
    task_id = provider.create_task(build(core, "text_to_model", prompt="a cup"))
    emulator.set_faults("expire:get")
    exc = _raises(core.errors.PermissionDenied, lambda: provider.get_task(task_id))
    assert (exc.http_status, exc.code) == (403, 1005)
    assert provider.get_task(task_id).task_id == task_id


def test_429_1007_rate_limit_on_create(core, make_provider, emulator):
    emulator.configure(rate_limit_per_minute=1)
    provider = make_provider(max_concurrency_wait=0)
    provider.create_task(build(core, "text_to_model", prompt="one"))
    exc = _raises(core.errors.RateLimited, lambda: provider.create_task(build(core, "text_to_model",
                                                                             prompt="two")))
    assert (exc.http_status, exc.code) == (429, 1007) and exc.retry_after and exc.retry_after > 0
    assert len(emulator.tasks()) == 1


def test_429_2000_concurrency_limit_on_create(core, make_provider, emulator):
    emulator.configure(concurrency_limit=1, task_seconds=30)
    provider = make_provider(max_concurrency_wait=0)
    provider.create_task(build(core, "text_to_model", prompt="one"))
    exc = _raises(core.errors.ConcurrencyLimited,
                  lambda: provider.create_task(build(core, "text_to_model", prompt="two")))
    assert (exc.http_status, exc.code) == (429, 2000)
    assert len(emulator.tasks()) == 1 and len(creates(emulator)) == 2


def test_404_2001_task_not_found(core, provider):
    exc = _raises(core.errors.TaskNotFound, lambda: provider.get_task("00000000-0000-4000-8000-00000000dead"))
    assert (exc.http_status, exc.code) == (404, 2001)


def test_2006_2007_invalid_source_task(core, make_provider, emulator):
    emulator.configure(task_seconds=30)
    provider = make_provider()
    image_id = provider.create_task(build(core, "text_to_image", prompt="a bird"))
    exc = _raises(core.errors.InvalidSourceTask,
                  lambda: provider.create_task(build(core, "texture_model", input=image_id)))
    assert (exc.http_status, exc.code) == (400, 2006)
    model_id = provider.create_task(build(core, "text_to_model", prompt="a bird"))
    exc = _raises(core.errors.InvalidSourceTask,
                  lambda: provider.create_task(build(core, "texture_model", input=model_id)))
    assert (exc.http_status, exc.code) == (400, 2007)


def test_2008_content_policy(core, provider, emulator):
    exc = _raises(core.errors.ContentPolicyError,
                  lambda: provider.create_task(build(core, "text_to_model", prompt="a forbidden idol")))
    assert (exc.http_status, exc.code) == (400, 2008)
    assert "change" in exc.user_message().lower()
    assert emulator.tasks() == {} and len(creates(emulator)) == 1


def test_403_2010_insufficient_credits(core, provider, emulator):
    emulator.configure(balance=30)
    exc = _raises(core.errors.InsufficientCredits,
                  lambda: provider.create_task(build(core, "text_to_model", prompt="a vase")))
    assert (exc.http_status, exc.code) == (403, 2010)
    assert len(creates(emulator)) == 1


@pytest.mark.parametrize("model,code", [("v2.0-20240919", 2015), ("v9.9-20990101", 2017)])
def test_2015_2017_model_versions(core, provider, model, code):
    # The client refuses unknown versions itself; send the body directly to see the server's answer.
    with pytest.raises(core.errors.ValidationError):
        build(core, "text_to_model", prompt="x", model=model)
    exc = _raises(core.errors.InvalidModelVersion,
                  lambda: provider._call("POST", "/v3/generation/text-to-model",
                                         json={"prompt": "x", "model": model}))
    assert (exc.http_status, exc.code) == (400, code)


def test_500_1000_server_error_after_bounded_retries(core, provider, emulator):
    emulator.set_faults("500:balance:10")
    exc = _raises(core.errors.ServerError, provider.balance)
    assert (exc.http_status, exc.code) == (500, 1000)
    attempts = [r for r in api_log(emulator) if r["path"] == "/v3/account/balance"]
    assert len(attempts) == core.http.RetryPolicy().max_attempts


# --------------------------------------------------------------------------- faults on reads

READ_TARGETS = {
    "get": lambda p, ids: p.get_task(ids[0]),
    "list": lambda p, ids: p.poll_tasks(ids),
    "balance": lambda p, ids: p.balance(),
    "usage": lambda p, ids: p.usage(),
}


@pytest.mark.parametrize("kind", ["429", "500", "503", "malformed", "reset_before", "reset_after",
                                  "truncate", "slow"])
@pytest.mark.parametrize("target", sorted(READ_TARGETS))
def test_reads_are_retried_through_faults(core, provider, emulator, kind, target):
    task_id = provider.create_task(build(core, "text_to_model", prompt="a bench"))
    emulator.configure(slow_seconds=0.2)
    emulator.set_faults(f"{kind}:{target}")
    result = READ_TARGETS[target](provider, [task_id])
    assert result is not None
    hits = [r for r in api_log(emulator) if r["fault"] == f"{kind}:{target}"]
    assert len(hits) == 1
    later = [r for r in api_log(emulator) if r["seq"] > hits[0]["seq"]]
    if kind != "slow":
        assert later and later[-1]["status"] == 200  # retried once, then fine
    if kind == "429":
        assert 1.0 in provider.sleeps  # Retry-After honoured
    assert len(emulator.tasks()) == 1


# --------------------------------------------------------------------------- faults on create


@pytest.mark.parametrize("kind,code", [("429", 1007), ("2000", 2000)])
def test_refused_create_is_resubmitted(core, provider, emulator, kind, code):
    emulator.set_faults(f"{kind}:create")
    task_id = provider.create_task(build(core, "text_to_model", prompt="a stool"))
    sent = creates(emulator)
    assert [r["fault"] for r in sent] == [f"{kind}:create", None]
    assert list(emulator.tasks()) == [task_id]
    if kind == "429":
        assert provider.sleeps[0] == 1.0


def test_refused_create_gives_up_after_bounded_attempts(core, make_provider, emulator):
    provider = make_provider(create_attempts=3)
    emulator.set_faults("2000:create:10")
    with pytest.raises(core.errors.ConcurrencyLimited):
        provider.create_task(build(core, "text_to_model", prompt="a stool"))
    assert len(creates(emulator)) == 3 and emulator.tasks() == {}


def test_create_not_sent_is_retried(core, make_provider):
    check_create_not_sent_is_retried(core, make_provider)


@pytest.mark.parametrize("kind", ["reset_before", "malformed", "500", "503"])
def test_create_outcome_unknown_then_reconciled_as_not_created(core, provider, emulator, kind):
    request = build(core, "text_to_model", prompt="a stool")
    emulator.set_faults(f"{kind}:create")
    with pytest.raises(core.errors.CreateOutcomeUnknown) as info:
        provider.create_task(request)
    exc = info.value
    assert exc.request is not None and exc.body == request.to_body()
    assert abs(exc.sent_at - time.time()) < 30
    assert len(creates(emulator)) == 1  # never replayed blindly
    assert provider.reconcile_create(exc.request, exc.sent_at) is None
    assert emulator.tasks() == {}
    task_id = provider.create_task(request)  # now safe to submit again
    assert list(emulator.tasks()) == [task_id]


def test_reset_after_create_is_adopted_by_reconcile(core, provider, emulator):
    other = provider.create_task(build(core, "text_to_model", prompt="another thing"))
    request = build(core, "text_to_model", prompt="a stool", texture=False)
    emulator.set_faults("reset_after:create")
    with pytest.raises(core.errors.CreateOutcomeUnknown) as info:
        provider.create_task(request)
    assert len(creates(emulator)) == 2
    task_id = provider.reconcile_create(info.value.request, info.value.sent_at)
    created = set(emulator.tasks()) - {other}
    assert created == {task_id}
    assert len(creates(emulator)) == 2  # reconciling never creates
    usage = provider.usage()
    assert sorted(u.task_id for u in usage) == sorted([other, task_id])
    # Rebuilt from scratch (as after a restart): same answer.
    assert provider.reconcile_create(build(core, "text_to_model", prompt="a stool", texture=False),
                                     info.value.sent_at) == task_id


def test_reconcile_tells_identical_requests_apart_with_exclude(core, provider, emulator):
    request = build(core, "text_to_model", prompt="twin")
    emulator.set_faults("reset_after:create:2")
    found = []
    for _ in range(2):
        with pytest.raises(core.errors.CreateOutcomeUnknown) as info:
            provider.create_task(request)
        found.append(provider.reconcile_create(request, info.value.sent_at, exclude=found))
    assert set(found) == set(emulator.tasks()) and len(set(found)) == 2
    assert provider.reconcile_create(request, info.value.sent_at, exclude=found) is None


def test_reconcile_with_local_file_input(core, provider, emulator, tmp_path):
    image = write_png(tmp_path / "front.png", 64, 64)
    request = build(core, "image_to_model", input=str(image))
    emulator.set_faults("reset_after:create")
    with pytest.raises(core.errors.CreateOutcomeUnknown) as info:
        provider.create_task(request)
    assert info.value.request.to_body()["input"].startswith("file_")
    # The request as the job engine rebuilds it still names the local file.
    assert provider.reconcile_create(request, info.value.sent_at) == next(iter(emulator.tasks()))


def test_read_timeout_on_create_is_outcome_unknown(core, make_provider, emulator):
    provider = make_provider(timeout=(5, 0.3))
    emulator.configure(slow_seconds=1.0)
    emulator.set_faults("slow:create")
    with pytest.raises(core.errors.CreateOutcomeUnknown) as info:
        provider.create_task(build(core, "text_to_model", prompt="slowpoke"))
    assert isinstance(info.value.cause, core.errors.NetworkError)
    deadline = time.monotonic() + 10
    while not emulator.tasks() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert provider.reconcile_create(info.value.request, info.value.sent_at) == next(iter(emulator.tasks()))
    assert len(creates(emulator)) == 1


# --------------------------------------------------------------------------- downloads


@pytest.fixture
def finished(core, provider):
    return run(provider, build(core, "text_to_model", prompt="a small crate"))


def _model_bytes(emulator, task):
    return Path(emulator.tasks()[task.task_id]["files"]["model"]).read_bytes()


@pytest.mark.parametrize("fault", ["truncate:download", "503:download", "reset_before:download",
                                   "500:download"])
def test_download_retries_cut_or_failed_transfers(core, provider, emulator, finished, tmp_path, fault):
    emulator.set_faults(fault)
    dest = tmp_path / "out" / "model.glb"
    provider.download(finished.output.model_url, dest, task_id=finished.task_id)
    assert dest.read_bytes() == _model_bytes(emulator, finished)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.glb"]
    downloads = assert_no_key_sent_to_files(emulator)
    assert [r["fault"] for r in downloads] == [fault, None]


def test_a_cut_download_resumes_with_range_where_the_server_allows(core, provider, emulator, finished,
                                                                   tmp_path):
    """Each cut transfer keeps its bytes: the next request asks only for the rest."""
    emulator.set_faults("truncate:download:4")
    dest = tmp_path / "out" / "model.glb"
    provider.download(finished.output.model_url, dest, task_id=finished.task_id)
    whole = _model_bytes(emulator, finished)
    assert dest.read_bytes() == whole
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.glb"]
    downloads = [r for r in emulator.requests() if r["kind"] == "download"]
    assert len(downloads) == 5 and downloads[0].get("range") is None
    starts = [int(r["range"].removeprefix("bytes=").rstrip("-")) for r in downloads[1:]]
    assert starts == sorted(starts) and 0 < starts[0] < starts[-1] < len(whole)
    assert [r["status"] for r in downloads] == [200] + [206] * 4


def test_download_gives_up_and_leaves_nothing(core, provider, emulator, finished, tmp_path):
    emulator.set_faults("reset_before:download:5")
    dest = tmp_path / "out" / "model.glb"
    with pytest.raises(core.errors.DownloadError) as info:
        provider.download(finished.output.model_url, dest, task_id=finished.task_id, max_attempts=3)
    assert "sig=" not in info.value.user_message()  # signed URLs are not shown
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_expired_url_is_refreshed_by_querying_the_task(core, provider, emulator, finished, tmp_path):
    emulator.set_faults("expire:download")
    dest = tmp_path / "model.glb"
    provider.download(finished.output.model_url, dest, task_id=finished.task_id, output_key="model_url")
    assert dest.read_bytes() == _model_bytes(emulator, finished)
    log = api_log(emulator)
    expired = next(r for r in log if r["fault"] == "expire:download")
    after = [(r["method"], r["path"], r["kind"]) for r in log if r["seq"] > expired["seq"]]
    assert after == [("GET", f"/v3/tasks/{finished.task_id}", "api"),
                     ("GET", urlsplit(finished.output.model_url).path, "download")]
    assert_no_key_sent_to_files(emulator)


def test_really_expired_url_and_refresh_of_a_multiview_view(core, provider, emulator, tmp_path):
    image = run(provider, build(core, "text_to_image", prompt="a hat"))
    views = run(provider, build(core, "generate_multiview_image", input=image.task_id))
    emulator.configure(url_ttl_seconds=1)
    views = provider.get_task(views.task_id)
    time.sleep(2.2)
    url = views.output.multiview["left_view_url"]
    dest = provider.download(url, tmp_path / "left.png", task_id=views.task_id, output_key="multiview")
    files = emulator.tasks()[views.task_id]["files"]
    assert dest.read_bytes() == Path(files["left_view"]).read_bytes()
    statuses = [r["status"] for r in emulator.requests() if r["kind"] == "download"]
    assert statuses == [403, 200]


def test_links_expiring_again_and_again_are_refreshed_each_time(core, provider, emulator, finished,
                                                                tmp_path):
    emulator.set_faults("expire:download:4")
    dest = tmp_path / "model.glb"
    provider.download(finished.output.model_url, dest, task_id=finished.task_id)
    assert dest.read_bytes() == _model_bytes(emulator, finished)
    assert [r["status"] for r in emulator.requests() if r["kind"] == "download"] == [403] * 4 + [200]
    # Without a task id there is nothing to refresh from.
    emulator.set_faults("expire:download")
    with pytest.raises(core.errors.DownloadError) as info:
        provider.download(finished.output.model_url, tmp_path / "again.glb")
    assert info.value.http_status == 403
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.glb"]


def test_refreshing_expired_links_is_bounded_by_time(core, emulator, finished, tmp_path):
    """A link that never works again (files gone) stops after `patience`, whatever the count."""
    emulator.set_faults("expire:download:100000")
    session = core.http.make_session(core.http.ProxyConfig(mode="none"))
    clock = FakeClock()
    refreshes = []

    def refresh():
        refreshes.append(clock.monotonic())
        return finished.output.model_url

    started = clock.monotonic()
    with pytest.raises(core.errors.DownloadError, match="kept failing for 2 s"):
        core.download.download_file(session, finished.output.model_url, tmp_path / "m.glb",
                                    refresh_url=refresh, patience=2.0, sleep=clock.sleep,
                                    clock=clock.monotonic)
    assert clock.monotonic() - started < 10 and len(refreshes) >= 3
    assert list(tmp_path.iterdir()) == []
    emulator.clear_faults()


def test_download_size_cap_aborts_early(core, provider, emulator, tmp_path):
    url = emulator.big_file(8)
    dest = tmp_path / "big.bin"
    with pytest.raises(core.errors.DownloadError, match="MB"):
        provider.download(url, dest, max_bytes=1024 * 1024)
    assert list(tmp_path.iterdir()) == []


def test_download_streams_with_flat_memory(core, provider, emulator, tmp_path):
    url = emulator.big_file(64)
    dest = tmp_path / "big.bin"
    tracemalloc.start()
    try:
        provider.download(url, dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dest.stat().st_size == 64 * 1024 * 1024
    assert peak < 16 * 1024 * 1024, peak


def test_download_never_sends_the_api_key(core, emulator, finished, tmp_path):
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {emulator.api_key}"  # even a careless session
    core.download.download_file(session, finished.output.model_url, tmp_path / "m.glb")
    assert_no_key_sent_to_files(emulator)
    with pytest.raises(core.errors.DownloadError, match="http"):
        core.download.download_file(session, "file:///etc/passwd", tmp_path / "x")


# --------------------------------------------------------------------------- keys, proxies, logs


def test_wrong_key_prefix_sends_nothing(core, emulator):
    for key in ("tcli_0123456789abcdef", "sk-0123456789", ""):
        with pytest.raises(core.errors.InvalidApiKeyFormat):
            core.v3.TripoV3Provider(key, base_url=emulator.base_url)
    assert api_log(emulator) == []


def test_plain_http_refused_for_remote_hosts(core, emulator):
    with pytest.raises(core.errors.ValidationError, match="https"):
        core.v3.TripoV3Provider(emulator.api_key, base_url="http://openapi.tripo3d.ai")


def test_proxy_modes_against_the_emulator(core, make_provider, emulator, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    fast = core.http.RetryPolicy(max_attempts=2)
    assert make_provider(proxy=core.http.ProxyConfig("none")).balance().balance == 10000.0
    with pytest.raises(core.errors.NetworkError) as info:  # system: the environment's dead proxy
        make_provider(proxy=core.http.ProxyConfig("system"), retry=fast).balance()
    assert info.value.sent is False
    with pytest.raises(core.errors.NetworkError):
        make_provider(proxy=core.http.ProxyConfig("custom", dead_proxy), retry=fast).balance()
    assert len([r for r in api_log(emulator) if r["path"] == "/v3/account/balance"]) == 1


def test_api_key_never_logged(core, provider, emulator, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    emulator.set_faults("reset_after:create,expire:download,503:get")
    with pytest.raises(core.errors.CreateOutcomeUnknown) as info:
        provider.create_task(build(core, "text_to_model", prompt="a key"))
    task_id = provider.reconcile_create(info.value.request, info.value.sent_at)
    task = wait_all(provider, [task_id])[task_id]
    provider.download(task.output.model_url, tmp_path / "m.glb", task_id=task_id)
    assert emulator.api_key not in caplog.text  # no logger at all, urllib3's included
    ours = "\n".join(r.getMessage() for r in caplog.records if "tripo_blender" in r.name)
    assert "Reconciled" in ours and "expired" in ours
    assert "sig=" not in ours  # our logs never show signed URLs' secrets


def test_cost_estimate_matches_what_the_emulator_bills(core, provider):
    request = build(core, "text_to_model", prompt="a desk", texture_quality="detailed", quad=True)
    estimate = provider.estimate(request)
    task = run(provider, request)
    assert estimate.credits == task.credits_consumed == 70.0
