import os

# Before torch loads OpenMP: threads that wait sleep instead of spinning, which on a machine
# shared with other work (a sweep beside the tests, a busy node) slows every step many times.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cl_regimes.cli import main  # noqa: E402

raise SystemExit(main())
