"""``python -m bench``: the benchmark (same as ``creditflow bench``)."""

import sys

from bench.run import main

sys.exit(main())
