"""An integration's settings: the task file's ``integrations.<name>``, else the environment.

Secrets (tokens, passwords, webhook URLs) come from the environment only: a task
file is stored with the run, so what it holds is not secret.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
#: A task-file key with one of these in its name is refused as a secret.
_SECRET_WORDS = ("token", "password", "secret", "api_key", "apikey", "webhook")


class ConfigError(ValueError):
    """An integration's setting is malformed; the message names it and what to write."""


def task_file_section(run: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """``integrations.<name>`` of the run's spec (``{}`` when absent)."""
    spec = (run or {}).get("spec") or {}
    section = (spec.get("integrations") or {}).get(name) or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"task file: integrations.{name}: expected an object")
    return dict(section)


class Options:
    """Typed reads of one integration's settings; a task-file value beats the environment."""

    def __init__(
        self,
        name: str,
        *,
        env: Mapping[str, str] | None = None,
        task: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.env = os.environ if env is None else env
        self.task = dict(task or {})

    @classmethod
    def for_run(
        cls, name: str, run: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
    ) -> Options:
        return cls(name, env=env, task=task_file_section(run, name))

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse a task-file key this integration does not read (a typo would be ignored)."""
        known = set(known)
        for key in self.task:
            if any(word in key.lower() for word in _SECRET_WORDS):
                raise ConfigError(
                    f"task file: integrations.{self.name}.{key}: secrets are not read from a "
                    "task file (it is stored with the run); set it in the environment, "
                    "see docs/integrations.md"
                )
            if key not in known:
                raise ConfigError(
                    f"task file: integrations.{self.name}.{key}: unknown setting "
                    f"(known: {', '.join(sorted(known))})"
                )

    def _raw(self, key: str | None, env_var: str | None) -> tuple[Any, str]:
        if key is not None and self.task.get(key) is not None:
            return self.task[key], f"task file: integrations.{self.name}.{key}"
        if env_var is not None:
            value = self.env.get(env_var)
            if value is not None and value.strip() != "":
                return value.strip(), env_var
        return None, ""

    def secret(self, env_var: str) -> str | None:
        """A secret: from the environment only, never from the task file."""
        value = self.env.get(env_var)
        return value.strip() if value and value.strip() else None

    def text(self, key: str | None, env_var: str | None, default: str | None = None) -> str | None:
        value, where = self._raw(key, env_var)
        if value is None:
            return default
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
        return str(value)

    def integer(
        self, key: str | None, env_var: str | None, default: int, *, minimum: int = 0
    ) -> int:
        value, where = self._raw(key, env_var)
        if value is None:
            return default
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number < minimum:
            raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
        return number

    def boolean(self, key: str | None, env_var: str | None, default: bool) -> bool:
        value, where = self._raw(key, env_var)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")

    def choice(
        self, key: str | None, env_var: str | None, choices: Iterable[str], default: str
    ) -> str:
        choices = tuple(choices)
        value, where = self._raw(key, env_var)
        if value is None:
            return default
        word = str(value).strip().lower()
        if word not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
        return word

    def words(self, key: str | None, env_var: str | None) -> list[str]:
        """A comma-separated string (environment) or a list (task file)."""
        value, where = self._raw(key, env_var)
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(part, str) for part in value):
            return [part.strip() for part in value if part.strip()]
        raise ConfigError(f"{where}: expected a comma-separated string or a list of strings")
