"""The strategy registry: entry points in the `tfsparse.strategies` group.

Built-in strategies are registered through tfsparse's own `setup.cfg` in the
same group as third-party plugins. Discovery only records names and targets
(`module:attr`); a plugin is imported the first time it is asked for. A broken
plugin fails loudly when requested (naming the plugin, its target, its
distribution and the cause) and never breaks listing or other plugins. Two
distributions claiming one name is an error, never a silent winner.

Example:

>>> import tfsparse
>>> tfsparse.get_strategy("gmp").__name__
'GMP'
>>> [info.name for info in tfsparse.list_strategies()][:1]
['gmp']
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from importlib import metadata

GROUP = "tfsparse.strategies"

_LOADED: dict = {}  # name -> class, after a successful load
_IN_PROCESS: dict = {}  # name -> class or "module:attr", from register_strategy


class PluginLoadError(ImportError):
    """A registered strategy could not be imported or is not a Strategy."""


class DuplicateStrategyError(LookupError):
    """Several distributions register different targets under one name."""


@dataclasses.dataclass(frozen=True)
class EntryInfo:
    """One registration of a strategy name."""

    name: str
    target: str
    distribution: str | None
    version: str | None


@dataclasses.dataclass(frozen=True)
class StrategyInfo:
    """A row of `list_strategies()`.

    `status` is "ok", "not loaded", "broken: <cause>" or
    "conflict: <targets>".
    """

    name: str
    target: str
    distribution: str | None
    version: str | None
    status: str


def _entry_points():
    return metadata.entry_points(group=GROUP)


def _discover() -> dict:
    """name -> list of distinct `EntryInfo` (same target twice counts once)."""
    found: dict = {}
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        info = EntryInfo(ep.name, ep.value, getattr(dist, "name", None), getattr(dist, "version", None))
        entries = found.setdefault(ep.name, [])
        if all((e.target, e.distribution) != (info.target, info.distribution) for e in entries):
            entries.append(info)
    for name, target in _IN_PROCESS.items():
        label = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        found[name] = [EntryInfo(name, label, "(in process)", None)]
    return found


def _targets_differ(entries) -> bool:
    return len({e.target for e in entries}) > 1


def _conflict_error(name, entries) -> DuplicateStrategyError:
    claims = "; ".join(f"{e.distribution or '?'} -> {e.target}" for e in entries)
    return DuplicateStrategyError(
        f"Strategy {name!r} is registered by several distributions with different "
        f"targets ({claims}). tfsparse will not pick one silently: uninstall one of "
        "them, or rename the entry point in its setup.cfg."
    )


def _import_target(target):
    module_name, _, attribute = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


def _load(info: EntryInfo, raw):
    try:
        obj = raw if not isinstance(raw, str) else _import_target(raw)
    except Exception as error:  # any failure inside a plugin module
        raise PluginLoadError(
            f"Strategy plugin {info.name!r} failed to load: entry point target "
            f"{info.target!r} from distribution {info.distribution or 'unknown'} "
            f"{info.version or ''} raised {type(error).__name__}: {error}. "
            "Fix or reinstall that distribution, or uninstall it."
        ) from error
    from tfsparse.strategy import Strategy

    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise PluginLoadError(
            f"Strategy plugin {info.name!r} (target {info.target!r}, distribution "
            f"{info.distribution or 'unknown'}) is {obj!r}, not a subclass of "
            "tfsparse.Strategy. Point the entry point at the strategy class."
        )
    return obj


def get_strategy(name: str):
    """Returns the strategy class registered as `name`, importing it now.

    Raises:
        ValueError: if no strategy has that name (the message lists the
            available names and the closest match).
        PluginLoadError: if the plugin cannot be imported.
        DuplicateStrategyError: if distributions disagree about the name.
    """
    if name in _LOADED:
        return _LOADED[name]
    found = _discover()
    if name not in found:
        available = sorted(found)
        close = difflib.get_close_matches(str(name), available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Invalid value received for argument `name`. No strategy is registered "
            f"as {name!r}.{hint} Available: {', '.join(available) or 'none'} "
            f"(see `tfsparse list`). Received: name={name!r}"
        )
    entries = found[name]
    if _targets_differ(entries):
        raise _conflict_error(name, entries)
    cls = _load(entries[0], _IN_PROCESS.get(name, entries[0].target))
    _LOADED[name] = cls
    return cls


def list_strategies(*, check=False) -> list[StrategyInfo]:
    """Lists every registered strategy without failing on broken ones.

    Args:
        check: Import each plugin to report "ok" or "broken: ..." instead of
            "not loaded". Defaults to `False`.

    Returns:
        `StrategyInfo` rows sorted by name; conflicting registrations give
        one row per claimant.
    """
    rows = []
    for name, entries in sorted(_discover().items()):
        if _targets_differ(entries):
            others = ", ".join(e.target for e in entries)
            rows.extend(StrategyInfo(e.name, e.target, e.distribution, e.version, f"conflict: {others}") for e in entries)
            continue
        info = entries[0]
        status = "ok" if name in _LOADED else "not loaded"
        if check and name not in _LOADED:
            try:
                get_strategy(name)
                status = "ok"
            except (PluginLoadError, DuplicateStrategyError) as error:
                status = f"broken: {error.__cause__ or error}"
        rows.append(StrategyInfo(info.name, info.target, info.distribution, info.version, status))
    return rows


def register_strategy(name: str, strategy, *, clobber=False) -> None:
    """Registers a strategy in this process (notebooks, tests).

    Args:
        name: Registry name.
        strategy: A `Strategy` subclass or a `"module:attr"` string.
        clobber: Replace a different registration of `name`. Defaults to
            `False`.

    Raises:
        ValueError: if `name` is taken by a different strategy and
            `clobber` is False.
    """
    current = _IN_PROCESS.get(name) or _LOADED.get(name)
    existing = _discover().get(name)
    taken = current is not None and current is not strategy or (existing and current is None)
    if taken and not clobber:
        raise ValueError(
            f"Invalid value received for argument `name`. A different strategy is "
            f"already registered as {name!r}; choose another name or pass "
            f"clobber=True. Received: name={name!r}"
        )
    _IN_PROCESS[name] = strategy
    _LOADED.pop(name, None)


def unregister_strategy(name: str) -> None:
    """Removes an in-process registration made with `register_strategy`."""
    _IN_PROCESS.pop(name, None)
    _LOADED.pop(name, None)
