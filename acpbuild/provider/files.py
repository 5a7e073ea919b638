"""Files an adapter writes besides its output: named for the run that owns them, swept when it stops.

:func:`temp_file` makes an empty file whose name says which process owns it;
a run that is stopped, or a later run that finds its owner dead, removes it.
:func:`forget` removes one when the adapter is done with it. :func:`replace_file`
writes a whole file atomically (a temporary beside it, then a rename).
"""

from acpbuild.process import forget, replace_file, temp_file

__all__ = ["forget", "replace_file", "temp_file"]
