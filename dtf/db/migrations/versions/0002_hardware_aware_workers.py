"""hardware-aware workers: worker health and load, per-batch test timeout

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 18:35:31.849279
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("test_timeout", sa.Float(), nullable=True))
        batch_op.alter_column("queue", type_=sa.String(length=255), existing_nullable=False)
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("queue_health", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.add_column(
            sa.Column("active_tasks", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("heartbeat_interval", sa.Float(), nullable=False, server_default="10")
        )


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.alter_column("queue", type_=sa.String(length=64), existing_nullable=False)
        batch_op.drop_column("test_timeout")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_interval")
        batch_op.drop_column("active_tasks")
        batch_op.drop_column("queue_health")
