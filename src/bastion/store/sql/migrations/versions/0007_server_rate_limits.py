"""A virtual server's own rate limits (JSON, null for none).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("virtual_servers") as batch:
        batch.add_column(sa.Column("rate_limits", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("virtual_servers") as batch:
        batch.drop_column("rate_limits")
