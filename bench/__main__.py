"""`python -m bench` is the same as the `unlearn-bench` console script."""

from bench.cli import main

raise SystemExit(main())
