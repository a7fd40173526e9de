import sys

from pipelines.cli import main

# guarded: the report draws charts in spawned worker processes, which import the main module
if __name__ == "__main__":
    sys.exit(main())
