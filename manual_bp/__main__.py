import sys

from manual_bp.cli import main

sys.exit(main())
