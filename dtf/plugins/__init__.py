"""dtf's plugins, on pluggy: ``fire`` a hook, find and list plugins.

See :mod:`dtf.plugins.hookspecs` for the hooks and which process fires each,
and :mod:`dtf.plugins.manager` for discovery and failure isolation.
"""

from dtf.plugins.hookspecs import hookimpl
from dtf.plugins.manager import (
    ENTRY_POINT_GROUP,
    KINDS,
    PLUGINS_ENV,
    PluginInfo,
    fire,
    load_plugins,
    plugin_manager,
    plugins,
    register,
    reset,
    unregister,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "PLUGINS_ENV",
    "PluginInfo",
    "fire",
    "hookimpl",
    "load_plugins",
    "plugin_manager",
    "plugins",
    "register",
    "reset",
    "unregister",
]
