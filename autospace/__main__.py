from autospace.cli import main

raise SystemExit(main())
