"""SQL over modbot's database for the moderators' tools, returning plain data.

No click, no rich: errors are :mod:`modbot.errors` (``InputError`` for a bad argument,
``StoreError`` for an unusable database, ``ConfigError`` for an unusable configuration).

- :mod:`modbot.queries.db` — which database a command uses; opening an existing one.
- :mod:`modbot.queries.report` — the figures of ``modbot report``.
- :mod:`modbot.queries.review` — flagged submissions, one in full, recording decisions.
- :mod:`modbot.queries.models` — retraining runs and champion changes (``modbot models``).
- :mod:`modbot.queries.summary` — the summary ``modbot demo`` prints.
"""
