"""OAuth clients remember when they were last used (unused registrations expire), and a used
authorization code remembers the token family it issued (a replay revokes that family).

Revision ID: 0009
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0013"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients") as table:
        table.add_column(sa.Column("last_used_at", TZ))
    with op.batch_alter_table("oauth_codes") as table:
        table.add_column(sa.Column("family", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("oauth_codes") as table:
        table.drop_column("family")
    with op.batch_alter_table("oauth_clients") as table:
        table.drop_column("last_used_at")
