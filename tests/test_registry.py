"""Registry tests with fake entry points (importlib.metadata patched)."""

import sys
import textwrap
from importlib import metadata

import pytest

import tfsparse
from tfsparse import registry

PLUGIN = textwrap.dedent(
    """
    from tfsparse.strategies.gmp import GMP

    class Fancy(GMP):
        name = "fancy"
    """
)


class FakeDist:
    def __init__(self, name, version="1.0"):
        self.name, self.version = name, version


def _ep(name, value, dist):
    ep = metadata.EntryPoint(name=name, value=value, group=registry.GROUP)
    return ep._for(FakeDist(dist)) if hasattr(ep, "_for") else ep


@pytest.fixture
def fake_plugins(monkeypatch, tmp_path):
    """Installs fake entry points; returns a setter taking (name, target, dist) tuples."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "fancy_plugin.py").write_text(PLUGIN)
    (tmp_path / "broken_plugin.py").write_text("import module_that_does_not_exist\n")
    (tmp_path / "not_a_strategy.py").write_text("def thing():\n    return 1\n")
    monkeypatch.setattr(registry, "_LOADED", {})
    monkeypatch.setattr(registry, "_IN_PROCESS", {})

    def install(*entries):
        eps = [_ep(*e) for e in entries]
        monkeypatch.setattr(registry, "_entry_points", lambda: eps)

    yield install
    for module in ("fancy_plugin", "broken_plugin", "not_a_strategy"):
        sys.modules.pop(module, None)


def test_real_gmp_entry_point_is_discovered():
    info = next(i for i in tfsparse.list_strategies(check=True) if i.name == "gmp")
    assert info.target == "tfsparse.strategies.gmp:GMP"
    assert info.distribution == "tfsparse" and info.version == tfsparse.__version__
    assert info.status == "ok"
    assert tfsparse.get_strategy("gmp").__name__ == "GMP"


def test_discovery_is_lazy(fake_plugins):
    fake_plugins(("fancy", "fancy_plugin:Fancy", "fancy-dist"))
    rows = registry.list_strategies()
    assert [(r.name, r.distribution, r.status) for r in rows] == [("fancy", "fancy-dist", "not loaded")]
    assert "fancy_plugin" not in sys.modules
    assert registry.get_strategy("fancy").__name__ == "Fancy"
    assert "fancy_plugin" in sys.modules
    assert registry.list_strategies()[0].status == "ok"


def test_unknown_name_lists_available_and_closest(fake_plugins):
    fake_plugins(("fancy", "fancy_plugin:Fancy", "fancy-dist"), ("gmp", "tfsparse.strategies.gmp:GMP", "tfsparse"))
    with pytest.raises(ValueError, match=r"Did you mean 'fancy'\?.*Available: fancy, gmp"):
        registry.get_strategy("fency")


def test_broken_plugin_fails_only_when_requested(fake_plugins):
    fake_plugins(("broken", "broken_plugin:Thing", "broken-dist"), ("fancy", "fancy_plugin:Fancy", "fancy-dist"))
    rows = {r.name: r for r in registry.list_strategies(check=True)}
    assert rows["fancy"].status == "ok"
    assert rows["broken"].status.startswith("broken:") and "module_that_does_not_exist" in rows["broken"].status
    with pytest.raises(registry.PluginLoadError) as error:
        registry.get_strategy("broken")
    message = str(error.value)
    for part in ("'broken'", "broken_plugin:Thing", "broken-dist", "ModuleNotFoundError", "module_that_does_not_exist"):
        assert part in message
    assert isinstance(error.value.__cause__, ModuleNotFoundError)
    assert registry.get_strategy("fancy").__name__ == "Fancy"  # others unaffected


def test_target_that_is_not_a_strategy(fake_plugins):
    fake_plugins(("thing", "not_a_strategy:thing", "odd-dist"))
    with pytest.raises(registry.PluginLoadError, match="not a subclass of tfsparse.Strategy"):
        registry.get_strategy("thing")


def test_duplicate_names_are_an_error_never_a_silent_winner(fake_plugins):
    fake_plugins(("gmp", "tfsparse.strategies.gmp:GMP", "tfsparse"), ("gmp", "fancy_plugin:Fancy", "fancy-dist"))
    rows = registry.list_strategies(check=True)
    assert len(rows) == 2 and all(r.status.startswith("conflict") for r in rows)
    with pytest.raises(registry.DuplicateStrategyError, match=r"tfsparse -> tfsparse.strategies.gmp:GMP.*fancy-dist"):
        registry.get_strategy("gmp")


def test_same_target_seen_twice_is_not_a_conflict(fake_plugins):
    fake_plugins(("fancy", "fancy_plugin:Fancy", "fancy-dist"), ("fancy", "fancy_plugin:Fancy", "fancy-dist"))
    assert registry.get_strategy("fancy").__name__ == "Fancy"
    assert len(registry.list_strategies()) == 1


def test_register_strategy_in_process(fake_plugins):
    fake_plugins(("gmp", "tfsparse.strategies.gmp:GMP", "tfsparse"))
    from tfsparse.strategies.gmp import GMP

    class Mine(GMP):
        pass

    registry.register_strategy("mine", Mine)
    assert registry.get_strategy("mine") is Mine
    registry.register_strategy("mine", Mine)  # same object again: fine
    with pytest.raises(ValueError, match="clobber=True"):
        registry.register_strategy("gmp", Mine)
    registry.register_strategy("gmp", Mine, clobber=True)
    assert registry.get_strategy("gmp") is Mine
    registry.unregister_strategy("mine")
    with pytest.raises(ValueError, match="No strategy is registered as 'mine'"):
        registry.get_strategy("mine")
