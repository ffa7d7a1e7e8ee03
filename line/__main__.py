import sys

from line.app.cli import main

sys.exit(main())
