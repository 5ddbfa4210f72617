"""``python -m fskit.serving``: run a model server (the same as ``fskit serve``)."""

import sys

from fskit.serving._cli import main

if __name__ == "__main__":
    sys.exit(main())
