"""An "environment" whose import runs code: it leaves a marker file next to itself.

A gateway that imports a file because a request named it runs whatever that file says; this
one only writes ``env_that_runs_on_import.ran`` (or ``<its name>.ran``), so a test can tell.
"""

from pathlib import Path

Path(__file__).with_suffix(".ran").write_text("imported by a request\n")

env = None
