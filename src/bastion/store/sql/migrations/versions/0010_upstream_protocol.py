"""Upstreams: the protocol era Bastion speaks to each (`auto` mirrors the caller's era).

Revision ID: 0010
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.add_column(sa.Column("protocol", sa.String(16), nullable=False, server_default="auto"))


def downgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.drop_column("protocol")
