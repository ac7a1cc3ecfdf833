from nudger.cli import main

raise SystemExit(main())
