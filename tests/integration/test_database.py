"""Migrations create and upgrade the schema on SQLite and on the real PostgreSQL."""

import pytest
from sqlalchemy import create_engine, inspect

from dtf.db.models import Base
from dtf.db.schema import current_revision, ensure_schema, head_revision, upgrade
from dtf.errors import BadInput
from tests.support.processes import clean_env, run_dtf

pytestmark = pytest.mark.integration


def test_migrations_create_every_table_of_the_models(database_url):
    assert current_revision(database_url) is None
    assert upgrade(database_url) == head_revision()
    engine = create_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert current_revision(database_url) == head_revision()


def test_a_missing_schema_is_created_only_when_asked(database_url):
    with pytest.raises(BadInput, match="dtf init-db"):
        ensure_schema(database_url, create=False)
    ensure_schema(database_url, create=True)
    ensure_schema(database_url, create=False)


def test_init_db_is_idempotent(tmp_path, database_url):
    env = clean_env(DTF_DATABASE_URL=database_url)
    first = run_dtf("init-db", env=env, cwd=tmp_path)
    again = run_dtf("init-db", env=env, cwd=tmp_path)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    assert f"revision {head_revision()}" in again.stdout


def test_the_migrated_schema_matches_the_models_column_for_column(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []
