"""What the provider tests of both tiers share: tests/fast/test_core_client.py drives Tripo v3
and tests/test_aistudio.py 3D AI Studio, each against the emulator (tests/test_engine.py takes
`core` too). No bpy: tests/ is on sys.path in both tiers. A test module imports the `core` and
`provider` fixtures from here and defines its own `make_provider` (with :func:`made_providers`)."""

from __future__ import annotations

import socket
import time

import pytest

from fake_time import Sleeps


@pytest.fixture
def core(tmod):
    """The core modules the provider and engine tests use, by short name."""
    class Core:
        vocabulary = tmod("core.protocol.vocabulary")
        records = tmod("core.protocol.records")
        request_models = tmod("core.protocol.request_models")
        chains = tmod("core.protocol.chains")
        errors = tmod("core.protocol.errors")
        costs = tmod("core.costs")
        http = tmod("core.providers.http")
        download = tmod("core.providers.download")
        provider = tmod("core.providers.provider")
        v3 = tmod("core.providers.tripo_v3")
        studio = tmod("core.providers.aistudio")
        capabilities = tmod("core.providers.capabilities")
        settings = tmod("core.providers.settings")
        jobs = tmod("core.engine.jobs")
        journal = tmod("core.engine.journal")
    return Core


def made_providers(make):
    """The body of a `make_provider` fixture: yields a function that makes a provider with
    ``make(**options)``, injecting a :class:`Sleeps` (kept as ``provider.sleeps``) unless the test
    gives its own sleep, and closes every provider it made once the test is over."""
    made = []

    def make_provider(**options):
        options.setdefault("sleep", Sleeps())
        provider = make(**options)
        provider.sleeps = options["sleep"]
        made.append(provider)
        return provider

    yield make_provider
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider):
    return make_provider()


def build(core, task_type, **params):
    return core.request_models.build_request(task_type, **params)


def wait_all(provider, task_ids, timeout=180.0):
    """Polls until every task is finished (the emulator runs them in real time); returns them by
    id, each with `seen`: the states it was reported in on the way."""
    pending, done, seen = set(task_ids), {}, {}
    deadline = time.monotonic() + timeout
    while pending:
        assert time.monotonic() < deadline, f"tasks not finished: {pending}"
        result = provider.poll_tasks(sorted(pending))
        assert not result.missed, result.missed
        for task_id, task in result.tasks.items():
            seen.setdefault(task_id, []).append(task.status.value)
            if task.is_finished:
                done[task_id] = task
                pending.discard(task_id)
        if pending:
            time.sleep(0.1)
    for task_id, task in done.items():
        task.seen = seen[task_id]
    return done


def run(provider, request):
    task_id = provider.create_task(request)
    return wait_all(provider, [task_id])[task_id]


def check_create_not_sent_is_retried(core, make_provider):
    """A create that never leaves the machine (nothing listens on the port) is retried after the
    provider's sleeps, then reported as not sent: never as an outcome to reconcile."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(core.errors.NetworkError) as info:
        provider.create_task(build(core, "text_to_model", prompt="x"))
    assert info.value.sent is False
    assert not isinstance(info.value, core.errors.CreateOutcomeUnknown)
    assert len(provider.sleeps) == core.http.RetryPolicy().max_attempts - 1
