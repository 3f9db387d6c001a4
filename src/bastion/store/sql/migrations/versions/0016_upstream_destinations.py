"""The origins approved to receive a REST or A2A upstream's stored credentials (core/destinations.py):
a document or agent card that later sends calls elsewhere is refused until an admin approves. Rows
saved before have none; their next discovery approves what it finds.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.add_column(sa.Column("destinations", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.drop_column("destinations")
