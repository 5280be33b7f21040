"""Database migrations (sqlite-utils ``Migrations``), installed as ``modbot.migrations``."""
