"""A stand-in for ECS's own CANARY / LINEAR service deployments (moto models none of it).

For the sandbox and the tests only. Given a service's current and new task definition and the
`deploymentConfiguration` of UpdateService, it plays the documented lifecycle on an injectable
clock and answers in botocore's shapes, raising botocore `ClientError`s with ECS's error codes.
Methods are named after the API calls and take their keyword arguments (`update_service`,
`describe_service_deployments`, `list_service_deployments`, `describe_service_revisions`,
`continue_service_deployment`, `stop_service_deployment`), so the class can later sit behind
moto's ECS backend unchanged.

What it follows (Amazon ECS Developer Guide and API Reference; details and doubts in docs/ECS.md):

- Lifecycle stages, in order: PRE_SCALE_UP, SCALE_UP, POST_SCALE_UP, TEST_TRAFFIC_SHIFT,
  POST_TEST_TRAFFIC_SHIFT, then for every traffic shift PRE_PRODUCTION_TRAFFIC_SHIFT and
  PRODUCTION_TRAFFIC_SHIFT, then POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP
  (API_ServiceDeployment `lifecycleStage`; API_DeploymentLifecycleHook `lifecycleStages`:
  "For linear and canary deployments, this stage is invoked before every traffic shift step").
- CANARY shifts canaryPercent, bakes canaryBakeTimeInMinutes, shifts the rest; LINEAR shifts
  stepPercent at a time with stepBakeTimeInMinutes between shifts and none after 100 %
  (API_CanaryConfiguration, API_LinearConfiguration; the last shift takes what is left, as in
  AWS::ECS::Service LinearConfiguration). bakeTimeInMinutes keeps both revisions running after
  the last shift (API_DeploymentConfiguration).
- PAUSE hooks ("Pause hooks for Amazon ECS service deployments"): a unique hookId per pause,
  `lifecycleHookDetails` with status AWAITING_ACTION, expiresAt and timeoutAction; the deployment
  waits for ContinueServiceDeployment(CONTINUE|ROLLBACK) or the timeout (default 1440 minutes,
  action ROLLBACK: API_DeploymentLifecycleHookTimeoutConfiguration). PAUSE is refused at
  TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT. ContinueServiceDeployment needs the hook in
  AWAITING_ACTION and the deployment IN_PROGRESS ("Continuing service deployments").
- StopServiceDeployment(ROLLBACK) works from PENDING and IN_PROGRESS (-> ROLLBACK_REQUESTED, then
  the rollback) and goes on quietly in STOP_REQUESTED / ROLLBACK_* ("Stopping Amazon ECS service
  deployments").
- Alarms: any configured alarm in ALARM fails the deployment, rolled back when `rollback` is true,
  and they are watched through the bake time ("How CloudWatch alarms detect Amazon ECS deployment
  failures").

Choices where the documentation is silent (each is a doubt in docs/ECS.md): a step's bake comes
before the next PRE_PRODUCTION_TRAFFIC_SHIFT pause; `lifecycleStage` reads
PRE_PRODUCTION_TRAFFIC_SHIFT while paused there (the docs list it, botocore's enum lacks it) and
PRODUCTION_TRAFFIC_SHIFT during a step's bake; a hook answered ROLLBACK (or stopped) reads FAILED,
CONTINUE reads SUCCEEDED; `lifecycleHookDetails` shows the latest hook only; a rollback puts 100 %
back on the source at once and finishes after `rollback_seconds`; alarms are sampled when the
emulator is called (never between calls), before any time-driven step; a second UpdateService with
a new task definition while a deployment runs is refused (the same one is a no-op).

The package, by concern: records.py (stages, statuses, defaults, the records kept),
plan.py (a configuration checked and turned into phases), lifecycle.py (playing them on the
clock), shapes.py (botocore's response shapes), emulator.py (EcsDeployments: the API calls),
routing.py (`route_client`: behind a boto3 client).
"""

from sandbox.ecs_deployments.emulator import EcsDeployments
from sandbox.ecs_deployments.records import ACTIVE, AlarmSource, Clock
from sandbox.ecs_deployments.routing import ROUTED_OPERATIONS, route_client

__all__ = ["ACTIVE", "ROUTED_OPERATIONS", "AlarmSource", "Clock", "EcsDeployments", "route_client"]
