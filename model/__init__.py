"""The shipped model, installed as the package data ``modbot.model`` (``modbot/model`` links here)."""
