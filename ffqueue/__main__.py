"""``python -m ffqueue`` is the ``ffqueue`` command."""

from ffqueue.cli import main

main()
