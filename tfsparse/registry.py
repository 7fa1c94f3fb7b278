"""The strategy registry: entry points in the `tfsparse.strategies` group.

Built-in strategies are registered through tfsparse's own `setup.cfg` in the
same group as third-party plugins. Discovery only records names, targets
(`module:attr`) and distributions; a plugin is imported the first time it is
asked for. A broken plugin fails loudly when requested (naming the plugin, its
target, its distribution and the cause) and never breaks listing or other
plugins. Two distributions claiming one name is an error, never a silent
winner.

Example:

>>> import tfsparse
>>> tfsparse.get_strategy("gmp").__name__
'GMP'
>>> "gmp" in [info.name for info in tfsparse.list_strategies()]
True
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
from importlib import metadata

GROUP = "tfsparse.strategies"
IN_PROCESS = "(in process)"

_LOADED: dict = {}  # name -> (target, class), after a successful load
_IN_PROCESS: dict = {}  # name -> class or "module:attr", from register_strategy


class PluginLoadError(ImportError):
    """A registered strategy could not be imported or is not a `Strategy`.

    Attributes `plugin`, `target` and `distribution` say which registration
    failed; `__cause__` holds the original error, if any.
    """

    def __init__(self, message, *, plugin, target, distribution):
        super().__init__(message)
        self.plugin, self.target, self.distribution = plugin, target, distribution


class DuplicateStrategyError(ValueError):
    """Several distributions register one strategy name."""


@dataclasses.dataclass(frozen=True)
class StrategyInfo:
    """One registration, as listed by `list_strategies()`.

    `status` is "ok" (imported), "not loaded", "broken: <cause>" (only with
    `check=True`) or "conflict: <other claimants>".
    """

    name: str
    target: str
    distribution: str | None
    version: str | None
    status: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _normalize(distribution):
    return None if distribution is None else re.sub(r"[-_.]+", "-", distribution).lower()


def _target_of(strategy) -> str:
    if isinstance(strategy, str):
        return strategy
    return f"{strategy.__module__}:{strategy.__qualname__}"


def _discover() -> dict:
    """name -> list of distinct registrations (`StrategyInfo` with no status)."""
    found: dict = {}
    for ep in metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)  # None for entry points built by hand
        info = StrategyInfo(ep.name, ep.value.split("[")[0].strip(), getattr(dist, "name", None),
                            getattr(dist, "version", None), "")
        entries = found.setdefault(ep.name, [])
        key = (_normalize(info.distribution), info.target)
        if all((_normalize(e.distribution), e.target) != key for e in entries):
            entries.append(info)
    for name, strategy in _IN_PROCESS.items():
        found[name] = [StrategyInfo(name, _target_of(strategy), IN_PROCESS, None, "")]
    return found


def _describe(info) -> str:
    if info.distribution == IN_PROCESS:
        return f"register_strategy in this process ({info.target})"
    version = f" {info.version}" if info.version else ""
    return f"{info.distribution or 'an unknown distribution'}{version} ({info.target})"


def _conflict_error(name, entries) -> DuplicateStrategyError:
    claims = "; ".join(_describe(e) for e in entries)
    return DuplicateStrategyError(
        f"Strategy {name!r} is registered {len(entries)} times: {claims}. tfsparse "
        "will not pick one silently. Uninstall all but one of these distributions "
        "(or rename the entry point in its setup.cfg), or choose one in this "
        f"process with tfsparse.register_strategy({name!r}, ..., clobber=True)."
    )


def _import_target(target):
    module_name, _, attribute = target.partition(":")
    obj = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def _check_class(obj, *, name, target, distribution):
    from tfsparse.strategy import Strategy  # lazy: keeps discovery light

    if isinstance(obj, type) and issubclass(obj, Strategy):
        return obj
    what = "a class that does not subclass" if isinstance(obj, type) else "not a class, so not a subclass of"
    raise PluginLoadError(
        f"Strategy plugin {name!r} (target {target!r}, distribution "
        f"{distribution or 'unknown'}) is {obj!r}: {what} tfsparse.Strategy. "
        "Point the entry point at a tfsparse.Strategy subclass.",
        plugin=name, target=target, distribution=distribution,
    )


def _load(info, raw):
    if not isinstance(raw, str):
        return _check_class(raw, name=info.name, target=info.target, distribution=info.distribution)
    try:
        obj = _import_target(raw)
    except Exception as error:  # any failure inside a plugin module
        version = f" {info.version}" if info.version else ""
        raise PluginLoadError(
            f"Strategy plugin {info.name!r} failed to load: importing entry point "
            f"target {info.target!r} from distribution "
            f"{info.distribution or 'unknown'}{version} raised "
            f"{type(error).__name__}: {error}. Fix or reinstall that distribution, "
            "or uninstall it.",
            plugin=info.name, target=info.target, distribution=info.distribution,
        ) from error
    return _check_class(obj, name=info.name, target=info.target, distribution=info.distribution)


def _unknown(name, available) -> ValueError:
    lowered = {n.lower(): n for n in available}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=1)
    hint = f" Did you mean {lowered[close[0]]!r}?" if close else ""
    return ValueError(
        f"Invalid value received for argument `name`. Expected a registered "
        f"strategy name.{hint} Available: {', '.join(sorted(available)) or 'none'} "
        f"(see `tfsparse list`). Received: name={name!r}"
    )


def get_strategy(name: str):
    """Returns the strategy class registered as `name`, importing it if needed.

    The class is cached: later calls do not import again.

    Args:
        name: A registered strategy name (see `list_strategies`).

    Returns:
        The `tfsparse.Strategy` subclass.

    Raises:
        ValueError: if no strategy has that name (the message lists the
            available names and the closest match).
        PluginLoadError: if the plugin cannot be imported or is not a
            `tfsparse.Strategy` subclass.
        DuplicateStrategyError: if several distributions claim the name.

    Example:

    >>> import tfsparse
    >>> tfsparse.get_strategy("gmp").__module__
    'tfsparse.strategies.gmp'
    """
    found = _discover()
    if not isinstance(name, str) or name not in found:
        raise _unknown(name, found)
    entries = found[name]
    if len(entries) > 1:
        raise _conflict_error(name, entries)
    info = entries[0]
    cached = _LOADED.get(name)
    if cached is not None and cached[0] == info.target:
        return cached[1]
    cls = _load(info, _IN_PROCESS.get(name, info.target))
    _LOADED[name] = (info.target, cls)
    return cls


def list_strategies(*, check=False) -> list[StrategyInfo]:
    """Lists every registered strategy; never fails on broken plugins.

    Args:
        check: Import each plugin to report "ok" or "broken: <cause>"
            instead of "not loaded". Defaults to `False`.

    Returns:
        `StrategyInfo` rows sorted by name. A name claimed by several
        distributions gives one "conflict: ..." row per claimant.

    Example:

    >>> import tfsparse
    >>> [i.status for i in tfsparse.list_strategies(check=True) if i.name == "gmp"]
    ['ok']
    """
    rows = []
    for name, entries in sorted(_discover().items()):
        if len(entries) > 1:
            for entry in entries:
                others = "; ".join(_describe(e) for e in entries if e is not entry)
                rows.append(dataclasses.replace(entry, status=f"conflict: also registered by {others}"))
            continue
        info = entries[0]
        cached = _LOADED.get(name)
        status = "ok" if cached is not None and cached[0] == info.target else "not loaded"
        if check and status != "ok":
            try:
                get_strategy(name)
                status = "ok"
            except PluginLoadError as error:
                cause = error.__cause__
                status = f"broken: {type(cause).__name__}: {cause}" if cause else f"broken: {error}"
        rows.append(dataclasses.replace(info, status=status))
    return rows


def register_strategy(name: str, strategy, *, clobber=False) -> None:
    """Registers a strategy in this process (notebooks, tests).

    An in-process registration takes precedence over an entry point of the
    same name, but only with `clobber=True` when they differ.

    Args:
        name: Registry name.
        strategy: A `tfsparse.Strategy` subclass, or a `"module:attr"` string
            imported on first use.
        clobber: Replace a different strategy registered as `name`.
            Defaults to `False`.

    Raises:
        ValueError: if `name` is not a non-empty string, `strategy` is neither
            a `Strategy` subclass nor a `"module:attr"` string, or `name` is
            taken by a different strategy and `clobber` is False.

    Example:

    >>> import tfsparse
    >>> from tfsparse.strategies.gmp import GMP
    >>> class MyGMP(GMP):
    ...     pass
    >>> tfsparse.register_strategy("my_gmp", MyGMP)
    >>> tfsparse.get_strategy("my_gmp") is MyGMP
    True
    >>> tfsparse.registry.unregister_strategy("my_gmp")
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            "Invalid value received for argument `name`. Expected a non-empty "
            f"string such as 'my_gmp'. Received: name={name!r}"
        )
    if isinstance(strategy, str):
        if not re.fullmatch(r"\s*[\w.]+\s*:\s*[\w.]+\s*", strategy):
            raise ValueError(
                "Invalid value received for argument `strategy`. Expected a "
                "'package.module:ClassName' string or a tfsparse.Strategy "
                f"subclass. Received: strategy={strategy!r}"
            )
    else:
        label = _target_of(strategy) if isinstance(strategy, type) else repr(strategy)
        try:
            _check_class(strategy, name=name, target=label, distribution=IN_PROCESS)
        except PluginLoadError as error:
            raise ValueError(
                "Invalid value received for argument `strategy`. Expected a "
                "tfsparse.Strategy subclass (the class, not an instance) or a "
                f"'module:attr' string. Received: strategy={strategy!r}"
            ) from error
    existing = _discover().get(name, [])
    same = strategy is _IN_PROCESS.get(name) or [e.target for e in existing] == [_target_of(strategy)]
    if existing and same and name not in _IN_PROCESS:
        return  # the installed entry point already names this implementation
    if existing and not same and not clobber:
        where = "; ".join(_describe(e) for e in existing)
        raise ValueError(
            f"Invalid value received for argument `name`. {name!r} is already "
            f"registered by {where}. Choose another name, or pass clobber=True "
            f"to replace it in this process. Received: name={name!r}"
        )
    _IN_PROCESS[name] = strategy
    _LOADED.pop(name, None)


def unregister_strategy(name: str) -> None:
    """Removes an in-process registration made with `register_strategy`.

    Entry points of the same name become visible again. Unknown names are
    ignored.

    Example:

    >>> import tfsparse
    >>> tfsparse.registry.unregister_strategy("never_registered")
    """
    _IN_PROCESS.pop(name, None)
    _LOADED.pop(name, None)
