import sys

from line.cli import main

sys.exit(main())
