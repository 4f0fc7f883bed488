import sys

from rider.cli import main

sys.exit(main())
