"""``python -m pscl.cli``: the ``pscl`` command."""
from pscl.cli import main

main()
