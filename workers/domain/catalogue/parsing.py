"""Reading a catalogue: the YAML file (`load_catalogue`), its document validated into a
Catalogue (`parse_catalogue`: each service is `defaults:` with its own keys over them), and every
problem found said in one ConfigError that names the service, the key and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from workers.domain.catalogue.schema import (
    Catalogue,
    ConfigError,
    PipelineConfig,
    RolloutSettings,
    ServiceConfig,
    limit_problems,
    unknown_service_message,
)
from workers.domain.pipelines import NAME as PIPELINE_NAME


def _explain(error: ValidationError, where: str) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{where}.{loc}: {message}" if loc else f"{where}: {message}")
    return "; ".join(lines)


def parse_catalogue(data: Any) -> Catalogue:
    """Validate a parsed YAML document; a ConfigError names the service, the key and the fix."""
    if not isinstance(data, dict):
        raise ConfigError("the catalogue must be a mapping with `defaults:` and `services:`")
    unknown = set(data) - {"defaults", "services", "pipelines"}
    if unknown:
        raise ConfigError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    raw_defaults = data.get("defaults") or {}
    raw_services = data.get("services") or {}
    if not isinstance(raw_defaults, dict) or not isinstance(raw_services, dict):
        raise ConfigError("`defaults:` and `services:` must be mappings")
    try:
        base = RolloutSettings(**raw_defaults)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, "defaults")) from None
    except TypeError as exc:
        raise ConfigError(f"defaults: {exc}") from None
    services: dict[str, ServiceConfig] = {}
    problems: list[str] = []
    for key, raw in raw_services.items():
        if not isinstance(raw, dict):
            problems.append(f"services.{key}: must be a mapping")
            continue
        try:
            services[str(key)] = ServiceConfig(**{**raw_defaults, **raw, "key": str(key)})
        except ValidationError as exc:
            problems.append(_explain(exc, f"services.{key}"))
            continue
        problems += [f"services.{key}.{p}" for p in limit_problems(services[str(key)])]
    pipelines = _pipelines(data.get("pipelines"), services, problems)
    if problems:
        raise ConfigError("; ".join(problems))
    return Catalogue(defaults=base, services=services, pipelines=pipelines)


def _pipelines(
    raw: Any, services: dict[str, ServiceConfig], problems: list[str]
) -> dict[str, PipelineConfig]:
    """`pipelines:` validated against the services (each named one exists and has a channel for
    its card); what is wrong is added to `problems`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("`pipelines:` must be a mapping of pipeline names to entries")
        return {}
    pipelines: dict[str, PipelineConfig] = {}
    token_envs: dict[str, str] = {}
    for name, entry in raw.items():
        where = f"pipelines.{name}"
        if not isinstance(name, str) or not PIPELINE_NAME.fullmatch(name):
            problems.append(f"{where}: a pipeline's name is lower-case letters, digits, - and _")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping with token_env and services")
            continue
        try:
            pipeline = PipelineConfig.model_validate(entry)
        except ValidationError as exc:
            problems.append(_explain(exc, where))
            continue
        for key in pipeline.services:
            if key not in services:
                problems.append(f"{where}.services: {unknown_service_message(key, list(services))}")
            elif not services[key].channel:
                # Slack tells which channel a command came from; a pipeline has none to offer.
                problems.append(
                    f"{where}.services: {key} has no channel: a service a pipeline deploys must "
                    "name the channel its card is posted in"
                )
        other = token_envs.setdefault(pipeline.token_env, name)
        if other != name:
            problems.append(
                f"{where}.token_env: {pipeline.token_env} is already the token of pipeline "
                f"{other}; each pipeline needs a token of its own"
            )
        pipelines[name] = pipeline
    return pipelines


def load_catalogue(path: str | os.PathLike[str]) -> Catalogue:
    """Read the catalogue from `path` (the runtime passes CANARY_CONFIG's)."""
    where = Path(path)
    try:
        text = where.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the catalogue {where}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    try:
        return parse_catalogue(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
