"""Playing a deployment on the clock: its phases in turn, pause hooks awaited or timed out,
alarms sampled first, a rollback (100 % back on the source at once) and its end, success.

The emulator makes a `Player` for each call from its clock, alarm source and rollback time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sandbox.ecs_deployments.records import AlarmSource, Clock, Deployment, Hook


@dataclass(frozen=True)
class Player:
    """Advances deployments to a time; what it reads of the world is given."""

    clock: Clock
    #: Given alarm names, the ones in ALARM now.
    alarms: AlarmSource
    #: How long a rollback takes once traffic is back on the source.
    rollback_seconds: float

    def advance(self, deployment: Deployment, now: datetime) -> None:
        if deployment.status == "IN_PROGRESS" and self.alarm_fired(deployment, now):
            return
        while deployment.status == "IN_PROGRESS":
            phase = deployment.phases[deployment.cursor]
            started = deployment.phase_started_at or now
            deployment.stage = phase.stage
            if phase.kind in ("wait", "scale_up"):
                end = started + timedelta(seconds=phase.seconds)
                if end > now:
                    return
                if phase.kind == "scale_up":
                    deployment.target.requested = deployment.service.desired_count
                self.complete_phase(deployment, end)
            elif phase.kind == "hook":
                hook = deployment.hook
                if hook is None or hook.status != "AWAITING_ACTION" or hook.stage != phase.stage:
                    hook = deployment.hook = Hook(
                        hook_id=f"ecs-pause-{uuid.uuid4().hex}",
                        stage=phase.stage,
                        expires_at=started + timedelta(minutes=phase.timeout_minutes),
                        timeout_action=phase.timeout_action,
                    )
                if hook.expires_at > now:
                    return
                hook.status = "TIMED_OUT"
                if hook.timeout_action == "ROLLBACK":
                    self.roll_back(
                        deployment,
                        hook.expires_at,
                        f"hook {hook.hook_id} timed out ({phase.stage})",
                    )
                    return
                self.complete_phase(deployment, hook.expires_at)
            elif phase.kind == "shift":
                deployment.target.production_weight = phase.percent
                deployment.source.production_weight = 100.0 - phase.percent
                self.complete_phase(deployment, started)
            elif phase.kind == "clean_up":
                self.succeed(deployment, started)
            else:
                if phase.stage == "TEST_TRAFFIC_SHIFT":
                    deployment.target.test_weight = 100.0
                self.complete_phase(deployment, started)
        self.finish_rollback(deployment, now)

    def complete_phase(self, deployment: Deployment, at: datetime) -> None:
        deployment.cursor += 1
        deployment.phase_started_at = at
        deployment.updated_at = at

    def alarm_fired(self, deployment: Deployment, now: datetime) -> bool:
        alarms = deployment.config.get("alarms") or {}
        if not alarms.get("enable") or not alarms.get("alarmNames"):
            return False
        fired = sorted(set(self.alarms(alarms["alarmNames"])) & set(alarms["alarmNames"]))
        if not fired:
            return False
        deployment.triggered_alarms = fired
        reason = f"CloudWatch alarm(s) in ALARM: {', '.join(fired)}"
        if alarms.get("rollback"):
            self.roll_back(deployment, now, reason)
        else:
            deployment.status, deployment.status_reason = "STOPPED", reason
            deployment.stopped_at = deployment.updated_at = now
        return True

    def roll_back(self, deployment: Deployment, at: datetime, reason: str) -> None:
        # Both revisions still run until CLEAN_UP, so traffic goes back at once.
        deployment.status = "ROLLBACK_IN_PROGRESS"
        deployment.status_reason = reason
        deployment.source.production_weight = 100.0
        deployment.target.production_weight = 0.0
        deployment.target.test_weight = 0.0
        deployment.rollback = {
            "reason": reason,
            "startedAt": at,
            "serviceRevisionArn": deployment.source.arn,
        }
        deployment.rollback_done_at = at + timedelta(seconds=self.rollback_seconds)
        deployment.updated_at = at
        self.finish_rollback(deployment, self.clock())

    def finish_rollback(self, deployment: Deployment, now: datetime) -> None:
        done = deployment.rollback_done_at
        if deployment.status != "ROLLBACK_IN_PROGRESS" or done is None or done > now:
            return
        deployment.status = "ROLLBACK_SUCCESSFUL"
        deployment.target.requested = 0
        deployment.finished_at = deployment.updated_at = done
        svc = deployment.service
        svc.task_definition, svc.revision = deployment.source.task_definition, deployment.source

    def succeed(self, deployment: Deployment, at: datetime) -> None:
        deployment.stage = "CLEAN_UP"
        deployment.status = "SUCCESSFUL"
        deployment.source.requested = 0
        deployment.source.production_weight = 0.0
        deployment.target.production_weight = 100.0
        deployment.finished_at = deployment.updated_at = at
        svc = deployment.service
        svc.task_definition, svc.revision = deployment.target.task_definition, deployment.target
