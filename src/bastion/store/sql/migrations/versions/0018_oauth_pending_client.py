"""A pending authorization request names its client (by a hash of the client_id, which may be a
long metadata document URL), so that one client's pending requests can be counted and capped.
Rows from before have none; they expire within the consent lifetime.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_pending") as table:
        table.add_column(sa.Column("client_key", sa.String(64)))
    op.create_index("ix_oauth_pending_client_key", "oauth_pending", ["client_key"])


def downgrade() -> None:
    op.drop_index("ix_oauth_pending_client_key", "oauth_pending")
    with op.batch_alter_table("oauth_pending") as table:
        table.drop_column("client_key")
