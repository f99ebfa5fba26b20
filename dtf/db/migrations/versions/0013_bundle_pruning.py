"""bundles: when a run last used one, and when its archive was pruned

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Columns added only: SQLite alters the table in place (recreating it would
    # break the foreign key runs.bundle holds on it).
    with op.batch_alter_table("bundles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE bundles SET last_used_at = created_at")


def downgrade() -> None:
    # Not in batch mode either: SQLite (3.35+) drops a column in place.
    op.drop_column("bundles", "pruned_at")
    op.drop_column("bundles", "last_used_at")
