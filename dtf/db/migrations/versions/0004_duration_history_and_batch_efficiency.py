"""duration history and batch efficiency

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 19:18:56.799043
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "test_durations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.Text(), nullable=False),
        sa.Column("hardware", sa.String(length=32), nullable=False),
        sa.Column("nodeid", sa.Text(), nullable=False),
        sa.Column("mean_s", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("suite", "hardware", "nodeid"),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("startup_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("test_s", sa.Float(), nullable=True))

    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hardware", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("estimated_s", sa.Float(), nullable=True))

    with op.batch_alter_table("run_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suite", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_tasks", schema=None) as batch_op:
        batch_op.drop_column("suite")

    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("estimated_s")
        batch_op.drop_column("hardware")

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("test_s")
        batch_op.drop_column("startup_s")

    op.drop_table("test_durations")
