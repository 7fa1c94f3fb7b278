"""The Debian mirror already configured for apt on this machine.

Read from `/etc/apt/sources.list` (one-line `deb URI SUITE ...` entries) and
`/etc/apt/sources.list.d/*.list` / `*.sources` (deb822 stanzas); the first
`deb` entry whose suites include the wanted one (`bookworm`, not
`bookworm-security`) wins. Nothing is hard-coded: the setup downloads from
wherever this machine's apt does.

Example:

>>> from tfsparse.emulator.mirror import parse_sources
>>> parse_sources("Types: deb\\nURIs: http://mirror.example/debian\\nSuites: bookworm bookworm-updates\\n", "bookworm")
'http://mirror.example/debian'
"""

from __future__ import annotations

import glob
import os
import re

#: Where apt keeps its sources.
APT_DIR = "/etc/apt"


def _one_line(text, suite):
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()  # drop "[arch=... signed-by=...]"
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            return words[1]
    return None


def _deb822(text, suite):
    for stanza in text.split("\n\n"):
        fields, key = {}, None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0]
    return None


def parse_sources(text: str, suite: str):
    """The first mirror URI of a `deb` entry for `suite` in one sources file, or `None`.

    Args:
        text: The content of a sources file (one-line or deb822 format).
        suite: The Debian suite, e.g. `"bookworm"`.

    Returns:
        The URI, or `None` if the file has no such entry.

    Example:

    >>> from tfsparse.emulator.mirror import parse_sources
    >>> parse_sources("deb [arch=amd64] http://m.example/debian bookworm main\\n", "bookworm")
    'http://m.example/debian'
    """
    return _deb822(text, suite) if "URIs:" in text or "uris:" in text.lower() else _one_line(text, suite)


def configured_mirror(suite: str, apt_dir: str = APT_DIR) -> str:
    """The Debian mirror apt uses for `suite` on this machine.

    Args:
        suite: The Debian suite, e.g. `"bookworm"`.
        apt_dir: apt's configuration folder. Defaults to `"/etc/apt"`.

    Returns:
        The mirror URI.

    Raises:
        EmulatorError: if no apt source for `suite` is configured.
    """
    from tfsparse.emulator.errors import EmulatorError

    files = [os.path.join(apt_dir, "sources.list")]
    files += sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.list")))
    files += sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.sources")))
    for name in files:
        try:
            with open(name, encoding="utf-8", errors="replace") as file:
                uri = parse_sources(file.read(), suite)
        except OSError:
            continue
        if uri:
            return uri
    raise EmulatorError(
        f"No Debian mirror for suite {suite!r} is configured for apt in {apt_dir}/sources.list or "
        f"{apt_dir}/sources.list.d/. Add a `deb` source for {suite} (e.g. the one the machine was "
        "installed from) and run `tfsparse emulator setup` again."
    )
