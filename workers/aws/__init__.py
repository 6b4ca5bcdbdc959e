"""AWS drivers of the rollout engine: idempotent steps over ECS, App Mesh and Cloud Map."""
