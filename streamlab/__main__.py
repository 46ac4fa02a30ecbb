"""``python -m streamlab``: the ``streamlab`` command (:func:`streamlab.cli.main`), with its exit statuses."""

import sys

from streamlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
