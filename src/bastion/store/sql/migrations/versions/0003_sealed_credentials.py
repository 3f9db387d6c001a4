"""Upstream headers, env and auth settings sealed by the vault: new columns for the ciphertexts.

Rows written by older versions keep their plain values until Bastion seals them on start (the
migration has no key); after that the plain columns hold {}.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.add_column(sa.Column("env_sealed", sa.Text))
        batch.add_column(sa.Column("headers_sealed", sa.Text))
        batch.add_column(sa.Column("auth_sealed", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.drop_column("auth_sealed")
        batch.drop_column("headers_sealed")
        batch.drop_column("env_sealed")
