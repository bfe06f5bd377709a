"""``python pixray.py ...`` from a checkout, as Pixray's README runs it (``python pixray.py --drawer=pixel
--prompt=sunrise --outdir sunrise01``; in the Cog image, ``cog exec python pixray.py ...``): the ``pixray``
command. ``import pixray`` still finds the package: a package directory comes before a module of the
same name on the same path entry."""

import sys

from pixray.cli import main

if __name__ == "__main__":
    sys.exit(main())
