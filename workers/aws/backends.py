"""Which backend serves a service: the catalogue's `router` key names it."""

from __future__ import annotations

from workers.aws.alb.backend import AlbBackend
from workers.aws.appmesh.backend import AppMeshBackend
from workers.aws.base import Backend
from workers.aws.clients import AwsClients
from workers.aws.ecs_native.backend import EcsNativeBackend
from workers.domain.catalogue import ServiceConfig


def backend_for(settings: ServiceConfig, clients: AwsClients) -> Backend:
    """The backend the service's `router` key names."""
    if settings.router == "appmesh":
        return AppMeshBackend(settings, clients)
    if settings.router == "alb":
        return AlbBackend(settings, clients)
    if settings.router == "ecs":
        return EcsNativeBackend(settings, clients)
    raise ValueError(f"router {settings.router!r} is not available")
