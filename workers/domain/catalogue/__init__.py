"""The service catalogue (CANARY_CONFIG): loading, validation and per-deployment overrides.

Import its names from here (`from workers.domain.catalogue import ServiceConfig`); by concern:

- fields.py     the values an entry is written with (durations, latency limits, gates, steps)
- schema.py     the models: RolloutSettings (`defaults:`), ServiceConfig, PipelineConfig,
                Catalogue; ConfigError
- parsing.py    the YAML file and its document read into a Catalogue, problems said together
- overrides.py  a command's `key=value` overrides, refused when they loosen the plan
"""

from workers.domain.catalogue.fields import (
    DURATION_KEYS,
    STEPS_EXAMPLE,
    GateMode,
    IncreasePct,
    Milliseconds,
    OverrideKey,
    Percentile,
    RouterKind,
    Seconds,
    check_steps,
)
from workers.domain.catalogue.overrides import OVERRIDABLE, apply_overrides, overrides_to_accept
from workers.domain.catalogue.parsing import load_catalogue, parse_catalogue
from workers.domain.catalogue.schema import (
    ROUTER_KEYS,
    TOKEN_ENV_PREFIX,
    Catalogue,
    ConfigError,
    PipelineConfig,
    RolloutSettings,
    ServiceConfig,
    limit_problems,
    unknown_service_message,
)

__all__ = [
    "DURATION_KEYS",
    "OVERRIDABLE",
    "ROUTER_KEYS",
    "STEPS_EXAMPLE",
    "TOKEN_ENV_PREFIX",
    "Catalogue",
    "ConfigError",
    "GateMode",
    "IncreasePct",
    "Milliseconds",
    "OverrideKey",
    "Percentile",
    "PipelineConfig",
    "RolloutSettings",
    "RouterKind",
    "Seconds",
    "ServiceConfig",
    "apply_overrides",
    "check_steps",
    "limit_problems",
    "load_catalogue",
    "overrides_to_accept",
    "parse_catalogue",
    "unknown_service_message",
]
