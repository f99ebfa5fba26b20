"""CI context of a run and integration outcomes

Revision ID: 0007
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ci_provider", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("ci_commit", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ci_branch", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ci_pull_request", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ci_build_url", sa.Text(), nullable=True))
    op.create_table(
        "integration_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("integration", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_integration_outcomes_run_id"), "integration_outcomes", ["run_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_integration_outcomes_run_id"), table_name="integration_outcomes")
    op.drop_table("integration_outcomes")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("ci_build_url")
        batch_op.drop_column("ci_pull_request")
        batch_op.drop_column("ci_branch")
        batch_op.drop_column("ci_commit")
        batch_op.drop_column("ci_provider")
