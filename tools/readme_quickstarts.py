"""Run the README's quickstarts as a newcomer would: every command of the fenced blocks under a "## Quickstart"
heading, in a fresh temporary folder, in order; stop at the first that fails (its exit code is this script's).

    python tools/readme_quickstarts.py [README.md]

CI (.ci/run) runs it after the test suite, so a quickstart that stops working fails the build.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def quickstarts(readme: str) -> list[tuple[str, list[str]]]:
    """(heading, commands) of each "## Quickstart..." section: the lines of its fenced blocks, comments dropped."""
    sections = re.split(r"^## ", readme, flags=re.M)
    out = []
    for sec in sections:
        heading = sec.splitlines()[0] if sec else ""
        if not heading.lower().startswith("quickstart"):
            continue
        commands = []
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", sec, flags=re.M | re.S):
            for line in block.splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    commands.append(line)
        out.append((heading, commands))
    return out


def main() -> int:
    readme = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "README.md")
    sections = quickstarts(readme.read_text(encoding="utf-8"))
    if not sections or not all(cmds for _, cmds in sections):
        print(f"{readme}: no quickstart commands found", file=sys.stderr)
        return 2
    for heading, commands in sections:
        with tempfile.TemporaryDirectory(prefix="quickstart-") as work:
            print(f"== {heading} (in {work})", flush=True)
            for cmd in commands:
                t = time.perf_counter()
                done = subprocess.run(cmd, shell=True, cwd=work, executable="/bin/bash")
                print(f"   [{time.perf_counter() - t:5.1f} s, exit {done.returncode}] {cmd}", flush=True)
                if done.returncode != 0:
                    return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
