"""labels of a run as a column of its own

Revision ID: 0009
Revises: 0008

Runs written before keep their labels in ``spec``; they are copied over so that
``dtf report --label`` finds old runs too.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="{}"))
    runs = sa.table("runs", sa.column("id", sa.String()), sa.column("spec", sa.JSON()),
                    sa.column("labels", sa.JSON()))  # fmt: skip
    connection = op.get_bind()
    found = []
    for run_id, spec in connection.execute(sa.select(runs.c.id, runs.c.spec)):
        if isinstance(spec, str):  # a JSON column some drivers hand back as text
            spec = json.loads(spec)
        labels = (spec or {}).get("labels") if isinstance(spec, dict) else None
        if labels:
            found.append({"run_id": run_id, "labels": labels})
    if found:
        connection.execute(
            runs.update().where(runs.c.id == sa.bindparam("run_id")),
            found,
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("labels")
