import sys

from acpbuild.cli import main

sys.exit(main())
