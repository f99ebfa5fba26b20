from pathlib import Path

from dtf.config import (
    find_home,
    load_settings,
    make_home,
    message_priority,
    project_dirs,
    project_root,
    redact,
)


def test_nothing_configured_is_the_embedded_default(tmp_path):
    settings = load_settings({"DTF_HOME": str(tmp_path / "home")})
    assert settings.embedded
    assert settings.broker_url == "filesystem://"
    assert settings.database_url == f"sqlite:///{tmp_path / 'home' / 'dtf.sqlite'}"
    assert settings.result_backend == f"file://{tmp_path / 'home' / 'results'}"
    queue = Path(settings.broker_transport_options["data_folder_in"])
    assert queue.is_relative_to(tmp_path / "home")
    assert queue in settings.folders()


def test_home_defaults_to_dot_dtf_in_the_current_directory(tmp_path, monkeypatch):
    # No .dtf/ and no project marker above tmp_path: the current directory.
    assert project_root(tmp_path) is None
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).home == tmp_path.resolve() / ".dtf"


def test_home_is_found_as_git_finds_dot_git(tmp_path, monkeypatch):
    root = tmp_path.resolve() / "project"
    deep = root / "src" / "pkg" / "tests"
    deep.mkdir(parents=True)
    # No .dtf yet: the project root, the nearest folder with a marker.
    for marker in (".git", "pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini"):
        made = root / marker
        made.mkdir() if marker == ".git" else made.write_text("")
        assert project_root(deep) == root
        assert find_home(deep) == root / ".dtf"
        made.rmdir() if marker == ".git" else made.unlink()
    (root / "pyproject.toml").write_text("")
    (root / "src" / "setup.cfg").write_text("")  # a nearer marker wins while no .dtf exists
    assert find_home(deep) == root / "src" / ".dtf"
    # An existing .dtf/ wins over any marker, the nearest one first.
    (root / ".dtf").mkdir()
    assert find_home(deep) == root / ".dtf"
    (root / "src" / "pkg" / ".dtf").mkdir()
    assert find_home(deep) == root / "src" / "pkg" / ".dtf"
    assert find_home(root / "src") == root / ".dtf"
    # A .dtf/ above the outermost project root is not this project's.
    (root / ".dtf").rmdir()
    (root / "src" / "pkg" / ".dtf").rmdir()
    (tmp_path / ".dtf").mkdir()
    assert find_home(deep) == root / "src" / ".dtf"
    (tmp_path / ".dtf").rmdir()
    (root / "src" / "pkg" / ".dtf").mkdir()
    # load_settings looks from the current directory; DTF_HOME still wins.
    monkeypatch.chdir(deep)
    assert load_settings({}).home == root / "src" / "pkg" / ".dtf"
    assert (
        load_settings({}).database_url
        == f"sqlite:///{root / 'src' / 'pkg' / '.dtf' / 'dtf.sqlite'}"
    )
    assert load_settings({"DTF_HOME": str(tmp_path / "h")}).home == tmp_path.resolve() / "h"
    # Plugins are looked for here, beside the nearest .dtf/, and in the project root.
    assert project_dirs(deep) == [deep, root / "src" / "pkg", root / "src"]


def test_the_home_dtf_makes_ignores_itself(tmp_path):
    settings = load_settings({"DTF_HOME": str(tmp_path / ".dtf")})
    settings.make_folders()
    ignore = tmp_path / ".dtf" / ".gitignore"
    assert ignore.read_text().splitlines()[-1] == "*"
    assert all(folder.is_dir() for folder in settings.folders())
    ignore.write_text("mine\n")  # never overwritten
    make_home(tmp_path / ".dtf")
    assert ignore.read_text() == "mine\n"


def test_a_redis_broker_is_also_the_result_backend_unless_told_otherwise():
    settings = load_settings({"DTF_BROKER_URL": "redis://r:6379/0"})
    assert not settings.embedded
    assert settings.result_backend == "redis://r:6379/0"
    assert settings.broker_transport_options["visibility_timeout"] >= 6 * 3600
    other = load_settings({"DTF_BROKER_URL": "redis://r/0", "DTF_RESULT_BACKEND": "redis://r/1"})
    assert other.result_backend == "redis://r/1"


def test_other_brokers_keep_results_in_the_database():
    settings = load_settings(
        {"DTF_BROKER_URL": "amqp://guest@mq//", "DTF_DATABASE_URL": "postgresql://db/dtf"}
    )
    assert settings.result_backend == "db+postgresql+psycopg2://db/dtf"


def test_redact_hides_passwords_only():
    assert redact("postgresql://dtf:s3cret@db:5432/dtf") == "postgresql://dtf:***@db:5432/dtf"
    assert redact("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_a_postgresql_url_without_a_driver_uses_the_psycopg2_dtf_installs():
    for url in ("postgresql://u@db:5432/dtf", "postgres://u@db:5432/dtf"):
        settings = load_settings({"DTF_BROKER_URL": "redis://r", "DTF_DATABASE_URL": url})
        assert settings.database_url == "postgresql+psycopg2://u@db:5432/dtf"
    named = load_settings({"DTF_DATABASE_URL": "postgresql+psycopg2://u@db/dtf"})
    assert named.database_url == "postgresql+psycopg2://u@db/dtf"


def test_priority_9_is_served_first_on_every_broker():
    # kombu's Redis transport pops the lowest priority first, one list per level.
    for url in ("redis://r/0", "rediss://r/0", "sentinel://s:26379"):
        assert [message_priority(p, url) for p in (9, 5, 0)] == [0, 4, 9]
        steps = load_settings({"DTF_BROKER_URL": url}).broker_transport_options
        assert steps["priority_steps"] == list(range(10))
    # RabbitMQ and the embedded broker serve the highest first.
    for url in ("amqp://guest@mq//", "filesystem://"):
        assert [message_priority(p, url) for p in (9, 5, 0)] == [9, 5, 0]
    amqp = load_settings({"DTF_BROKER_URL": "amqp://mq//"})
    assert "priority_steps" not in amqp.broker_transport_options
