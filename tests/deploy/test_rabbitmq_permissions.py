"""deploy/rabbitmq/permissions.json against shared/topology.py: each service's configure,
write and read patterns cover every name it declares, binds, publishes to or consumes, and
no more than the platform's names (a worker credential cannot read the API's queues)."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from shared.settings import RabbitMQSettings
from shared.topology import Topology
from tests.deploy.manifests import DEPLOY
from transcode_service.lease import LeaseManager

PERMISSIONS = json.loads((DEPLOY / "rabbitmq" / "permissions.json").read_text())
TOPOLOGY = Topology.from_settings(RabbitMQSettings())
DEFAULT_EXCHANGE = "amq.default"  # the name RabbitMQ checks for the "" exchange


def _allows(user: str, kind: str, name: str) -> bool:
    return re.search(PERMISSIONS[user][kind], name) is not None


def _lease_name(kind: str) -> str:
    return LeaseManager(None, "").name(kind, str(uuid.uuid4()))  # type: ignore[arg-type]


@pytest.mark.parametrize("user", ["video-api", "video-worker"])
def test_both_services_can_declare_and_bind_the_whole_topology(user: str) -> None:
    # declare_topology runs in both services at start-up.
    for name in TOPOLOGY.all_queues() + TOPOLOGY.all_exchanges():
        assert _allows(user, "configure", name), name
    for queue in TOPOLOGY.all_queues():  # queue.bind needs write on the queue...
        assert _allows(user, "write", queue), queue
    for exchange in TOPOLOGY.all_exchanges():  # ...and read on the exchange
        assert _allows(user, "read", exchange), exchange


def test_api_publishes_jobs_and_consumes_events_and_dead_letters() -> None:
    assert _allows("video-api", "write", TOPOLOGY.jobs_exchange)
    for queue in (TOPOLOGY.events_queue, TOPOLOGY.dead_letter_watch_queue):
        assert _allows("video-api", "read", queue)
    # Not the worker's business:
    for exchange in (TOPOLOGY.events_exchange, TOPOLOGY.dead_letter_exchange, DEFAULT_EXCHANGE):
        assert not _allows("video-api", "write", exchange), exchange
    for queue in (TOPOLOGY.cover_queue, TOPOLOGY.transcode_queue):
        assert not _allows("video-api", "read", queue), queue
    assert not _allows("video-api", "configure", _lease_name("transcode"))


def test_worker_consumes_jobs_publishes_events_retries_dead_letters_and_holds_leases() -> None:
    for queue in (TOPOLOGY.cover_queue, TOPOLOGY.transcode_queue):
        assert _allows("video-worker", "read", queue)
    # Events, dead letters, and retries through the default exchange into the delay queues.
    for exchange in (TOPOLOGY.events_exchange, TOPOLOGY.dead_letter_exchange, DEFAULT_EXCHANGE):
        assert _allows("video-worker", "write", exchange), exchange
    for kind in ("cover", "transcode", "chunk"):
        assert _allows("video-worker", "configure", _lease_name(kind))
    # A leaked worker credential cannot read the API's queues or publish jobs.
    for queue in (TOPOLOGY.events_queue, TOPOLOGY.dead_letter_watch_queue):
        assert not _allows("video-worker", "read", queue), queue
    assert not _allows("video-worker", "write", TOPOLOGY.jobs_exchange)


@pytest.mark.parametrize("user", ["video-api", "video-worker"])
@pytest.mark.parametrize(
    "name", ["other_app.jobs", "xvideo_events", "video_events.x", "amq.topic", "video.lease"]
)
def test_nothing_outside_the_platform(user: str, name: str) -> None:
    for kind in ("configure", "write", "read"):
        assert not _allows(user, kind, name), (kind, name)


def test_readme_gives_the_exact_commands() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for user, perms in PERMISSIONS.items():
        if user.startswith("_"):
            continue
        command = (
            f"rabbitmqctl set_permissions -p / {user} "
            f"'{perms['configure']}' '{perms['write']}' '{perms['read']}'"
        )
        assert command in readme, user
