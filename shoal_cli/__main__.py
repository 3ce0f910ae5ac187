"""``python -m shoal_cli``: the same as the ``shoal`` command."""

import sys

from shoal_cli.main import main

sys.exit(main())
