"""``python -m training.data.synthetic``: see :mod:`training.data.synthetic.cli`."""

import sys

from .cli import main

sys.exit(main())
