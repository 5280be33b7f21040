"""The shipped model, installed as the package ``modbot.shipped_model``."""
