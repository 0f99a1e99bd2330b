"""``python -m herald_operator``: the same as the ``herald-operator`` command."""

from herald_operator.cli import main

raise SystemExit(main())
