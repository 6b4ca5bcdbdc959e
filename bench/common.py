"""What the benchmarks share: a running world of real processes, figures, Redis hygiene, RSS.

A `World` is moto_server, `python -m workers` and `python -m bot` (HTTP) as child processes, the
Slack emulator in this process, and the real Redis under a key prefix of its own, removed on
stop. People act on it as Slack would: signed slash commands and button clicks over HTTP.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config
from redis import Redis

from bench.latency_proxy import LatencyProxy
from sandbox import seed as _seed
from sandbox.processes import Process, start_bot, start_moto, start_workers
from sandbox.seed import seed_appmesh_service
from sandbox.simulator import TrafficSimulator
from sandbox.slack_emulator import SlackEmulator
from sandbox.slack_user import block_actions_body, command_body, signed_headers
from sandbox.world import PUBLICATION_LAG
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.clients import AwsClients
from workers.domain.deployment import Deployment
from workers.engine.store import Store
from workers.runtime.catalogue_file import CatalogueFile
from workers.runtime.context import Runtime
from workers.runtime.lateness import percentile
from workers.runtime.queues import RqScheduler, queue_names, rq_queue

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "xoxb-bench-token"
SECRET = "bench-signing-secret"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/{key}:{tag}"
CHANNEL = "C0BENCH"
#: The requester, and someone else who may approve (four-eyes is on by default).
DEV, OPS = "U0DEV", "U0OPS"
MESH = "prod-mesh"


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
    job_ids: set[bytes] = set()
    for name in queue_names(prefix):
        job_ids.update(redis.lrange(f"rq:queue:{name}", 0, -1))
        for registry in redis.scan_iter(f"rq:*:{name}"):
            if redis.type(registry) == b"zset":
                job_ids.update(redis.zrange(registry, 0, -1))
        rq_queue(name, redis).empty()
    keys = set(redis.scan_iter(f"*{prefix}*"))
    for job_id in job_ids:
        text = job_id.decode()
        keys.update((f"rq:job:{text}".encode(), f"rq:results:{text}".encode()))
    deleted = 0
    key_list = list(keys)
    for start in range(0, len(key_list), 500):
        deleted += int(redis.delete(*key_list[start : start + 500]))
    return deleted


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
        cloudmap = clients.servicediscovery.create_service(
            Name=key,
            NamespaceId=first["namespace_id"],
            CreatorRequestId=f"{first['namespace_id']}-{key}",
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
            HealthCheckCustomConfig={"FailureThreshold": 1},
        )["Service"]
        node = f"{key}-v1"
        node_arn = _seed._ensure_virtual_node(
            clients.appmesh, MESH, node, "http", first["namespace"], cloudmap_name=key
        )
        _seed._ensure_virtual_router(clients.appmesh, MESH, f"{key}-vr", "http")
        task_definition = _seed._ensure_task_definition(
            clients.ecs, key, IMAGE.format(key=key, tag="v1"), node_arn
        )
        _seed._ensure_ecs_service(
            clients.ecs,
            cluster=services[key],
            name=key,
            task_definition_arn=task_definition,
            desired_count=2,
            registry_arn=cloudmap["Arn"],
            subnet_id=first["subnet"],
            group_id=first["security_group"],
        )
        clients.appmesh.create_route(
            meshName=MESH,
            virtualRouterName=f"{key}-vr",
            routeName=f"{key}-route",
            spec=_seed._route_spec("http", key, node, True),
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, keys[1:]))
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
@dataclass
class World:
    """moto + workers + bot processes, the Slack emulator, and Redis under a prefix of its own."""

    name: str
    #: catalogue key -> ECS cluster
    services: Mapping[str, str]
    defaults: Mapping[str, object]
    overrides: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    worker_env: Mapping[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path("/tmp"))
    seed_threads: int = 8
    #: Services whose users send traffic (request counters written to CloudWatch every 0.5 s).
    traffic: Sequence[str] = ()
    requests_per_second: float = 200.0
    #: Seconds added to each of the workers' AWS calls (a proxy in front of moto), 0 for none.
    aws_latency: float = 0.0
    prefix: str = ""
    seed_seconds: float = 0.0
    moto: Process | None = None
    workers: Process | None = None
    bot: Process | None = None
    endpoint: str = ""
    bot_url: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> World:
        self.prefix = self.prefix or new_prefix(self.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis = Redis.from_url(REDIS_URL)
        self.redis.ping()
        self.slack = SlackEmulator(channels=[CHANNEL]).start()
        self.moto, self.endpoint = start_moto(self.workdir)
        self.clients = aws_clients(self.endpoint)
        self.seed_seconds = seed(self.clients, self.services, self.seed_threads)
        catalogue: dict[str, Any] = {"defaults": dict(self.defaults), "services": {}}
        for key, cluster in self.services.items():
            catalogue["services"][key] = {
                "cluster": cluster,
                "mesh": MESH,
                "virtual_router": f"{key}-vr",
                "route": f"{key}-route",
                **dict(self.overrides.get(key, {})),
            }
        path = self.workdir / "canary.yaml"
        path.write_text(yaml.safe_dump(catalogue))
        self.env = {
            "REDIS_URL": REDIS_URL,
            "CANARY_REDIS_PREFIX": self.prefix,
            "CANARY_CONFIG": str(path),
            "AWS_ENDPOINT_URL": self.endpoint,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack.base_url,
            "CANARY_READY_POLL": "0.5",
            "LOG_LEVEL": "INFO",
        }
        worker_env = {**self.env, **self.worker_env}
        self.proxy: LatencyProxy | None = None
        if self.aws_latency > 0:
            self.proxy = LatencyProxy(self.endpoint, self.aws_latency).__enter__()
            worker_env["AWS_ENDPOINT_URL"] = self.proxy.url
        self.workers = start_workers(worker_env, self.workdir)
        self.bot, self.bot_url = start_bot(self.env, self.workdir)
        self.rt = Runtime(
            redis=self.redis,
            store=Store(self.redis, self.prefix),
            scheduler=RqScheduler(self.redis, self.prefix),
            aws=lambda: self.clients,
            catalogue_loader=CatalogueFile(path),
        )
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()
        return self

    def _tick(self) -> None:
        sims = [
            TrafficSimulator(
                self.clients,
                cluster=self.services[key],
                mesh=MESH,
                virtual_router=f"{key}-vr",
                route=f"{key}-route",
                requests_per_second=self.requests_per_second,
                publication_lag=PUBLICATION_LAG,
            )
            for key in self.traffic
        ]
        last = time.time()
        while sims and not self._stop.wait(0.5):
            now = time.time()
            for sim in sims:
                with contextlib.suppress(Exception):  # a route being rewritten: next tick
                    sim.tick(now - last)
            last = now

    def stop(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
            self._ticker.join(timeout=5)
        for proc in (self.bot, self.workers, self.moto):
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop()
        with contextlib.suppress(Exception):
            self.slack.stop()
        if getattr(self, "proxy", None) is not None:
            self.proxy.__exit__()
        clean_redis(self.redis, self.prefix)

    def __enter__(self) -> World:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # acting as Slack ----------------------------------------------------------------------------
    def post(self, body: str, timeout: float = 10.0) -> tuple[int, str, float]:
        """POST a signed body to the bot; (status, body, seconds until the response)."""
        headers = {k: v[0] for k, v in signed_headers(body, secret=SECRET).items()}
        request = urllib.request.Request(
            f"{self.bot_url}/slack/events", data=body.encode(), headers=headers, method="POST"
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read().decode()
            return answer.status, text, time.perf_counter() - started

    def command(self, text: str, user: str = DEV) -> tuple[int, str, float]:
        body = command_body(
            text, user=user, channel=CHANNEL, response_url=self.slack.response_url()
        )
        return self.post(body)

    def click(self, action_id: str, value: str, user: str = OPS) -> tuple[int, str, float]:
        body = block_actions_body(
            action_id,
            value,
            user=user,
            channel=CHANNEL,
            message_ts="1700000000.000009",
            thread_ts="1700000000.000001",
            response_url=self.slack.response_url(),
        )
        return self.post(body)

    def deploy(self, key: str, tag: str = "v2", user: str = DEV) -> None:
        status, text, _ = self.command(f"deploy {key} {IMAGE.format(key=key, tag=tag)}", user)
        if status != 200:
            raise RuntimeError(f"deploy {key}: HTTP {status} {text}")

    # reading -----------------------------------------------------------------------------------
    def deployment_of(self, key: str) -> Deployment | None:
        holder = self.rt.store.lock_holder(key)
        return self.rt.store.get(holder) if holder else None

    def router(self, key: str) -> AppMeshRouter:
        return AppMeshRouter(self.clients.appmesh, MESH, f"{key}-vr", f"{key}-route")

    def wait_all(
        self,
        keys: Iterable[str],
        until: Callable[[Deployment], bool],
        timeout: float,
        poll: float = 0.2,
    ) -> dict[str, Deployment]:
        """Wait until each service's running deployment satisfies `until`."""
        pending, done = set(keys), {}
        deadline = time.monotonic() + timeout
        while pending:
            for key in list(pending):
                dep = self.deployment_of(key)
                if dep is not None and until(dep):
                    done[key] = dep
                    pending.discard(key)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} deployments not there after {timeout}s")
            time.sleep(poll)
        return done

    def workers_log(self) -> str:
        return self.workers.output()[-3000:] if self.workers else ""
