from factory_twin.cli import main

raise SystemExit(main())
