"""Report formats that reporter plugins add (``dtf_report_formats``) to ``dtf report``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dtf.plugins.manager import fire

logger = logging.getLogger("dtf.plugins")

#: render(run) -> text, where ``run`` is the run's JSON report (``dtf report --format json``)
Renderer = Callable[[dict[str, Any]], str]


def plugin_formats() -> dict[str, Renderer]:
    """Format name -> renderer, from every reporter plugin (the first plugin wins a name)."""
    from dtf.reporting import FORMAT_NAMES

    formats: dict[str, Renderer] = {}
    for offered in fire("dtf_report_formats"):
        if not isinstance(offered, dict):
            logger.warning("dtf: a reporter plugin returned %r, not a dict of formats", offered)
            continue
        for name, render in offered.items():
            if not isinstance(name, str) or not callable(render):
                logger.warning("dtf: reporter format %r is not a name and a function", name)
            elif name in FORMAT_NAMES or name in formats:
                logger.warning("dtf: reporter format %r is taken; the plugin's is ignored", name)
            else:
                formats[name] = render
    return formats


def format_names() -> tuple[str, ...]:
    """dtf's own report formats, then the plugins'."""
    from dtf.reporting import FORMAT_NAMES

    return (*FORMAT_NAMES, *plugin_formats())
