"""`python -m nndsl`: the command line, as `nndsl` (and what `torchrun -m nndsl` starts)."""
import os
import sys

from .cli import main

code = main()
if "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:
    # A process of torchrun: its work is done and its files are written. Leave without tearing
    # down torch's distributed C++ state at interpreter exit, where a background thread of the
    # process group can abort the process ("terminate called without an active exception")
    # and torchrun would report a failure.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
