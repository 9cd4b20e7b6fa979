"""account countries

Revision ID: 20261123_0002
Revises: 20261123_0001
Create Date: 2026-11-23 15:17:24.303412
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261123_0002"
down_revision = "20261123_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_countries",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_countries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "country", name=op.f("pk_account_countries")),
    )
    # the countries devices remember are known already
    op.execute(
        "INSERT INTO account_countries (account_id, country, first_seen_at, last_seen_at) "
        "SELECT account_id, last_country, MIN(first_seen_at), MAX(last_seen_at) FROM devices "
        "WHERE last_country IS NOT NULL GROUP BY account_id, last_country"
    )


def downgrade() -> None:
    op.drop_table("account_countries")
