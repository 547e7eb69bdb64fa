"""`python -m heygem_core ...`"""

import sys

from heygem_core.cli import main

sys.exit(main())
