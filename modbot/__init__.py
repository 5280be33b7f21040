"""modbot: medium-mismatch moderation for image subreddits."""

__version__ = "0.1.0"
