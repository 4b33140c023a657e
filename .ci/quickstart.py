"""Print the README's Quick start commands, one per line: the lines of the first ```bash block under the
"## Quick start" heading (blank lines and comments left out). CI runs exactly these, so the README cannot
drift from what is tested."""

import sys
from pathlib import Path


def quickstart_commands(readme: str) -> list[str]:
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "## quick start")
    fence = next(i for i in range(start, len(lines)) if lines[i].strip() == "```bash")
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].strip() == "```")
    return [line.strip() for line in lines[fence + 1:end] if line.strip() and not line.strip().startswith("#")]


if __name__ == "__main__":
    print("\n".join(quickstart_commands(Path(sys.argv[1]).read_text(encoding="utf-8"))))
