"""Database migrations (sqlite-utils ``Migrations``), imported as ``modbot.migrations`` (``modbot/migrations`` links here)."""

from .migrations import migrations

__all__ = ["migrations"]
