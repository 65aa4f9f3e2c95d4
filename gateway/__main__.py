"""``python -m gateway`` is the ``metastudio-gateway`` command."""

from gateway.cli import main

raise SystemExit(main())
