"""A revision per upstream and virtual server row, counted up by every write of its spec: a replica
saves a change only where the row is still at the revision it read, so of two replicas changing one
upstream at once the second does not silently undo the first (it applies its change again on what
the first saved).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("upstreams", "virtual_servers")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("revision")
