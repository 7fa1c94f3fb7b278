"""Registry tests: `importlib.metadata.entry_points` patched with fake entry points.

Plugin modules are written into `tmp_path`, which is put on `sys.path` only for
the test (`monkeypatch.syspath_prepend`).
"""

import dataclasses
import sys
import textwrap
from importlib import metadata

import pytest

import tfsparse
from tfsparse import registry

MODULES = {
    "fancy_plugin": """
        from tfsparse.strategies.gmp import GMP

        class Fancy(GMP):
            name = "fancy"
    """,
    "other_plugin": """
        from tfsparse.strategies.gmp import GMP

        class Other(GMP):
            name = "other"
    """,
    "broken_plugin": "import module_that_does_not_exist\n",
    "syntax_plugin": "class Broken(:\n",
    "raising_plugin": "raise RuntimeError('plugin exploded at import')\n",
    "not_a_strategy": """
        def thing():
            return 1

        class Plain:
            pass
    """,
}


@dataclasses.dataclass(frozen=True)
class FakeDist:
    name: str
    version: str = "1.0"


@dataclasses.dataclass(frozen=True)
class FakeEntryPoint:
    """Duck-typed `importlib.metadata.EntryPoint` with a settable `dist`."""

    name: str
    value: str
    group: str = registry.GROUP
    dist: object = None


@pytest.fixture
def install(monkeypatch, tmp_path):
    """Replaces the installed entry points; call with (name, target, dist-or-None) tuples."""
    for module, source in MODULES.items():
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_LOADED", {})
    monkeypatch.setattr(registry, "_IN_PROCESS", {})
    for module in MODULES:
        monkeypatch.delitem(sys.modules, module, raising=False)
    calls = []

    def setter(*entries):
        eps = [FakeEntryPoint(n, t, dist=None if d is None else FakeDist(d)) for n, t, d in entries]
        eps.append(FakeEntryPoint("elsewhere", "fancy_plugin:Fancy", group="another.group", dist=FakeDist("x")))

        def entry_points(*, group):
            calls.append(group)
            return [ep for ep in eps if ep.group == group]

        monkeypatch.setattr(metadata, "entry_points", entry_points)
        return calls

    yield setter
    for module in MODULES:  # imported during the test: do not leak into later tests
        sys.modules.pop(module, None)


def test_real_gmp_entry_point_is_discovered():
    info = next(i for i in tfsparse.list_strategies(check=True) if i.name == "gmp")
    assert info.target == "tfsparse.strategies.gmp:GMP"
    assert info.distribution == "tfsparse" and info.version == tfsparse.__version__
    assert info.status == "ok"
    from tfsparse.strategies.gmp import GMP

    assert tfsparse.get_strategy("gmp") is GMP


def test_discovery_records_without_importing_and_loads_on_first_use(install):
    calls = install(("fancy", "fancy_plugin:Fancy", "fancy-dist"))
    rows = registry.list_strategies()
    assert calls == [registry.GROUP]
    assert [r.to_dict() for r in rows] == [
        {"name": "fancy", "target": "fancy_plugin:Fancy", "distribution": "fancy-dist", "version": "1.0",
         "status": "not loaded"}
    ]
    assert "fancy_plugin" not in sys.modules
    cls = registry.get_strategy("fancy")
    assert cls.__name__ == "Fancy" and cls.__module__ == "fancy_plugin"
    assert registry.list_strategies()[0].status == "ok"


def test_loaded_class_is_cached(install):
    install(("fancy", "fancy_plugin:Fancy", "fancy-dist"))
    first = registry.get_strategy("fancy")
    del sys.modules["fancy_plugin"]  # a second import would create a new class object
    assert registry.get_strategy("fancy") is first
    assert "fancy_plugin" not in sys.modules


def test_entry_point_without_distribution(install):
    install(("fancy", "fancy_plugin:Fancy", None))
    row = registry.list_strategies(check=True)[0]
    assert (row.distribution, row.version, row.status) == (None, None, "ok")


def test_unknown_name_lists_available_and_closest(install):
    install(("fancy", "fancy_plugin:Fancy", "fancy-dist"), ("gmp", "tfsparse.strategies.gmp:GMP", "tfsparse"))
    with pytest.raises(ValueError, match=r"Did you mean 'fancy'\?.*Available: fancy, gmp.*Received: name='fency'"):
        registry.get_strategy("fency")
    with pytest.raises(ValueError, match=r"Did you mean 'gmp'\?"):
        registry.get_strategy("GMP")
    with pytest.raises(ValueError) as error:
        registry.get_strategy("zzzzzz")
    assert "Did you mean" not in str(error.value) and "Available: fancy, gmp" in str(error.value)


@pytest.mark.parametrize(
    "target, cause, detail",
    [
        ("broken_plugin:Thing", ModuleNotFoundError, "module_that_does_not_exist"),
        ("syntax_plugin:Broken", SyntaxError, "syntax_plugin.py"),
        ("raising_plugin:Thing", RuntimeError, "plugin exploded at import"),
        ("fancy_plugin:Missing", AttributeError, "Missing"),
    ],
)
def test_broken_plugin_fails_only_when_requested(install, target, cause, detail):
    install(("broken", target, "broken-dist"), ("fancy", "fancy_plugin:Fancy", "fancy-dist"))
    assert [r.status for r in registry.list_strategies()] == ["not loaded", "not loaded"]
    rows = {r.name: r for r in registry.list_strategies(check=True)}
    assert rows["fancy"].status == "ok"
    assert rows["broken"].status.startswith(f"broken: {cause.__name__}") and detail in rows["broken"].status
    with pytest.raises(registry.PluginLoadError) as error:
        registry.get_strategy("broken")
    message = str(error.value)
    for part in ("'broken'", target, "broken-dist 1.0", cause.__name__, detail):
        assert part in message
    assert isinstance(error.value, ImportError) and isinstance(error.value.__cause__, cause)
    assert (error.value.plugin, error.value.target, error.value.distribution) == ("broken", target, "broken-dist")
    assert registry.get_strategy("fancy").__name__ == "Fancy"  # others unaffected


@pytest.mark.parametrize("target, shown", [("not_a_strategy:thing", "not a class, so not a subclass of"),
                                           ("not_a_strategy:Plain", "a class that does not subclass")])
def test_target_that_is_not_a_strategy(install, target, shown):
    install(("thing", target, "odd-dist"))
    with pytest.raises(registry.PluginLoadError, match=f"{shown} tfsparse.Strategy") as error:
        registry.get_strategy("thing")
    assert target in str(error.value) and "odd-dist" in str(error.value)
    assert registry.list_strategies(check=True)[0].status.startswith("broken: ")


def test_two_distributions_claiming_a_name_is_an_error_never_a_silent_winner(install):
    install(("gmp", "tfsparse.strategies.gmp:GMP", "tfsparse"), ("gmp", "fancy_plugin:Fancy", "fancy-dist"),
            ("other", "other_plugin:Other", "other-dist"))
    rows = registry.list_strategies(check=True)
    assert [(r.name, r.distribution) for r in rows] == [("gmp", "tfsparse"), ("gmp", "fancy-dist"),
                                                        ("other", "other-dist")]
    assert rows[0].status == "conflict: also registered by fancy-dist 1.0 (fancy_plugin:Fancy)"
    assert rows[1].status == "conflict: also registered by tfsparse 1.0 (tfsparse.strategies.gmp:GMP)"
    assert rows[2].status == "ok"
    assert "fancy_plugin" not in sys.modules  # conflicting plugins are not imported by listing
    with pytest.raises(registry.DuplicateStrategyError) as error:
        registry.get_strategy("gmp")
    message = str(error.value)
    assert "tfsparse 1.0 (tfsparse.strategies.gmp:GMP)" in message and "fancy-dist 1.0 (fancy_plugin:Fancy)" in message
    assert "clobber=True" in message and "Uninstall" in message


def test_same_distribution_with_a_different_target_is_a_conflict(install):
    install(("fancy", "fancy_plugin:Fancy", "fancy-dist"), ("fancy", "other_plugin:Other", "fancy-dist"))
    with pytest.raises(registry.DuplicateStrategyError, match="fancy_plugin:Fancy.*other_plugin:Other"):
        registry.get_strategy("fancy")


def test_same_distribution_seen_twice_is_not_a_conflict(install):
    # An editable install can expose its metadata twice, spelled differently.
    install(("fancy", "fancy_plugin:Fancy", "fancy-dist"), ("fancy", "fancy_plugin:Fancy", "Fancy_Dist"))
    assert registry.get_strategy("fancy").__name__ == "Fancy"
    assert len(registry.list_strategies()) == 1


def test_register_strategy_in_process(install):
    install(("gmp", "tfsparse.strategies.gmp:GMP", "tfsparse"))
    from tfsparse.strategies.gmp import GMP

    class Mine(GMP):
        pass

    registry.register_strategy("mine", Mine)
    assert registry.get_strategy("mine") is Mine
    assert registry.list_strategies()[-1] == registry.StrategyInfo(
        "mine", f"{__name__}:{Mine.__qualname__}", registry.IN_PROCESS, None, "ok")
    registry.register_strategy("mine", Mine)  # the same class again: fine
    registry.register_strategy("gmp", GMP)  # the same implementation as the entry point: a no-op
    assert [r.distribution for r in registry.list_strategies() if r.name == "gmp"] == ["tfsparse"]
    with pytest.raises(ValueError, match=r"registered by tfsparse 1.0 \(tfsparse.strategies.gmp:GMP\).*clobber=True"):
        registry.register_strategy("gmp", Mine)
    assert registry.get_strategy("gmp") is GMP
    registry.register_strategy("gmp", Mine, clobber=True)
    assert registry.get_strategy("gmp") is Mine
    registry.unregister_strategy("gmp")
    assert registry.get_strategy("gmp") is GMP
    registry.unregister_strategy("mine")
    with pytest.raises(ValueError, match="Received: name='mine'"):
        registry.get_strategy("mine")


def test_register_strategy_by_target_string_is_lazy(install):
    install()
    registry.register_strategy("fancy", "fancy_plugin:Fancy")
    assert "fancy_plugin" not in sys.modules
    assert registry.get_strategy("fancy").__module__ == "fancy_plugin"


def test_register_strategy_resolves_a_conflict_only_with_clobber(install):
    install(("gmp", "tfsparse.strategies.gmp:GMP", "tfsparse"), ("gmp", "fancy_plugin:Fancy", "fancy-dist"))
    with pytest.raises(ValueError, match="clobber=True"):
        registry.register_strategy("gmp", "tfsparse.strategies.gmp:GMP")
    with pytest.raises(registry.DuplicateStrategyError):
        registry.get_strategy("gmp")
    registry.register_strategy("gmp", "tfsparse.strategies.gmp:GMP", clobber=True)
    assert registry.get_strategy("gmp").__name__ == "GMP"


@pytest.mark.parametrize(
    "name, strategy, argument",
    [("", "fancy_plugin:Fancy", "name"), (3, "fancy_plugin:Fancy", "name"), ("x", "no colon", "strategy"),
     ("x", object, "strategy"), ("x", 42, "strategy")],
)
def test_register_strategy_rejects_bad_arguments(install, name, strategy, argument):
    install()
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`"):
        registry.register_strategy(name, strategy)
    assert registry.list_strategies() == []


def test_register_strategy_rejects_an_instance(install):
    install()
    from tfsparse.strategies.gmp import GMP

    with pytest.raises(ValueError, match="the class, not an instance"):
        registry.register_strategy("x", GMP(target_sparsity=0.5, begin_step=0, end_step=2))
