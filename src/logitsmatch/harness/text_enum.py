"""The base of the harness's status vocabularies: str-valued enums that print as their value."""

from __future__ import annotations

import enum


class TextEnum(str, enum.Enum):
    """A vocabulary of words: members compare equal to their strings and print as them.

    why: reports, JUnit and YAML values were bare strings; ``f"{member}"`` must stay the word
    (``Enum`` would print ``Class.NAME`` on Python >= 3.11), so every output stays byte-identical.
    """

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def words(cls) -> tuple[str, ...]:
        """Every member's value, in definition order (for messages)."""
        return tuple(str(m.value) for m in cls)
