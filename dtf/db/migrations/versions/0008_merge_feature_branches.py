"""merge the recovery, benchmark and CI-context branches

Revision ID: 0008
Revises: 0005, 0006, 0007
Create Date: 2026-11-28 21:50:00

The three were written side by side on top of 0004 and touch different
tables; this revision only joins them so that the schema has one head again.
"""

revision = "0008"
down_revision = ("0005", "0006", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
