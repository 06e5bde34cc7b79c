"""Print the `uv pip install` options that make uv read the same package sources as pip here.

The bootstrap installs with uv (parallel, about 20 s instead of about 3 min). uv does not read
pip's configuration, so the machine's pip settings (local wheel folders, local indexes, version
constraints) are translated: `pip config list` shows both the files and PIP_* variables. Options
are printed one per line, for `mapfile`; `--cert` prints pip's CA bundle (for SSL_CERT_FILE), if set.
"""

from __future__ import annotations

import subprocess
import sys

# pip key -> uv option; keys whose value is a space-separated list give one option per item
FLAGS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


def pip_settings() -> dict[str, list[str]]:
    """pip's effective settings: PIP_* variables (`:env:`) win over files, later files over earlier."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings: dict[str, list[str]] = {}
    from_env: set[str] = set()
    for line in listed.splitlines():
        name, _, value = line.partition("=")
        key = name.rsplit(".", 1)[-1]
        if (key in FLAGS or key == "cert") and key not in from_env:
            settings[key] = value.strip().strip("'\"").split()
            if name.startswith(":env:"):
                from_env.add(key)
    return settings


def main() -> None:
    settings = pip_settings()
    if sys.argv[1:] == ["--cert"]:
        print(" ".join(settings.get("cert", [])))
        return
    # pip takes the best version from every index; uv's default is the first index that has it
    options = ["--index-strategy", "unsafe-best-match"]
    for key, flag in FLAGS.items():
        for value in settings.get(key, []):
            options += [flag, value]
    print("\n".join(options))


if __name__ == "__main__":
    main()
