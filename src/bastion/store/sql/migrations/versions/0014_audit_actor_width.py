"""Audit actors as long as identity providers make them: an OpenID Connect user is named by a claim
(the email by default) and its principal by `oidc:<sub>`, either longer than the columns held
(36 and 200). On PostgreSQL such a record failed its insert, and the audit batch holding it was
retried, and refused, at every flush after.

Revision ID: 0014
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

WIDTH = 320  # an email address's longest form (64 + @ + 255), and room for a `oidc:` subject of 255


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.alter_column("actor_user", type_=sa.String(WIDTH), existing_type=sa.String(36))
        batch.alter_column("actor_client", type_=sa.String(WIDTH), existing_type=sa.String(200))


def downgrade() -> None:
    with op.batch_alter_table("audit_records") as batch:
        batch.alter_column("actor_user", type_=sa.String(36), existing_type=sa.String(WIDTH))
        batch.alter_column("actor_client", type_=sa.String(200), existing_type=sa.String(WIDTH))
