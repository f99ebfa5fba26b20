"""The plugin manager: discovery, registration, and ``fire`` that never fails a run.

Plugins come from three places, in this order:

1. the ``dtf.plugins`` entry-point group of installed distributions;
2. ``DTF_PLUGINS=module[:attr],...`` in the environment;
3. the ``plugins:`` list of a task file (loaded by the CLI that submits it).

A module that is not importable from ``sys.path`` is looked for in the project's
directory too (the current directory, the folder holding ``.dtf/``, the project
root: :func:`dtf.config.project_dirs`), added at the end of ``sys.path`` so that
a project never shadows an installed module. A target that failed to load is not
tried again in the same process: one warning, not one per place that names it.

A plugin is a module, a class (instantiated without arguments) or an object
whose hook functions carry ``@hookimpl`` and which declares its kind in a
``dtf_plugin_kind`` attribute (one of :data:`KINDS`). It may also say whether
it is set up: ``dtf_configured(env)`` (``env`` the environment's mapping)
returns True when it is, else a short phrase naming what to set (e.g. ``"set
DTF_SLACK_WEBHOOK_URL"``); ``dtf plugins`` shows the answer, asked when it is
read (:attr:`PluginInfo.configured`), so it follows the environment.

Failure isolation: ``fire`` calls each plugin's implementation on its own. One
that raises is logged and disabled for the rest of that run in this process
(the run is read from the hook's payload); a failure in a hook without a run
(worker and coordinator hooks) disables the plugin for the rest of the
process. A failure inside a run is also stored as that plugin's integration
outcome, so ``dtf status RUN`` shows it. Nothing a plugin does changes a run's
result. Hook wrappers (``hookwrapper``/``wrapper``) are not supported.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from dtf.plugins import hookspecs

logger = logging.getLogger("dtf.plugins")

KINDS: tuple[str, ...] = (
    "scheduler",
    "executor",
    "reporter",
    "notification",
    "monitoring",
    "integration",
)
ENTRY_POINT_GROUP = "dtf.plugins"
PLUGINS_ENV = "DTF_PLUGINS"
#: ``dtf_configured(env) -> True | "what to set"``: whether a plugin is set up
CONFIGURED_ATTR = "dtf_configured"

_PROCESS = None  # the key of a process-wide disable, where a hook has no run


@dataclass
class PluginInfo:
    """A plugin dtf tried to load, and how it is doing."""

    name: str
    target: str  # module[:attr]
    source: str  # "entry point", "DTF_PLUGINS", "task file" or "registered"
    kind: str | None = None
    error: str | None = None  # why it could not be loaded
    hooks: list[str] = field(default_factory=list)
    #: runs it is disabled for in this process; None: the whole process
    disabled: dict[str | None, str] = field(default_factory=dict)
    #: the plugin's ``dtf_configured(env)``, None when it has none
    configured_check: Callable[[Mapping[str, str]], bool | str] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def status(self) -> str:
        if self.error:
            return "failed to load"
        if _PROCESS in self.disabled:
            return "disabled"
        return "disabled for a run" if self.disabled else "active"

    @property
    def configured(self) -> bool | None:
        """Whether the plugin has the settings it needs here; None: it does not say."""
        return self.configuration()[0]

    @property
    def configured_detail(self) -> str:
        """When not configured, what to set (``""`` otherwise)."""
        return self.configuration()[1]

    def configuration(self, env: Mapping[str, str] | None = None) -> tuple[bool | None, str]:
        """``(configured, detail)`` from the plugin's ``dtf_configured`` for ``env``
        (default: this process's environment), asked now; never raises."""
        if self.configured_check is None:
            return None, ""
        if not callable(self.configured_check):
            return False, f"{CONFIGURED_ATTR} is not a function of the environment"
        try:
            answer = self.configured_check(os.environ if env is None else env)
        except Exception as exc:  # a plugin's bug must not break `dtf plugins`
            return False, plugin_error_line("dtf_configured", exc)
        if answer is None:  # it cannot tell
            return None, ""
        if answer is True:
            return True, ""
        if isinstance(answer, str) and answer.strip():
            return False, " ".join(answer.split())[:300]
        return False, ""

    def to_dict(self) -> dict[str, Any]:
        configured, detail = self.configuration()
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "target": self.target,
            "status": self.status,
            "error": self.error,
            "hooks": list(self.hooks),
            "disabled": {run or "process": why for run, why in self.disabled.items()},
            "configured": configured,
            "configured_detail": detail,
        }


class PluginLoadError(Exception):
    """A plugin could not be imported, instantiated or validated."""


_lock = threading.RLock()
_manager: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}
#: Where what a hook implementation prints goes, in a process that sets it (a worker:
#: see :mod:`dtf.plugins.worker`): ``sink(plugin, run_id, stdout, stderr)``. None: it
#: is printed where the process prints (the coordinator: the user's terminal).
output_sink: Callable[[str, str | None, str, str], None] | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, with entry-point and ``DTF_PLUGINS`` plugins loaded."""
    global _manager
    with _lock:
        if _manager is None:
            manager = pluggy.PluginManager(hookspecs.PROJECT)
            manager.add_hookspecs(hookspecs)
            _manager = manager
            _load_entry_points()
            load_plugins(_env_targets(), source=PLUGINS_ENV)
        return _manager


def reset() -> None:
    """Forget every plugin; the next use discovers them again (tests, long-lived hosts)."""
    global _manager
    with _lock:
        _manager = None
        _infos.clear()


def plugins() -> list[PluginInfo]:
    """Every plugin tried in this process, loaded or not, in load order."""
    plugin_manager()
    with _lock:
        return list(_infos.values())


def settings_sections() -> set[str]:
    """The ``integrations.<name>`` sections of a task file the loaded plugins read: each
    plugin's ``dtf_settings_sections`` (default: its name)."""
    manager = plugin_manager()
    with _lock:
        sections: set[str] = set()
        for name, plugin in manager.list_name_plugin():
            sections.update(getattr(plugin, "dtf_settings_sections", None) or (name,))
        return sections


def settings_keys() -> dict[str, set[str]]:
    """The keys the loaded plugins read in each ``integrations.<name>`` section, where
    they say (``dtf_settings_keys``: section -> keys); sections no plugin lists are not
    checked key by key."""
    manager = plugin_manager()
    with _lock:
        keys: dict[str, set[str]] = {}
        for _name, plugin in manager.list_name_plugin():
            for section, known in (getattr(plugin, "dtf_settings_keys", None) or {}).items():
                keys.setdefault(section, set()).update(known)
        return keys


def load_plugins(targets: Iterable[str], source: str) -> list[PluginInfo]:
    """Load ``module[:attr]`` targets; one that fails is logged and listed, never raised."""
    loaded = []
    for target in targets:
        target = target.strip()
        if not target:
            continue
        failed = _failed(target)
        if failed is not None:  # warned once already (e.g. dtf run, then its run's end)
            loaded.append(failed)
            continue
        loaded.append(_load(target, name=None, source=source, load=lambda t=target: _import(t)))
    return loaded


def _failed(target: str) -> PluginInfo | None:
    with _lock:
        return next((i for i in _infos.values() if i.target == target and i.error), None)


def register(
    plugin: object, *, name: str | None = None, kind: str | None = None, source: str = "registered"
) -> PluginInfo:
    """Register an object as a plugin (``kind`` overrides its ``dtf_plugin_kind``)."""
    if kind is not None:
        _set_kind(plugin, kind)
    target = name or _describe(plugin)
    return _load(target, name=name, source=source, load=lambda: plugin)


def unregister(name: str) -> None:
    """Remove a plugin by name (no error when it is not there)."""
    with _lock:
        manager = plugin_manager()
        plugin = manager.get_plugin(name)
        if plugin is not None:
            manager.unregister(plugin, name=name)
        _infos.pop(name, None)


def fire(hook_name: str, **kwargs: Any) -> list[Any]:
    """Call ``pm.hook.<hook_name>(**kwargs)`` plugin by plugin; never raises.

    Returns the non-None results in pluggy's call order (the first one only for
    ``firstresult`` hooks). A plugin that raises is logged and disabled for
    the run the payload belongs to (for the process when there is none).
    """
    try:
        manager = plugin_manager()
        caller = getattr(manager.hook, hook_name, None)
        if caller is None or caller.spec is None:
            logger.error("dtf: no hook named %s; plugins were not called", hook_name)
            return []
        impls = caller.get_hookimpls()
        if not impls:
            return []
        run_id = _run_of(kwargs)
        first_only = bool(caller.spec.opts.get("firstresult"))
    except Exception:  # never let discovery break the caller
        logger.exception("dtf: could not call plugins for %s", hook_name)
        return []
    results: list[Any] = []
    for impl in reversed(impls):  # pluggy calls the last registered first
        if impl.hookwrapper or impl.wrapper or _is_disabled(impl.plugin_name, run_id):
            continue
        try:
            result = _call(impl, kwargs, run_id)
        except Exception as exc:
            _disable(impl.plugin_name, run_id, hook_name, exc)
            continue
        if result is not None:
            results.append(result)
            if first_only:
                break
    return results


def _call(impl, kwargs: dict[str, Any], run_id: str | None) -> Any:
    """One implementation's call; what it prints goes to :data:`output_sink` when set."""
    sink = output_sink
    if sink is None:
        return impl.function(*[kwargs.get(arg) for arg in impl.argnames])
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return impl.function(*[kwargs.get(arg) for arg in impl.argnames])
    finally:
        if out.tell() or err.tell():
            try:
                sink(impl.plugin_name, run_id, out.getvalue(), err.getvalue())
            except Exception as exc:  # never let the output break the caller
                logger.warning("dtf: could not keep what plugin %s printed: %s",
                               impl.plugin_name, exc)  # fmt: skip


def plugin_error_line(hook_name: str, exc: BaseException) -> str:
    """One line saying what a plugin raised, without credentials in URLs."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    text = _URL_CREDENTIALS.sub("***@", text)
    text = _BEARER.sub(r"\1 ***", text)
    return f"{hook_name} raised {text}"[:300]


_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def _load_entry_points() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _load(entry.value, name=entry.name, source="entry point", load=lambda e=entry: _object(e))


def _object(entry) -> object:
    return _instantiate(entry.load())


def _env_targets() -> list[str]:
    return [t for t in os.environ.get(PLUGINS_ENV, "").split(",") if t.strip()]


def _import(target: str) -> object:
    module_name, _, attr = target.partition(":")
    try:
        obj: object = _import_module(module_name)
    except ImportError as exc:
        raise PluginLoadError(f"cannot import {module_name}: {exc}") from exc
    for part in filter(None, attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginLoadError(f"{module_name} has no attribute {attr!r}") from None
    return _instantiate(obj)


def _import_module(name: str) -> object:
    """``name`` from ``sys.path``, else from the project's directories (appended)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        if exc.name not in (name, top):
            raise  # the module is there; something it imports is not
        from dtf.config import project_dirs

        try:
            dirs = [str(d) for d in project_dirs()]
        except OSError:  # the current directory is gone
            raise exc from None
        added = [d for d in dirs if d not in sys.path]
        if added:
            sys.path.extend(added)
            importlib.invalidate_caches()
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as again:
                if again.name not in (name, top):
                    raise
                exc = again
        raise ModuleNotFoundError(
            f"{exc} (looked on sys.path and in the project: {', '.join(dirs)})", name=exc.name
        ) from None


def _instantiate(obj: object) -> object:
    return obj() if isinstance(obj, type) else obj


def _load(target: str, *, name: str | None, source: str, load) -> PluginInfo:
    with _lock:
        manager = _manager if _manager is not None else plugin_manager()
        info = PluginInfo(name=name or target, target=target, source=source)
        try:
            plugin = load()
            info.name = name or getattr(plugin, "dtf_plugin_name", None) or target
            if manager.is_registered(plugin) or manager.get_plugin(info.name) is not None:
                existing = _infos.get(info.name) or info
                return existing  # the same plugin named twice (entry point and config)
            info.kind = _kind_of(plugin)
            info.configured_check = getattr(plugin, CONFIGURED_ATTR, None)
            manager.register(plugin, name=info.name)
            info.hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or [])
            wrappers = [
                impl.function.__name__
                for caller in manager.get_hookcallers(plugin) or []
                for impl in caller.get_hookimpls()
                if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper)
            ]
            if wrappers:
                manager.unregister(plugin)
                raise PluginLoadError(f"hook wrappers are not supported: {', '.join(wrappers)}")
            _check_unknown_hooks(plugin)
        except Exception as exc:
            info.error = " ".join(str(exc).split())[:300] or type(exc).__name__
            logger.warning("dtf: plugin %s (%s) not loaded: %s", info.name, source, info.error)
            # A failed plugin is listed under its target (load_plugins tries it only once).
            info.name = name or target
        _infos[info.name] = info
        return info


def _kind_of(plugin: object) -> str:
    kind = getattr(plugin, "dtf_plugin_kind", None)
    if kind not in KINDS:
        got = "none" if kind is None else repr(kind)
        raise PluginLoadError(
            f"dtf_plugin_kind must be one of {', '.join(KINDS)} (got {got}); "
            "set it on the plugin module or class"
        )
    return kind


def _set_kind(plugin: object, kind: str) -> None:
    if kind not in KINDS:
        raise PluginLoadError(f"unknown plugin kind {kind!r} (known: {', '.join(KINDS)})")
    plugin.dtf_plugin_kind = kind  # type: ignore[attr-defined]


def _check_unknown_hooks(plugin: object) -> None:
    # A misspelt hook would otherwise never be called, silently.
    known = {name for name in dir(hookspecs) if name.startswith("dtf_")}
    for attr in dir(plugin):
        unknown = attr.startswith("dtf_") and attr not in known | _PLUGIN_ATTRS
        if unknown and callable(getattr(plugin, attr, None)):
            logger.warning(
                "dtf: plugin %s defines %s, which is not a dtf hook", _describe(plugin), attr
            )


_PLUGIN_ATTRS = {
    "dtf_plugin_kind", "dtf_plugin_name", "dtf_settings_sections", "dtf_settings_keys",
    CONFIGURED_ATTR,
}  # fmt: skip


def _describe(plugin: object) -> str:
    if hasattr(plugin, "__name__"):
        return str(plugin.__name__)
    cls = type(plugin)
    return f"{cls.__module__}:{cls.__qualname__}"


def _run_of(kwargs: dict[str, Any]) -> str | None:
    for key, value in kwargs.items():
        if isinstance(value, dict):
            run_id = value.get("id") if key == "run" else value.get("run_id")
            if run_id:
                return str(run_id)
    return None


def _is_disabled(name: str, run_id: str | None) -> bool:
    info = _infos.get(name)
    return info is not None and (_PROCESS in info.disabled or run_id in info.disabled)


def _disable(name: str, run_id: str | None, hook_name: str, exc: Exception) -> None:
    line = plugin_error_line(hook_name, exc)
    with _lock:
        info = _infos.get(name)
        if info is not None:
            info.disabled[run_id] = line
    scope = f"run {run_id}" if run_id else "this process"
    logger.warning("dtf: plugin %s disabled for %s: %s", name, scope, line)
    logger.debug("dtf: plugin %s traceback", name, exc_info=exc)
    if run_id is not None:
        from dtf.plugins.outcomes import record_outcome

        record_outcome(
            run_id, name, ok=False, error=line, kind=info.kind if info is not None else None
        )
