"""recovery: performance table, recovery events, flaky tests, test attempts, quarantine

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite gives the unique constraints of 0001 no name; batch mode names them by this.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _old_unique_name() -> str:
    if op.get_bind().dialect.name == "sqlite":
        return "uq_test_results_item_id_when"
    return "test_results_item_id_when_key"  # PostgreSQL's default name


def upgrade() -> None:
    op.create_table(
        "recovery_stats",
        sa.Column("failure_class", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("recover_s", sa.Float(), nullable=False),
        sa.Column("cpu_s", sa.Float(), nullable=False),
        sa.Column("memory_mib_s", sa.Float(), nullable=False),
        sa.Column("tests_affected", sa.Integer(), nullable=False),
        sa.Column("tests_recovered", sa.Integer(), nullable=False),
        sa.Column("recent", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("failure_class", "strategy"),
    )
    op.create_table(
        "recovery_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("batch_id", sa.String(length=36), nullable=True),
        sa.Column("nodeid", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("failure_class", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("tests", sa.Integer(), nullable=False),
        sa.Column("recover_s", sa.Float(), nullable=True),
        sa.Column("cpu_s", sa.Float(), nullable=True),
        sa.Column("memory_mib_s", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recovery_events_run_id", "recovery_events", ["run_id"])
    op.create_index("ix_recovery_events_batch_id", "recovery_events", ["batch_id"])
    op.create_table(
        "flaky_tests",
        sa.Column("suite", sa.Text(), nullable=False),
        sa.Column("nodeid", sa.Text(), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.String(length=36), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("suite", "nodeid"),
    )
    with op.batch_alter_table("batches") as batch_op:
        batch_op.add_column(sa.Column("dispatch", sa.JSON(), nullable=True))
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.add_column(sa.Column("failure_class", sa.String(length=32), nullable=True))
    with op.batch_alter_table("test_items") as batch_op:
        batch_op.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("workers") as batch_op:
        batch_op.add_column(sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("quarantine_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("test_results", naming_convention=_NAMING) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("superseded", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.drop_constraint(_old_unique_name(), type_="unique")
        batch_op.create_unique_constraint(
            "uq_test_results_item_attempt_when", ["item_id", "attempt", "when"]
        )


def downgrade() -> None:
    with op.batch_alter_table("test_results", naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint("uq_test_results_item_attempt_when", type_="unique")
        batch_op.create_unique_constraint(_old_unique_name(), ["item_id", "when"])
        batch_op.drop_column("superseded")
        batch_op.drop_column("attempt")
    with op.batch_alter_table("workers") as batch_op:
        batch_op.drop_column("quarantine_reason")
        batch_op.drop_column("quarantined_at")
    with op.batch_alter_table("test_items") as batch_op:
        batch_op.drop_column("retries")
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.drop_column("failure_class")
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_column("dispatch")
    op.drop_table("flaky_tests")
    op.drop_index("ix_recovery_events_batch_id", "recovery_events")
    op.drop_index("ix_recovery_events_run_id", "recovery_events")
    op.drop_table("recovery_events")
    op.drop_table("recovery_stats")
