"""REST upstreams described by an OpenAPI document: where the document is and what of it to expose.

Revision ID: 0013
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.add_column(sa.Column("openapi", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upstreams") as batch:
        batch.drop_column("openapi")
