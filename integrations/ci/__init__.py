"""CI providers, one module each, behind :class:`dtf.integrations.ci.base.CiProvider`.

``dtf run`` finds the CI it runs in (``dtf/ci_context.py``) and stores commit,
branch, pull request and build URL on the run. Each provider module ends with
``plugin = CiIntegration(Provider)`` and is registered in setup.cfg's
``dtf.plugins`` entry points; the plugin acts only in its own CI and only when
its token is set. To add a provider: subclass ``CiProvider``, implement what
the service offers (the rest raises ``NotOffered``), add the detection of its
CI to ``dtf/ci_context.py`` and the entry point.
"""
