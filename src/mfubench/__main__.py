from mfubench.cli import main

raise SystemExit(main())
