"""code bundles

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 18:38:53.972920
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bundles",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bundle", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key("fk_runs_bundle", "bundles", ["bundle"], ["sha256"])


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_runs_bundle", type_="foreignkey")
        batch_op.drop_column("bundle")

    op.drop_table("bundles")
