"""Running Debian's ``epubcheck`` on an EPUB a test made.

Debian installs ``/usr/bin/epubcheck`` as a link to a jar, which runs as a
program only where the kernel hands jars to Java (binfmt_misc); containers
often do not.  :func:`epubcheck` runs the jar with ``java -jar`` itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def epubcheck_command() -> list[str]:
    """The command that runs epubcheck here; AssertionError if it is not installed
    (``make test`` installs it: tools/debian-packages.txt)."""
    found = shutil.which("epubcheck")
    assert found is not None, (
        "epubcheck is missing: make test installs it (tools/system-packages.sh)"
    )
    real = os.path.realpath(found)
    return ["java", "-jar", real] if real.endswith(".jar") else [real]


def epubcheck(path: Path) -> tuple[bool, str]:
    """Whether epubcheck finds no errors and no warnings in ``path``, and its report."""
    checked = subprocess.run(
        [*epubcheck_command(), str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    report = checked.stdout + checked.stderr
    return checked.returncode == 0 and "No errors or warnings detected" in report, report
