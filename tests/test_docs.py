"""The README's reference stays true: catalogue keys, environment variables, commands, scopes."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from bot.commands import COMMANDS, SLASH, help_text
from workers import defaults
from workers.domain.catalogue import RolloutSettings, ServiceConfig, load_catalogue
from workers.domain.durations import parse_duration
from workers.runtime.settings import Settings, env_names

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: Fields of the models that are not keys a person writes.
INTERNAL_FIELDS = {"key"}
#: The environment of design.md's contract (boto3 reads AWS_ENDPOINT_URL itself).
CONTRACT_ENV = {
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "REDIS_URL",
    "CANARY_CONFIG",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
}
#: The Slack Web API methods the code may call -> the bot scopes each needs.
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "chat_postMessage": ("chat:write",),
    "chat_update": ("chat:write",),
    "chat_postEphemeral": ("chat:write",),
    "chat_getPermalink": (),
    "usergroups_users_list": ("usergroups:read",),
    # Public and private channels alike: the bot works in whichever it is invited to.
    "conversations_history": ("channels:history", "groups:history"),
    "conversations_replies": ("channels:history", "groups:history"),
    "conversations_info": ("channels:read", "groups:read"),
    # The App Home tab (https://docs.slack.dev/reference/methods/views.publish: no scope).
    "views_publish": (),
    # files.getUploadURLExternal + files.completeUploadExternal: the chart in the thread.
    "files_upload_v2": ("files:write",),
}
#: The CI command line runs in a pipeline, not beside the bot: its variables are its own, read by
#: hand (standard library only) and documented in docs/CI.md, not in the README's table.
CLI_MODULE = "bot/cli.py"
CLI_ENV = {"CANARY_API_URL", "CANARY_API_TOKEN"}
#: The function that reads the variables the catalogue names (pipelines' `token_env`).
NAMED_BY_THE_CATALOGUE = ("workers/runtime/settings.py", "named_secret")
#: The variables code may read by hand: boto3's own (its region, endpoint and credentials).
BOTO3_PREFIX = "AWS_"
#: prometheus_client's own variable: the worker's processes share their metrics through it.
LIBRARY_ENV = {"PROMETHEUS_MULTIPROC_DIR"}


def section(title: str) -> str:
    """The README text under the heading `title`, up to the next heading of any level."""
    found = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", README, re.M | re.S)
    assert found, f"README has no section {title!r}"
    return found.group(1)


def table(text: str) -> dict[str, list[str]]:
    """First column (the `name` in backticks) -> the other cells, for every row of the tables."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _env_name(node: ast.AST) -> str | None:
    """The variable's name if `node` reads the environment by hand (os.environ[...],
    os.environ.get(...), os.getenv(...)); "?" when the name is not a literal."""
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
        name: ast.expr | None = node.slice
    elif isinstance(node, ast.Call) and ast.unparse(node.func) in (
        "os.environ.get",
        "os.environ.pop",
        "os.getenv",
    ):
        name = node.args[0] if node.args else None
    elif isinstance(node, ast.Attribute) and ast.unparse(node) in ("os.environ", "os.getenv"):
        return "?"  # any other use of the environment (os.environ.copy(), dict(os.environ), ...)
    else:
        return None
    return name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) else "?"


def env_vars_read_by_hand(*packages: str, cli: bool = False) -> dict[str, str]:
    """Every environment variable the code reads without the settings model -> where (the CLI's
    own, read in CLI_MODULE, only with `cli`)."""
    found: dict[str, str] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if (str(path.relative_to(ROOT)) == CLI_MODULE) is not cli:
                continue
            tree = ast.parse(path.read_text())
            # os.environ.get(...) is one read: do not count its os.environ attribute again.
            inner = {
                id(n.func.value)
                for n in ast.walk(tree)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            } | {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
            # The one read of a variable the catalogue names (a pipeline's token_env): which
            # variables those are is the catalogue's to say, not the README's table.
            inner |= {
                id(n)
                for f in ast.walk(tree)
                if isinstance(f, ast.FunctionDef)
                and (str(path.relative_to(ROOT)), f.name) == NAMED_BY_THE_CATALOGUE
                for n in ast.walk(f)
            }
            for node in ast.walk(tree):
                name = _env_name(node) if id(node) not in inner else None
                if name is not None:
                    found.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def env_vars_read(*packages: str) -> dict[str, str]:
    """Every environment variable the code reads -> where: the settings model's fields, and
    what is still read by hand (boto3's own variables)."""
    found = {name: f"workers/runtime/settings.py: Settings.{name.lower()}" for name in env_names()}
    for name, where in env_vars_read_by_hand(*packages).items():
        found.setdefault(name, where)
    return found


def catalogue_keys() -> set[str]:
    fields = set(RolloutSettings.model_fields) | set(ServiceConfig.model_fields)
    return fields - INTERNAL_FIELDS


def test_catalogue_reference_lists_exactly_the_models_keys() -> None:
    documented = set(table(section("Service catalogue (`CANARY_CONFIG`)")))
    assert documented == catalogue_keys(), (
        f"undocumented: {sorted(catalogue_keys() - documented)}; "
        f"not a key: {sorted(documented - catalogue_keys())}"
    )


def test_catalogue_reference_gives_the_real_defaults() -> None:
    rows = table(section("Service catalogue (`CANARY_CONFIG`)"))
    for name, field in RolloutSettings.model_fields.items():
        written = rows[name][0].strip("`")
        default = getattr(defaults, name.upper())
        if isinstance(default, dict):  # one default per traffic backend: "`2m` with `appmesh`"
            for router, value in default.items():
                assert f"`{value}` with `{router}`" in rows[name][0], name
        elif default is None:  # off unless set
            assert written == "none", name
        elif isinstance(default, bool):
            assert written == str(default).lower(), name
        elif isinstance(default, tuple):
            assert written == str(list(default)), name
        elif isinstance(default, str) and field.annotation is int:  # a duration
            assert parse_duration(written) == parse_duration(default), name
        else:
            assert written == str(default), name


def test_environment_reference_lists_every_variable_the_code_reads() -> None:
    documented = set(table(section("Environment")))
    read = env_vars_read("bot", "workers")
    assert "CANARY_WATCHDOG_GRACE" in read  # the scanner sees the settings model's fields
    missing = {name: where for name, where in read.items() if name not in documented}
    assert not missing, f"read by the code but not in the README: {missing}"
    assert documented >= CONTRACT_ENV
    assert documented <= set(read) | CONTRACT_ENV, sorted(documented - set(read) - CONTRACT_ENV)


def test_environment_reference_gives_the_settings_defaults() -> None:
    rows = table(section("Environment"))
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None:  # unset: the README says what that means
            continue
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        assert rows[name.upper()][1] == f"`{default}`", name.upper()


def test_only_the_settings_model_reads_the_environment() -> None:
    by_hand = env_vars_read_by_hand("bot", "workers")
    others = {
        name: where
        for name, where in by_hand.items()
        if not name.startswith(BOTO3_PREFIX) and name not in LIBRARY_ENV
    }
    assert not others, f"read by hand, not through workers.runtime.settings.Settings: {others}"


def test_the_cli_reads_only_its_own_variables_and_docs_ci_lists_them() -> None:
    assert set(env_vars_read_by_hand("bot", cli=True)) == CLI_ENV
    ci = (ROOT / "docs" / "CI.md").read_text()
    assert all(f"`{name}`" in ci for name in CLI_ENV)


def test_the_scanner_sees_reads_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(
        "import os\nA = os.environ.get('A')\nB = os.environ['B']\nC = os.getenv('C')\n"
        "D = dict(os.environ)\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert set(env_vars_read_by_hand("pkg")) == {"A", "B", "C", "?"}


def test_command_list_is_the_help_of_the_command_table() -> None:
    commands = section("Commands")
    assert help_text() in commands
    listed = re.findall(rf"^• `{re.escape(SLASH)} (\w+)", commands, re.M)
    assert listed == [c.name for c in COMMANDS]


def test_manifest_asks_for_exactly_the_scopes_the_code_uses() -> None:
    manifest = yaml.safe_load((ROOT / "deploy" / "slack-app-manifest.yaml").read_text())
    code = "\n".join(
        p.read_text() for pkg in ("bot", "workers") for p in sorted((ROOT / pkg).rglob("*.py"))
    )
    called = set(
        re.findall(r"\.((?:chat|usergroups|users|conversations|files|reactions|views)_\w+)\(", code)
    )
    unknown = called - set(METHOD_SCOPES)
    assert not unknown, f"Slack methods without a known scope here: {unknown}"
    needed = {scope for m in called for scope in METHOD_SCOPES[m]} | {"commands"}
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == [SLASH]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    # The App Home: its tab, and the one event the bot listens to (neither needs a scope).
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_example_catalogue_is_valid() -> None:
    catalogue = load_catalogue(ROOT / "canary.example.yaml")
    assert "payments" in catalogue.services
