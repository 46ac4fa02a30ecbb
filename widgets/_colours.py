"""Stable colours for a changing set of drawn keys, from a palette, in bounded memory."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

__all__ = ["KeyColours"]


class KeyColours:
    """Give each drawn key a colour of ``palette`` that it keeps while it stays drawn.

    A chart that draws only its top keys cannot rely on plotly's colour-by-trace-position: the
    traces change as keys enter and leave. Each key gets a slot (a colour) instead. At most
    ``max(len(palette), max_drawn)`` keys are remembered, least recently drawn forgotten first, so a
    key that drops out and comes back soon gets its colour back, and memory stays bounded however
    many keys a run has. Keys drawn together have distinct slots; colours repeat only when more keys
    are drawn at once than the palette has colours (as plotly repeats its colourway).

    Parameters
    ----------
    palette
        Colours to hand out, first ones first.
    max_drawn
        Most keys drawn at once.

    Examples
    --------
    >>> colours = KeyColours(["red", "green", "blue"], max_drawn=2)
    >>> colours.assign(["a", "b"])
    {'a': 'red', 'b': 'green'}
    >>> colours.assign(["b", "c"])  # b keeps green; c takes the colour never used yet
    {'b': 'green', 'c': 'blue'}
    >>> colours.assign(["c", "d"])  # d takes the slot of a, the key least recently drawn
    {'c': 'blue', 'd': 'red'}
    """

    def __init__(self, palette: Sequence[str], max_drawn: int) -> None:
        if not palette:
            raise ValueError("KeyColours(palette=[]): give at least one colour")
        self.palette = list(palette)
        self.slots = max(len(self.palette), max_drawn)
        self._slot_of: OrderedDict[str, int] = OrderedDict()  # least recently drawn first

    def assign(self, drawn: Iterable[str]) -> dict[str, str]:
        """The colour of each key in ``drawn`` (at most ``max_drawn`` distinct keys), by key."""
        keys = list(dict.fromkeys(drawn))
        slot_of = self._slot_of
        for key in keys:
            if key in slot_of:
                slot_of.move_to_end(key)
        new = [key for key in keys if key not in slot_of]
        if new:
            taken = set(slot_of.values())
            free = (slot for slot in range(self.slots) if slot not in taken)
            drawn_set = set(keys)
            for key in new:
                slot = next(free, None)
                if slot is None:  # every slot remembered: reuse the least recently drawn key's
                    old = next((k for k in slot_of if k not in drawn_set), None)
                    if old is None:
                        raise ValueError(f"KeyColours: more than {self.slots} keys drawn at once")
                    slot = slot_of.pop(old)
                slot_of[key] = slot
        return {key: self.palette[slot_of[key] % len(self.palette)] for key in keys}
