"""``python -m modbot.cli``: the ``modbot`` command (as the systemd unit and benches run it)."""

from modbot.cli import main

main()
