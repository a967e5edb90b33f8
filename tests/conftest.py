"""Test-wide settings.

Under CI (``CI`` set, as ``.ci/run`` is run) hypothesis is derandomized: each property test
explores the same examples every run, so a red CI always means a change, never the dice; run
locally (random seeds) to keep finding new cases. Tests that could not fail for lack of a
device or a browser skip with the reason.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
