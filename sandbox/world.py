"""The sandbox's world: Redis, moto, the Slack emulator, the bot and the workers, plus traffic.

Both `python -m sandbox` and the end-to-end tests build one. The product runs as in production
(`python -m bot` over HTTP, `python -m workers`); only AWS, Redis and Slack are stand-ins, and
time is compressed to seconds through the catalogue and a few CANARY_* variables.

Each service picks its traffic backend in its entry: App Mesh by default (sandbox.seed),
`{"router": "alb"}` for an ECS service behind an ALB listener rule (sandbox.seed_alb), or
`{"router": "ecs"}` for ECS's own LINEAR deployments behind an ALB (sandbox.seed_ecs_native; the
served moto answers them through sandbox.ecs_moto).

The engine's end-to-end and fault tests use one without the bot (`bot=False`, see tests.stack):
they call the API in-process through `rt`, kill the workers and `start_worker()` new ones.

The benchmarks (bench/) build one too, with hundreds of services: their own catalogue defaults
and engine timings, a `seeder` that seeds every App Mesh service at once, traffic for a few
services only, and `aws_front` to put a latency proxy or an AWS stand-in before moto.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from redis import Redis

from sandbox.processes import Process, start_bot, start_moto, start_redis, start_workers
from sandbox.seed import seed_appmesh_service
from sandbox.seed_alb import seed_alb_service
from sandbox.seed_ecs_native import seed_ecs_native_service
from sandbox.simulator import (
    AlbTrafficSimulator,
    EcsTrafficSimulator,
    ServedEcsDeployments,
    TrafficSimulator,
)
from sandbox.slack_emulator import Posted, SlackEmulator, Upload
from sandbox.slack_user import SlackUser
from workers.aws.alb.router import AlbRouter
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.clients import AwsClients, sandbox_clients
from workers.domain.deployment import Deployment
from workers.engine.store import Store
from workers.runtime.catalogue_file import CatalogueFile
from workers.runtime.context import Runtime
from workers.runtime.queues import RqScheduler, queue_names, rq_queue
from workers.slack.buttons import APPROVE

log = logging.getLogger(__name__)

#: Catalogue defaults with time compressed to seconds (a step bakes 3 s, checks every second).
FAST_DEFAULTS: dict[str, Any] = {
    "bake": "3s",
    "analysis_interval": "1s",
    "metric_period": "1s",
    "metric_lag": "2s",
    "min_requests": 30,
    "post_promotion_bake": "3s",
    "ready_timeout": "30s",
    "gate_timeout": "5m",
}
#: Seconds before simulated traffic reaches CloudWatch: CloudWatch's lag at the sandbox's scale.
#: A second of traffic is stamped at its start and published once it is over, so its period is
#: complete in CloudWatch about PUBLICATION_LAG + TRAFFIC_TICK after its start, well before
#: `metric_lag` after its end, when the checks first read it.
PUBLICATION_LAG = 1.4
#: How often the simulated users' traffic thread wakes to publish the seconds gone by.
TRAFFIC_TICK = 0.5
#: Engine timings of the same scale (watchdog, readiness polling, the run lock of a dead job).
FAST_ENV = {
    "CANARY_WATCHDOG_GRACE": "2",
    "CANARY_WATCHDOG_INTERVAL": "0.5",
    "CANARY_READY_POLL": "0.5",
    "CANARY_RUN_LOCK_SECONDS": "5",
}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/{key}:{tag}"
CLUSTER, MESH = "prod", "prod-mesh"
CHANNEL = "C0DEPLOYS"
#: The people of the sandbox's workspace: id -> display name.
PEOPLE = {"U0DANA": "dana", "U0SAM": "sam", "U0LEE": "lee"}
DANA, SAM, LEE = "U0DANA", "U0SAM", "U0LEE"
#: Five-xx rate of each image tag the simulated users hit (other tags: 0.2 %).
ERROR_RATES = {"v3": 0.2}
#: Latency factor of each image tag behind an ALB (others: 1): v5 answers twice as slowly.
LATENCY_FACTORS = {"v5": 2.0}
TOKEN = "xoxb-sandbox-token"
SECRET = "sandbox-signing-secret"
#: Words in the card's status once the deployment is over (see workers.slack.thread).
FINAL_STATUSES = ("Done ✅", "Rolled back ❌", "Failed ⚠")


def aws_clients(endpoint: str) -> AwsClients:
    """boto3 clients pointed at the moto server, with throwaway credentials."""
    return sandbox_clients(endpoint)


def service_entry(key: str, **overrides: Any) -> dict[str, Any]:
    """A catalogue entry for a service seeded by sandbox.seed."""
    return {
        "cluster": CLUSTER,
        "mesh": MESH,
        "virtual_router": f"{key}-vr",
        "route": f"{key}-route",
        **overrides,
    }


def alb_service_entry(key: str, listener_rule: str, **overrides: Any) -> dict[str, Any]:
    """A catalogue entry for a service seeded by sandbox.seed_alb (its rule's ARN is only known
    once seeded, hence the argument)."""
    return {"router": "alb", "cluster": CLUSTER, "listener_rule": listener_rule, **overrides}


def ecs_service_entry(key: str, **overrides: Any) -> dict[str, Any]:
    """A catalogue entry for a service seeded by sandbox.seed_ecs_native."""
    return {
        "router": "ecs",
        "cluster": CLUSTER,
        "service": key,
        # ECS's LINEAR 25 %: the default steps are not equal increments (docs/ECS.md).
        "steps": [25, 50, 75, 100],
        **overrides,
    }


def is_ecs(entry: Mapping[str, Any]) -> bool:
    """True when a World's service entry asks for ECS's own deployments (router ecs)."""
    return entry.get("router") == "ecs"


def is_alb(entry: Mapping[str, Any]) -> bool:
    """True when a World's service entry asks for the ALB backend."""
    return entry.get("router") == "alb"


def prefix_keys(redis: Redis, prefix: str) -> set[bytes]:
    """Every key of this prefix, RQ's included: its jobs are named by uuid, found through the
    prefix's queues and registries."""
    job_ids: set[bytes] = set()
    for name in queue_names(prefix):
        job_ids.update(redis.lrange(f"rq:queue:{name}", 0, -1))
        for registry in redis.scan_iter(f"rq:*:{name}"):
            if redis.type(registry) == b"zset":
                job_ids.update(redis.zrange(registry, 0, -1))
    keys = set(redis.scan_iter(f"*{prefix}*"))
    for job_id in job_ids:
        text = job_id.decode()
        keys.update((f"rq:job:{text}".encode(), f"rq:results:{text}".encode()))
    return keys


def forget_prefix(redis: Redis, prefix: str) -> int:
    """Delete every key of this prefix, RQ's included (`prefix_keys`); return how many."""
    keys = prefix_keys(redis, prefix)
    for name in queue_names(prefix):
        rq_queue(name, redis).empty()
    deleted = 0
    key_list = list(keys)
    for start in range(0, len(key_list), 500):
        deleted += int(redis.delete(*key_list[start : start + 500]))
    return deleted


@dataclass
class World:
    """Everything the bot needs, on 127.0.0.1; `start()` it, or use it as a context manager."""

    workdir: Path
    #: Catalogue entries by service key, each seeded with image tag v1: on App Mesh
    #: (sandbox.seed), or behind an ALB listener rule when the entry says `router: alb`.
    services: Mapping[str, Mapping[str, Any]]
    #: An existing Redis to share (with a key prefix of this world's own); None starts one.
    redis_url: str | None = None
    #: Requests per second each service's simulated users send (default 200).
    rps: Mapping[str, float] = field(default_factory=dict)
    error_rates: Mapping[str, float] = field(default_factory=lambda: dict(ERROR_RATES))
    #: Latency factor of each image tag behind an ALB (sandbox.simulator; others: 1).
    latency_factors: Mapping[str, float] = field(default_factory=lambda: dict(LATENCY_FACTORS))
    #: Shared load noise on every version's latency, per service key (sandbox.simulator).
    latency_noise: Mapping[str, float] = field(default_factory=dict)
    people: Mapping[str, str] = field(default_factory=lambda: dict(PEOPLE))
    #: Start `python -m bot` (False: the workers alone, still posting into the emulator).
    bot: bool = True
    #: More environment for the bot and the workers (LOG_LEVEL=DEBUG, CANARY_HISTORY_KEEP=1, ...).
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: The catalogue's `pipelines:` (docs/CI.md); their tokens go in `extra_env`.
    pipelines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"sandbox{uuid.uuid4().hex[:8]}")
    processes: list[Process] = field(default_factory=list)
    #: The bot is a member of the sandbox's one channel; chat.postMessage is rate-limited.
    slack: SlackEmulator = field(default_factory=lambda: SlackEmulator(channels=[CHANNEL]))
    bot_url: str = ""
    endpoint: str = ""
    env: dict[str, str] = field(default_factory=dict)
    #: Listener rule ARN of each ALB-backed service (router alb or ecs), once seeded.
    rules: dict[str, str] = field(default_factory=dict)
    #: What sandbox.seed_ecs_native made for each router-ecs service (target groups...).
    ecs_seeded: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The catalogue's defaults (time compressed to seconds unless a benchmark says otherwise).
    defaults: Mapping[str, Any] = field(default_factory=lambda: dict(FAST_DEFAULTS))
    #: The engine's timings for the bot and the workers (watchdog, readiness polling, run lock).
    engine_env: Mapping[str, str] = field(default_factory=lambda: dict(FAST_ENV))
    #: The services whose simulated users send traffic (None: every one).
    traffic: Collection[str] | None = None
    #: Seeds every App Mesh service (key -> ECS cluster) in one go, instead of one by one
    #: through sandbox.seed (the benchmarks' hundreds of services).
    seeder: Callable[[AwsClients, Mapping[str, str]], object] | None = None
    #: Given moto's URL, the URL the product's processes use instead: a benchmark's latency
    #: proxy or AWS stand-in in front of moto (None: moto itself).
    aws_front: Callable[[str], str] | None = None
    #: Seconds the seeding of the services took.
    seed_seconds: float = 0.0
    #: Seconds between two wakes of the users' traffic thread (`_traffic`).
    traffic_tick: float = TRAFFIC_TICK
    _stop: threading.Event = field(default_factory=threading.Event)
    _ticker: threading.Thread | None = None
    _started_slack: bool = False

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> World:
        """Start every process, seed AWS and the catalogue, and let the simulated users in."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # This process seeds moto and writes metrics into it: throwaway credentials only.
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "sandbox",
                "AWS_SECRET_ACCESS_KEY": "sandbox",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        if self.redis_url is None:
            redis_proc, self.redis_url = start_redis(self.workdir)
            if redis_proc is not None:
                self.processes.append(redis_proc)
        moto, self.endpoint = start_moto(self.workdir)
        self.processes.append(moto)
        self.clients = aws_clients(self.endpoint)
        catalogue: dict[str, Any] = {"defaults": dict(self.defaults), "services": {}}
        seeding = time.perf_counter()
        if self.seeder is not None:
            mesh = {k: self.cluster_of(k) for k, e in self.services.items() if not e.get("router")}
            self.seeder(self.clients, mesh)
        for key, entry in self.services.items():
            image = IMAGE.format(key=key, tag="v1")
            if is_ecs(entry):
                seeded = seed_ecs_native_service(
                    self.clients, None, key=key, cluster=CLUSTER, image=image
                )
                self.rules[key], self.ecs_seeded[key] = seeded["listener_rule"], seeded
                catalogue["services"][key] = ecs_service_entry(key, **entry)
            elif is_alb(entry):
                seeded = seed_alb_service(self.clients, key=key, cluster=CLUSTER, image=image)
                self.rules[key] = seeded["listener_rule"]
                catalogue["services"][key] = alb_service_entry(key, self.rules[key], **entry)
            else:
                if self.seeder is None:
                    seed_appmesh_service(
                        self.clients, key=key, cluster=self.cluster_of(key), mesh=MESH, image=image
                    )
                catalogue["services"][key] = service_entry(key, **entry)
        if self.pipelines:
            catalogue["pipelines"] = {name: dict(p) for name, p in self.pipelines.items()}
        self.seed_seconds = time.perf_counter() - seeding
        self.catalogue_path = self.workdir / "canary.yaml"
        self.catalogue_path.write_text(yaml.safe_dump(catalogue, sort_keys=False))
        # The stables serve traffic before anyone deploys, as running services do: a deployment
        # first checks that CloudWatch has the stable's series (workers.engine.steps.provision),
        # so a second of it, stamped far enough back to be past the publication lag, is
        # published now, before anyone can deploy; the ticker carries on from here.
        users = self.services if self.traffic is None else self.traffic
        sims = {key: self._simulator(key) for key in users}
        served = datetime.fromtimestamp(time.time() - PUBLICATION_LAG - 1.0, UTC)
        for sim in sims.values():
            sim.tick(1.0, at=served)
        self._ticker = threading.Thread(
            target=self._traffic, args=(sims,), name="traffic", daemon=True
        )
        self._ticker.start()
        self.slack.start()
        self._started_slack = True
        self.env = {
            "REDIS_URL": self.redis_url,
            "CANARY_REDIS_PREFIX": self.prefix,
            "CANARY_CONFIG": str(self.catalogue_path),
            "AWS_ENDPOINT_URL": self.aws_front(self.endpoint) if self.aws_front else self.endpoint,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack.base_url,
            "LOG_LEVEL": "INFO",
            **self.engine_env,
            **self.extra_env,
        }
        redis = Redis.from_url(self.redis_url)
        self.rt = Runtime(
            redis=redis,
            store=Store(redis, self.prefix),
            scheduler=RqScheduler(redis, self.prefix),
            aws=lambda: self.clients,
            catalogue_loader=CatalogueFile(self.catalogue_path),
        )
        self.start_worker()
        if self.bot:
            bot, self.bot_url = start_bot(self.env, self.workdir)
            self.processes.append(bot)

    def start_worker(self) -> Process:
        """Start one more `python -m workers` (e.g. after killing the others with SIGKILL)."""
        n = len(self.workers)
        worker = start_workers(self.env, self.workdir, name=f"workers{n}" if n else "workers")
        self.processes.append(worker)
        return worker

    @property
    def workers(self) -> list[Process]:
        """Every `python -m workers` started so far, killed ones included."""
        return [p for p in self.processes if p.name.startswith("workers")]

    def stop(self) -> None:
        """Stop the traffic, every child process and the emulator; forget this world's keys."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        # The product first (it talks to the others), Redis and moto last.
        for proc in reversed(self.processes):
            with contextlib.suppress(Exception):
                proc.stop()
        if self._started_slack:
            with contextlib.suppress(Exception):
                self.slack.stop()
            self._started_slack = False
        rt = getattr(self, "rt", None)
        if rt is not None and self.shares_redis:
            with contextlib.suppress(Exception):
                forget_prefix(rt.redis, self.prefix)

    @property
    def shares_redis(self) -> bool:
        """True when the world shares someone else's Redis (its keys are then removed on stop)."""
        return not any(p.name == "redis" for p in self.processes)

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def process(self, name: str) -> Process:
        """The child process of that name ("bot", "workers", "moto"...), the newest one."""
        return next(p for p in reversed(self.processes) if p.name == name)

    def cluster_of(self, key: str) -> str:
        """The ECS cluster of service `key` (its entry's `cluster`, else the sandbox's)."""
        return str(self.services[key].get("cluster", CLUSTER))

    def is_alb(self, key: str) -> bool:
        """True when the service `key` is behind an ALB listener rule rather than App Mesh."""
        return is_alb(self.services[key])

    def is_ecs(self, key: str) -> bool:
        """True when the service `key` runs ECS's own deployments (router ecs)."""
        return is_ecs(self.services[key])

    def _simulator(self, key: str) -> TrafficSimulator | AlbTrafficSimulator | EcsTrafficSimulator:
        rps = self.rps.get(key, 200.0)
        if self.is_ecs(key):
            seeded = self.ecs_seeded[key]
            return EcsTrafficSimulator(
                self.clients,
                cluster=CLUSTER,
                service=key,
                deployments=ServedEcsDeployments(self.clients.ecs),
                listener_rule=seeded["listener_rule"],
                stable_group=seeded["target_group_arn"],
                canary_group=seeded["green_target_group_arn"],
                first_task_definition=seeded["task_definition_arn"],
                requests_per_second=rps,
                error_rates=self.error_rates,
                publication_lag=PUBLICATION_LAG,
                latency_factors=self.latency_factors,
                latency_noise=self.latency_noise.get(key, 0.0),
            )
        if self.is_alb(key):
            return AlbTrafficSimulator(
                self.clients,
                cluster=CLUSTER,
                listener_rule=self.rules[key],
                requests_per_second=rps,
                error_rates=self.error_rates,
                publication_lag=PUBLICATION_LAG,
                latency_factors=self.latency_factors,
                latency_noise=self.latency_noise.get(key, 0.0),
            )
        return TrafficSimulator(
            self.clients,
            cluster=self.cluster_of(key),
            mesh=MESH,
            virtual_router=f"{key}-vr",
            route=f"{key}-route",
            requests_per_second=rps,
            error_rates=self.error_rates,
            publication_lag=PUBLICATION_LAG,
        )

    def _traffic(
        self, sims: Mapping[str, TrafficSimulator | AlbTrafficSimulator | EcsTrafficSimulator]
    ) -> None:
        """The users' traffic, a whole second at a time, each second stamped at its start and
        published once it is over. A wake that comes late (a busy machine) publishes every
        second it missed, each whole in its own period: the ticker's timing never leaves a
        period the checks read empty, nor puts two seconds of traffic in one."""
        done = math.floor(time.time())
        while not self._stop.wait(self.traffic_tick):
            over = math.floor(time.time())
            starts = [datetime.fromtimestamp(t, UTC) for t in range(done, over)]
            for key, sim in sims.items():
                try:
                    sim.tick_seconds(starts)
                except Exception as exc:  # a route or node being rewritten: the next tick
                    log.debug("traffic for %s skipped a tick: %s", key, exc)
            done = over

    # people ----------------------------------------------------------------------------------
    def person(self, user: str, channel: str = CHANNEL) -> SlackUser:
        """Someone in the workspace who types commands in `channel` and clicks buttons."""
        return SlackUser(user, self.bot_url, SECRET, self.slack, channel)

    # what the channel shows ------------------------------------------------------------------
    def card(self, dep_id: str, channel: str = CHANNEL) -> Posted | None:
        """The deployment's card (its thread's root message), once posted."""
        tag = f"#{dep_id}:"
        return next((m for m in self.slack.channel(channel) if tag in m.text), None)

    def wait_card(self, dep_id: str, timeout: float = 15.0) -> Posted:
        return self.slack.wait_for(lambda: self.card(dep_id), timeout)

    def thread(self, card: Posted) -> list[Posted]:
        return self.slack.thread(card.channel, card.ts)

    def charts(self, card: Posted) -> list[Upload]:
        """The files (the deployment's charts) shared in the card's thread, oldest first."""
        return [u for u in self.slack.shared_files(card.channel) if u.thread_ts == card.ts]

    def wait_reply(
        self, card: Posted, predicate: Callable[[Posted], bool], timeout: float = 30.0
    ) -> Posted:
        """The first reply of the thread for which `predicate` holds, waiting for it."""

        def found() -> Posted | None:
            return next((m for m in self.thread(card) if predicate(m)), None)

        return self.slack.wait_for(found, timeout)

    def wait_gate(self, card: Posted, after: str | None = None, timeout: float = 30.0) -> Posted:
        """The thread's open gate posted after the message `after`: a reply with an Approve."""

        def is_gate(m: Posted) -> bool:
            newer = after is None or float(m.ts) > float(after)
            return newer and m.button(APPROVE) is not None

        return self.wait_reply(card, is_gate, timeout)

    def wait_over(self, dep_id: str, timeout: float = 60.0) -> Posted:
        """Wait until the card shows the deployment's end and every event of its log has been
        delivered (the card is drawn from the newest state, so it can show the end before the
        last thread reply is posted); return the card."""

        def over() -> Posted | None:
            card = self.card(dep_id)
            if not card or not any(s in card.text for s in FINAL_STATUSES):
                return None
            store = self.rt.store
            return card if store.delivered_upto(dep_id) >= len(store.events(dep_id)) - 1 else None

        try:
            return self.slack.wait_for(over, timeout)
        except AssertionError:
            dep = self.deployment(dep_id)
            state = f"{dep.state.value} ({dep.reason})" if dep else "unknown"
            raise AssertionError(
                f"deployment {dep_id} not over after {timeout}s: {state}; logs in {self.workdir}"
            ) from None

    # what AWS and Redis hold -----------------------------------------------------------------
    def weights(self, key: str) -> dict[str, int]:
        """The service's weights as (moto's) AWS holds them now: the App Mesh route's by virtual
        node, or the ALB listener rule's by target-group name."""
        if key in self.rules:  # router alb, or ecs (ECS moves the same rule's weights)
            return AlbRouter(self.clients.elbv2, listener_rule=self.rules[key]).read_weights()
        return AppMeshRouter(self.clients.appmesh, MESH, f"{key}-vr", f"{key}-route").read_weights()

    def service_image(self, key: str) -> str:
        """The app image of the task definition moto's ECS service `key` runs now."""
        ecs = self.clients.ecs
        service = ecs.describe_services(cluster=CLUSTER, services=[key])["services"][0]
        td = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
        containers = td["taskDefinition"]["containerDefinitions"]
        return str(next(c["image"] for c in containers if c["name"] == "app"))

    def traffic_targets(self) -> set[str]:
        """What traffic can be sent to, on every backend in use: virtual nodes, target groups."""
        backends = {key in self.rules for key in self.services}
        names: set[str] = set()
        if True in backends:
            names |= self.target_groups()
        if False in backends:
            names |= self.virtual_nodes()
        return names

    def virtual_nodes(self) -> set[str]:
        nodes = self.clients.appmesh.list_virtual_nodes(meshName=MESH)["virtualNodes"]
        return {n["virtualNodeName"] for n in nodes}

    def target_groups(self) -> set[str]:
        """The names of every target group the load balancers' account holds."""
        groups = self.clients.elbv2.describe_target_groups()["TargetGroups"]
        return {g["TargetGroupName"] for g in groups}

    def ecs_services(self) -> set[str]:
        """The names of the cluster's ACTIVE ECS services (a deleted one may linger INACTIVE)."""
        ecs = self.clients.ecs
        names: set[str] = set()
        arns = ecs.list_services(cluster=CLUSTER)["serviceArns"]
        for i in range(0, len(arns), 10):  # DescribeServices takes ten at a time
            described = ecs.describe_services(cluster=CLUSTER, services=arns[i : i + 10])
            names |= {s["serviceName"] for s in described["services"] if s["status"] == "ACTIVE"}
        return names

    def cloud_map_services(self) -> set[str]:
        """The names of every Cloud Map service (the App Mesh versions' service discovery)."""
        pages = self.clients.servicediscovery.get_paginator("list_services").paginate()
        return {s["Name"] for page in pages for s in page["Services"]}

    def deployment(self, dep_id: str) -> Deployment | None:
        return self.rt.store.get(dep_id)

    def deployment_of(self, key: str) -> Deployment | None:
        """The deployment running on service `key` now, if any."""
        holder = self.rt.store.lock_holder(key)
        return self.rt.store.get(holder) if holder else None

    def wait_all(
        self,
        keys: Iterable[str],
        until: Callable[[Deployment], bool],
        timeout: float,
        poll: float = 0.2,
    ) -> dict[str, Deployment]:
        """Wait until each service's running deployment satisfies `until`; return them."""
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

    def dep(self, dep_id: str) -> Deployment:
        """The deployment, which must exist."""
        found = self.deployment(dep_id)
        assert found is not None, f"no deployment {dep_id}"
        return found

    def wait(
        self, dep_id: str, until: Callable[[Deployment], bool], timeout: float = 60.0
    ) -> Deployment:
        """Poll the deployment in Redis until `until` holds; return it."""
        deadline = time.monotonic() + timeout
        while not until(dep := self.dep(dep_id)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"deployment {dep_id} still {dep.state} ({dep.reason}) after {timeout}s\n"
                    f"{self.logs(4000)}"
                )
            time.sleep(0.1)
        return dep

    def logs(self, tail: int = 3000) -> str:
        """The last lines of every child's log, for a failure message."""
        return "\n".join(f"--- {p.name}\n{p.output()[-tail:]}" for p in self.processes)
