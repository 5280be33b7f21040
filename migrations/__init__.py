"""Database migrations (sqlite-utils ``Migrations``), installed as the package ``modbot.migrations``."""

from .migrations import migrations

__all__ = ["migrations"]
