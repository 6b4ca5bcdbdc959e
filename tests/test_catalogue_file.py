"""The catalogue file is reread when it changes; a broken edit keeps the last good one in force."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from workers.domain.catalogue import ConfigError
from workers.runtime.catalogue_file import CatalogueFile
from workers.runtime.context import Runtime

ENTRY = "{cluster: prod, mesh: m, virtual_router: vr, route: r, approvers: [%s]}"


def write(path: Path, approvers: str) -> None:
    path.write_text(f"services:\n  payments: {ENTRY % approvers}\n")


def test_an_edit_is_seen_at_the_next_access(tmp_path: Path) -> None:
    path = tmp_path / "canary.yaml"
    write(path, "U0SAM, U0LEE")
    live = CatalogueFile(path)
    assert live().service("payments").approvers == ["U0SAM", "U0LEE"]
    write(path, "U0LEE")
    assert live().service("payments").approvers == ["U0LEE"]


def test_an_edit_within_the_same_second_and_size_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "canary.yaml"
    write(path, "U0SAM")
    live = CatalogueFile(path)
    assert live().service("payments").approvers == ["U0SAM"]
    stat = path.stat()
    replacement = tmp_path / "new.yaml"
    write(replacement, "U0LEE")  # same size
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replacement.replace(path)  # renamed over: a new inode
    assert live().service("payments").approvers == ["U0LEE"]


def test_an_unchanged_file_is_not_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "canary.yaml"
    write(path, "U0SAM")
    loads: list[Path] = []

    def counting(where: Path):  # type: ignore[no-untyped-def]
        from workers.domain.catalogue import load_catalogue

        loads.append(where)
        return load_catalogue(where)

    live = CatalogueFile(path, load=counting)
    first = live()
    assert all(live() is first for _ in range(100))
    assert len(loads) == 1


def test_a_broken_edit_keeps_the_last_good_catalogue_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "canary.yaml"
    write(path, "U0SAM")
    live = CatalogueFile(path)
    good = live()
    path.write_text("services:\n  payments: {cluster: prod, router: nowhere}\n")
    with caplog.at_level(logging.ERROR):
        assert live() is good and live() is good and live() is good
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "previous one stays in force" in errors[0].getMessage()
    assert "payments" in (live.problem or "")
    path.unlink()  # gone: still the last good one
    assert live() is good
    write(path, "U0LEE, U0SAM")
    assert live().service("payments").approvers == ["U0LEE", "U0SAM"]
    assert live.problem is None


def test_without_any_good_catalogue_the_error_is_raised(tmp_path: Path) -> None:
    live = CatalogueFile(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot read the catalogue"):
        live()


def test_a_runtime_reads_the_catalogue_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "canary.yaml"
    write(path, "U0SAM")
    monkeypatch.setenv("CANARY_CONFIG", str(path))
    rt = Runtime(redis=None, store=None, scheduler=None)  # type: ignore[arg-type]
    assert rt.catalogue().service("payments").approvers == ["U0SAM"]
    write(path, "U0LEE, U0DANA")
    assert rt.catalogue().service("payments").approvers == ["U0LEE", "U0DANA"]


def test_a_process_runtime_never_reads_the_environment_for_its_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path comes from the settings the process read at start: reading the environment at
    every command cost more CPU than the command itself."""
    from workers.runtime import catalogue_file
    from workers.runtime.context import runtime_from_env
    from workers.runtime.settings import Settings

    path = tmp_path / "canary.yaml"
    write(path, "U0SAM")
    rt = runtime_from_env(Settings(canary_config=path))

    def read_again() -> Settings:
        raise AssertionError("the environment was read again")

    monkeypatch.setattr(catalogue_file, "load_settings", read_again)
    assert rt.catalogue().service("payments").approvers == ["U0SAM"]
    write(path, "U0LEE")
    assert rt.catalogue().service("payments").approvers == ["U0LEE"]
