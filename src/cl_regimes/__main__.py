from cl_regimes.cli import main

raise SystemExit(main())
