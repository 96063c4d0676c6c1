from eegdecode.cli import main

raise SystemExit(main())
