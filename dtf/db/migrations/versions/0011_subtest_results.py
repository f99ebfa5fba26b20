"""subtests' results (unittest's subTest, pytest's subtests) as result lines of their own

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_UNIQUE = "uq_test_results_item_attempt_when"


def upgrade() -> None:
    with op.batch_alter_table("test_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subtest", sa.Text(), nullable=False, server_default=""))
        batch_op.drop_constraint(_UNIQUE, type_="unique")
        batch_op.create_unique_constraint(_UNIQUE, ["item_id", "attempt", "when", "subtest"])


def downgrade() -> None:
    with op.batch_alter_table("test_results", schema=None) as batch_op:
        batch_op.drop_constraint(_UNIQUE, type_="unique")
        batch_op.create_unique_constraint(_UNIQUE, ["item_id", "attempt", "when"])
        batch_op.drop_column("subtest")
