"""What the benchmarks share: a running world of real processes, figures, Redis hygiene, RSS.

The world is sandbox/world.py's `World` (moto_server, `python -m workers` and `python -m bot`
over HTTP as child processes, the Slack emulator in this process), on the real Redis under a
key prefix of its own, removed on stop: `world()` builds one for a benchmark. People act on it
as Slack would: signed slash commands and button clicks over HTTP (`command`, `click`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError
from redis import Redis

from bench.aws_memory import AwsError, MemoryAws
from bench.aws_standin import service_model
from sandbox import seed as _seed
from sandbox.seed import seed_appmesh_service
from sandbox.slack_user import block_actions_body, command_body, signed_headers
from sandbox.world import CHANNEL, IMAGE, MESH, SECRET, TOKEN, World, forget_prefix
from workers.aws.clients import AwsClients
from workers.runtime.lateness import percentile

__all__ = ["CHANNEL", "IMAGE", "MESH", "SECRET", "TOKEN"]

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: The requester, and someone else who may approve (four-eyes is on by default).
DEV, OPS = "U0DEV", "U0OPS"


# figures ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figures:
    """Median, p99 and max of N samples (nearest-rank percentiles)."""

    n: int
    p50: float
    p99: float
    max: float

    def text(self, unit: str = "ms", scale: float = 1000.0, digits: int = 0) -> str:
        def f(v: float) -> str:
            return f"{v * scale:.{digits}f}"

        return f"p50 {f(self.p50)} / p99 {f(self.p99)} / max {f(self.max)} {unit} (N={self.n})"


def figures(samples: Sequence[float]) -> Figures:
    """Figures of `samples` (seconds or any unit); raises on an empty list."""
    values = list(samples)
    if not values:
        raise ValueError("no samples")
    return Figures(
        n=len(values),
        p50=float(statistics.median(values)),
        p99=float(percentile(values, 99) or 0.0),
        max=max(values),
    )


@dataclass
class Row:
    """One line of the suite's table."""

    measure: str
    reference: str
    goal: str
    result: str
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "-"}[self.met]


def print_table(rows: Iterable[Row]) -> None:
    """The rows as a Markdown table (pasteable into docs/BENCHMARKS.md)."""
    print("| measure | reference | goal | result | goal met |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.measure} | {r.reference} | {r.goal} | {r.result} | {r.verdict} |")


# Redis -----------------------------------------------------------------------------------------
def new_prefix(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


def clean_redis(redis: Redis, prefix: str) -> int:
    """Delete every key of this prefix, RQ's included (jobs named by uuid too); return how many."""
    return forget_prefix(redis, prefix)


# AWS -------------------------------------------------------------------------------------------
def aws_clients(endpoint: str) -> AwsClients:
    """boto3 clients on the moto server (fake credentials, never real ones)."""
    session = boto3.session.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    )
    config = Config(max_pool_connections=32)
    return AwsClients(
        ecs=session.client("ecs", endpoint_url=endpoint, config=config),
        appmesh=session.client("appmesh", endpoint_url=endpoint, config=config),
        servicediscovery=session.client("servicediscovery", endpoint_url=endpoint, config=config),
        cloudwatch=session.client("cloudwatch", endpoint_url=endpoint, config=config),
        elbv2=session.client("elbv2", endpoint_url=endpoint, config=config),
    )


def seed(clients: AwsClients, services: Mapping[str, str], threads: int = 8) -> float:
    """Seed each service (key -> ECS cluster) into moto; return the seconds it took.

    The first service goes alone through sandbox.seed (it creates the VPC, the Cloud Map
    namespace and the mesh all share); the others are created concurrently with the same
    resource shapes, but without sandbox.seed's look-ups, whose Cloud Map listing grows with
    every service seeded (and moto allows one private namespace per VPC, so every cluster's
    services share the first one's namespace).
    """
    # The seeder builds an EC2 client of its own: fake credentials, never real ones.
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    started = time.perf_counter()
    keys = list(services)
    first = seed_appmesh_service(
        clients,
        key=keys[0],
        cluster=services[keys[0]],
        mesh=MESH,
        image=IMAGE.format(key=keys[0], tag="v1"),
    )
    for cluster in sorted(set(services.values())):
        _seed._ensure_cluster(clients.ecs, cluster)

    def one(key: str) -> None:
        seed_one(clients, key, services[key], first)

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, keys[1:]))
    return time.perf_counter() - started


def seed_one(clients: Any, key: str, cluster: str, shared: Mapping[str, str]) -> None:
    """One App Mesh service as sandbox.seed makes it, in the namespace, subnet and security
    group of `shared` (sandbox.seed's names: namespace_id, namespace, subnet, security_group);
    `clients` has boto3-like ecs, appmesh and servicediscovery clients."""
    cloudmap = clients.servicediscovery.create_service(
        Name=key,
        NamespaceId=shared["namespace_id"],
        CreatorRequestId=f"{shared['namespace_id']}-{key}",
        DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
        HealthCheckCustomConfig={"FailureThreshold": 1},
    )["Service"]
    node = f"{key}-v1"
    node_arn = _seed._ensure_virtual_node(
        clients.appmesh, MESH, node, "http", shared["namespace"], cloudmap_name=key
    )
    _seed._ensure_virtual_router(clients.appmesh, MESH, f"{key}-vr", "http")
    task_definition = _seed._ensure_task_definition(
        clients.ecs, key, IMAGE.format(key=key, tag="v1"), node_arn
    )
    _seed._ensure_ecs_service(
        clients.ecs,
        cluster=cluster,
        name=key,
        task_definition_arn=task_definition,
        desired_count=2,
        registry_arn=cloudmap["Arn"],
        subnet_id=shared["subnet"],
        group_id=shared["security_group"],
    )
    clients.appmesh.create_route(
        meshName=MESH,
        virtualRouterName=f"{key}-vr",
        routeName=f"{key}-route",
        spec=_seed._route_spec("http", key, node, True),
    )


class _Direct:
    """A boto3-like client of one service of the stand-in's memory: the seeding's calls made
    without HTTP (thousands of services in seconds), through the same code that answers them."""

    def __init__(self, memory: MemoryAws, service: str) -> None:
        self.memory, self.service = memory, service
        model = service_model(service)
        self.operations = {xform_name(op): op for op in model.operation_names}

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        operation = self.operations[name]

        def call(**request: Any) -> dict[str, Any]:
            try:
                return self.memory.call(self.service, operation, request)
            except AwsError as err:
                error = {"Error": {"Code": err.code, "Message": err.message}}
                raise ClientError(error, operation) from err  # type: ignore[arg-type]

        return call


def seed_memory(memory: MemoryAws, services: Mapping[str, str]) -> float:
    """Seed each service (key -> ECS cluster) into the stand-in's memory as `seed` does into
    moto (the same helpers, the same shapes), but with a Cloud Map namespace per cluster
    ("<cluster>.local", as sandbox.seed names it: moto allows one per VPC, the stand-in has no
    such rule); return the seconds it took."""
    started = time.perf_counter()
    clients = SimpleNamespace(
        ecs=_Direct(memory, "ecs"),
        appmesh=_Direct(memory, "appmesh"),
        servicediscovery=_Direct(memory, "servicediscovery"),
    )
    _seed._ensure_mesh(clients.appmesh, MESH)
    shared: dict[str, dict[str, str]] = {}
    for cluster in sorted(set(services.values())):
        _seed._ensure_cluster(clients.ecs, cluster)
        shared[cluster] = {
            "namespace": f"{cluster}.local",
            "namespace_id": memory.add_namespace(f"{cluster}.local"),
            "subnet": "subnet-0standin00000000",
            "security_group": "sg-0standin000000000",
        }
    for key, cluster in services.items():
        seed_one(clients, key, cluster, shared[cluster])
    return time.perf_counter() - started


# processes -------------------------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    """Every descendant of `pid` (Linux /proc), depth first."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            for child in map(int, text):
                found += [child, *children_of(child)]
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) of a process in kB; Pss shares pages between the forked processes fairly."""
    rss = pss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def weights_changed(read: Callable[[], dict[str, int]], before: dict[str, int]) -> bool:
    try:
        return read() != before
    except Exception:  # a route being rewritten by the worker at that instant
        return False


# the world -------------------------------------------------------------------------------------
def world(
    name: str,
    services: Mapping[str, str],
    defaults: Mapping[str, object],
    *,
    workdir: Path,
    worker_env: Mapping[str, str] | None = None,
    traffic: Sequence[str] = (),
    aws_front: Callable[[str], str] | None = None,
    seeder: Callable[[AwsClients, Mapping[str, str]], object] = seed,
    entries: Mapping[str, Mapping[str, object]] | None = None,
) -> World:
    """sandbox/world.py's world for a benchmark (not started): `services` (key -> ECS cluster)
    on App Mesh, seeded concurrently (`seed`), the catalogue's `defaults`, the real Redis
    (BENCH_REDIS_URL) under a prefix of its own, simulated users for `traffic` only, and
    `aws_front` (a latency proxy or the AWS stand-in) before moto for the product's processes.

    The engine keeps its production timings (watchdog, run lock) except readiness polling;
    `worker_env` adds to them (CANARY_WORKERS, CANARY_WORKER_THREADS...); `entries` adds
    catalogue settings to some services (key -> settings).
    """
    return World(
        workdir=workdir,
        services={
            key: {"cluster": cluster, **(entries or {}).get(key, {})}
            for key, cluster in services.items()
        },
        redis_url=REDIS_URL,
        prefix=new_prefix(name),
        defaults=dict(defaults),
        engine_env={"CANARY_READY_POLL": "0.5"},
        extra_env=dict(worker_env or {}),
        traffic=list(traffic),
        seeder=seeder,
        aws_front=aws_front,
    )


def signed(body: str) -> dict[str, str]:
    """The headers Slack signs a request body with (one value each)."""
    return {k: v[0] for k, v in signed_headers(body, secret=SECRET).items()}


def post(w: World, body: str, timeout: float = 10.0) -> tuple[int, str, float]:
    """POST a signed body to the bot; (status, body, seconds until the response)."""
    request = urllib.request.Request(
        f"{w.bot_url}/slack/events", data=body.encode(), headers=signed(body), method="POST"
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        text = answer.read().decode()
        return answer.status, text, time.perf_counter() - started


def command(w: World, text: str, user: str = DEV) -> tuple[int, str, float]:
    """A signed `/canary <text>`; (status, body, seconds until the ack)."""
    body = command_body(text, user=user, channel=CHANNEL, response_url=w.slack.response_url())
    return post(w, body)


def click(w: World, action_id: str, value: str, user: str = OPS) -> tuple[int, str, float]:
    body = block_actions_body(
        action_id,
        value,
        user=user,
        channel=CHANNEL,
        message_ts="1700000000.000009",
        thread_ts="1700000000.000001",
        response_url=w.slack.response_url(),
    )
    return post(w, body)


def deploy(w: World, key: str, tag: str = "v2", user: str = DEV) -> None:
    status, text, _ = command(w, f"deploy {key} {IMAGE.format(key=key, tag=tag)}", user)
    if status != 200:
        raise RuntimeError(f"deploy {key}: HTTP {status} {text}")
