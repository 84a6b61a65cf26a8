"""python -m tools.bench: see tools/bench/bench.py."""

import sys

from tools.bench.bench import main

sys.exit(main())
