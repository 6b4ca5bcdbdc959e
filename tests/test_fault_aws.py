"""AWS throttling on 30 % of the engine's requests: rollouts still end cleanly."""

from __future__ import annotations

from types import SimpleNamespace

import botocore.retries.standard
import pytest
from moto import mock_aws

from sandbox.seed import seed_appmesh_service
from tests.aws_faults import FailNext, Throttler
from tests.test_engine import V2, V3, make_world, start
from workers import defaults
from workers.domain.state import State
from workers.domain.versions import AppMeshCanary
from workers.slack.thread import render_event


@pytest.mark.parametrize("backend", ["appmesh", "alb"])
def test_thirty_percent_throttling(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    # botocore's own retries answer throttling; their back-off sleeps are skipped in the test.
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0
    )
    with mock_aws():
        world = make_world(monkeypatch, backend, gates="auto", bake="2m")
        throttler = Throttler(0.3, active=lambda: world.in_engine)
        c = world.clients
        throttler.install(
            c.ecs,
            c.appmesh,
            c.servicediscovery,
            c.cloudwatch,
            *([c.elbv2] if getattr(c, "elbv2", None) else []),
        )
        outcomes = []
        for image in (V2, V3, V2, V3, V2):
            dep_id = start(world, image)
            dep = world.drive(dep_id, lambda d: not d.active)
            outcomes.append((image[-2:], dep.state, dep.reason))
            targets = world.weights()
            assert len(targets) == 1 and list(targets.values()) == [100]
            if dep.state == State.PROMOTED:
                assert world.traffic_targets() == set(targets)
            else:
                assert dep.state == State.ROLLED_BACK, outcomes
                assert dep.reason  # always says why
        print(f"throttled {throttler.injected} of {throttler.sent} requests")
        assert throttler.injected > 50, throttler.injected
        # botocore's retries absorb throttling: healthy canaries are promoted, bad ones caught
        assert [(tag, state) for tag, state, _ in outcomes] == [
            ("v2", State.PROMOTED),
            ("v3", State.ROLLED_BACK),
            ("v2", State.PROMOTED),
            ("v3", State.ROLLED_BACK),
            ("v2", State.PROMOTED),
        ], outcomes


@pytest.mark.parametrize("backend", ["appmesh", "alb"])
def test_canary_service_deleted_by_someone_else(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with mock_aws():
        world = make_world(monkeypatch, backend, gates="auto")
        dep_id = start(world, V2)
        dep = world.drive(dep_id, lambda d: d.state == State.BAKING)
        name = f"payments-{dep_id}"
        world.clients.ecs.update_service(cluster="prod", service=name, desiredCount=0)
        world.clients.ecs.delete_service(cluster="prod", service=name, force=True)
        deleted_at = world.clock.now
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK
        assert name in (dep.reason or "") and dep.ended_by == "error"
        # The simulated traffic goes on reaching the deleted canary (its weight is still on the
        # route), so only the interval finds it: within the documented bound
        # (docs/ARCHITECTURE.md, "Existence less often").
        assert dep.rollback_requested_at is not None
        bound = defaults.PRESENCE_INTERVAL_SECONDS + dep.settings.analysis_interval
        assert dep.rollback_requested_at - deleted_at <= bound
        targets = world.weights()
        assert list(targets.values()) == [100] and name not in targets


@pytest.mark.parametrize("backend", ["appmesh", "alb"])
def test_rollback_refused_repeatedly_ends_failed_saying_what_to_do(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with mock_aws():
        world = make_world(monkeypatch, backend)
        dep_id = start(world, V3)
        world.drive(dep_id, lambda d: d.state == State.ROLLING_BACK)
        write = "UpdateRoute" if backend == "appmesh" else "ModifyRule"
        refused: list[str] = []

        def deny(model, **_: object):  # type: ignore[no-untyped-def]
            if model.name == write:
                refused.append(write)
                error = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}
                return SimpleNamespace(status_code=403, headers={}), error
            return None

        for client in (world.clients.appmesh, world.clients.elbv2):
            client.meta.events.register("before-call.*.*", deny)
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.FAILED and len(refused) == 5
        assert any("AccessDeniedException" in p for p in dep.problems)
        assert any(
            "may still send traffic to the canary: set it to 100 %" in p for p in dep.problems
        ), dep.problems
        assert "failed" in [e.kind for e in world.rt.store.events(dep_id)]
        assert world.rt.store.lock_holder("payments") is None  # a person takes it from here


def test_canary_virtual_node_deleted_by_someone_else(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (An ALB refuses to delete a target group a rule still forwards to, so only App Mesh here;
    # moto lets a routed virtual node go, as a person with the console might.)
    with mock_aws():
        world = make_world(monkeypatch, "appmesh", gates="auto")
        dep_id = start(world, V2)
        dep = world.drive(dep_id, lambda d: d.state == State.BAKING)
        assert isinstance(dep.canary, AppMeshCanary)
        gone = dep.canary.virtual_node
        world.clients.appmesh.delete_virtual_node(meshName="prod-mesh", virtualNodeName=gone)
        dep = world.drive(dep_id, lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK, dep.reason
        assert f"The canary's virtual node {gone} is gone." in (dep.reason or "")
        assert world.weights() == {"payments-v1": 100}


@pytest.mark.parametrize("backend", ["appmesh", "alb"])
def test_transient_500s_on_the_route_update_are_retried(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0
    )
    with mock_aws():
        world = make_world(monkeypatch, backend, gates="auto", bake="2m")
        write = "UpdateRoute" if backend == "appmesh" else "ModifyRule"
        fault = FailNext(write, times=2)  # botocore's standard mode tries 5 times
        fault.install(world.clients.appmesh, world.clients.elbv2)
        dep_id = start(world, V2)
        dep = world.drive(dep_id, lambda d: not d.active)
        assert fault.failed == 2
        assert dep.state == State.PROMOTED and dep.attempts == 0


def test_a_route_someone_else_split_is_left_alone(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        world = make_world(monkeypatch, "appmesh")
        seed_appmesh_service(world.clients, key="other")
        where = {
            "meshName": "prod-mesh",
            "virtualRouterName": "payments-vr",
            "routeName": "payments-route",
        }
        spec = world.clients.appmesh.describe_route(**where)["route"]["spec"]
        spec["httpRoute"]["action"]["weightedTargets"] = [
            {"virtualNode": "payments-v1", "weight": 60},
            {"virtualNode": "other-v1", "weight": 40},
        ]
        world.clients.appmesh.update_route(**where, spec=spec)
        dep = world.drive(start(world, V2), lambda d: not d.active)
        assert dep.state == State.ROLLED_BACK
        assert "already splits traffic between payments-v1 (60 %) and other-v1 (40 %)" in (
            dep.reason or ""
        )
        assert world.weights() == {"payments-v1": 60, "other-v1": 40}  # not ours to touch
        log = world.rt.store.events(dep.id)
        shown = [m.text for e in log if (m := render_event(dep, e, log)) is not None]
        assert shown[0].startswith("↩️ Stopping: Route payments-route already splits traffic")
        assert shown[0].endswith("No traffic had moved to the canary.")
        assert shown[1].startswith("Rolled back ❌ Nothing had been created in AWS.")
        assert len(shown) == 2
