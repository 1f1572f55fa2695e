"""Command-line overrides that Hydra's grammar cannot read, refused in one line with the way to write them.

Hydra reads `key=value` with its own grammar: `~` (except at the start, where it deletes a key) and non-ASCII
characters are allowed only in a quoted value, so `data.root=~/data` or `data.root=/data/données` would end
in Hydra's LexerNoViableAltException and exit code 1. Quoted for Hydra inside shell quotes they parse
(`"data.root='~/data'"`, and `~` is then expanded by the tool), and the shell expands `$HOME` itself.
"""

from __future__ import annotations

import logging
import sys

from ..errors import UserError
from ..logs import setup_logging

log = logging.getLogger("resnet_train")


def unreadable_override(arguments: list[str]) -> str | None:
    """One line on the first override of the command line `arguments` that Hydra cannot read, or None."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    known, rest = get_args_parser().parse_known_args(arguments)
    parser = OverridesParser.create()
    for override in [*known.overrides, *(a for a in rest if not a.startswith("-"))]:
        try:
            parser.parse_overrides([override])
        except OverrideParseException:
            key, _, value = override.partition("=")
            return (
                f"cannot read the override {override}: Hydra reads ~ and non-ASCII characters only in a "
                f"quoted value; write \"{key}='{value}'\" (the double quotes are for the shell)"
                + (f", or {key}=$HOME{value[1:]}" if value.startswith("~/") else "")
            )
    return None


def refuse_unreadable_overrides(arguments: list[str]) -> None:
    """Exit with code 2 and one line if Hydra could not read one of the overrides in `arguments`."""
    problem = unreadable_override(arguments)
    if problem is not None:
        setup_logging()
        log.error("%s", problem)
        sys.exit(UserError.exit_code)
