"""Built-ins are found through entry points, like any plugin; unconfigured channels stay unimported."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanoclaw import registry
from nanoclaw.host.app import Host
from tests.conftest import make_settings


def test_built_ins_are_registered_like_plugins() -> None:
    assert "terminal" in registry.names(registry.CHANNELS)
    assert {"mock", "claude"} <= set(registry.names(registry.PROVIDERS))
    assert "bwrap" in registry.names(registry.RUNTIMES)


def test_unknown_names_list_what_is_installed() -> None:
    with pytest.raises(LookupError, match=r"no provider named 'gpt9' \(installed: .*mock"):
        registry.load(registry.PROVIDERS, "gpt9")


def test_only_configured_channels_start(tmp_path: Path) -> None:
    host = Host(make_settings(tmp_path / "home"))
    assert sorted(host.channels) == ["terminal", "web"]  # the two local ones are always on
