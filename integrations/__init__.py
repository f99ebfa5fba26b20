"""Outbound integrations, each a dtf plugin: CI providers (``ci/``), notifiers
(``notify/``), trackers (``trackers/``) and metrics (``metrics/``).

dtf never imports this package; it finds the plugins through the
``dtf.plugins`` entry points in setup.cfg. Every request goes through
:func:`dtf.integrations.http.http_session` (timeouts, retries with back-off).
"""
