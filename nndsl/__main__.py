"""`python -m nndsl`: the command line, as `nndsl` (and what `torchrun -m nndsl` starts)."""
import sys

from .cli import main

sys.exit(main())
