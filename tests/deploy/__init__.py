"""Deployment tests: the Dockerfile (lint and structure) and the image it builds (smoke test).

The helpers here read the Dockerfile into instructions, the way Docker does: comment lines
dropped, continuation lines joined, grouped by build stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of the line."""

    keyword: str
    arguments: str


@dataclass
class Stage:
    """A build stage: the image it starts from, its name (``AS``), and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """The stage's instructions with this keyword, in order."""
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments and blank lines dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    if pending:
        keyword, _, arguments = pending.strip().partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    return result


def stages(text: str) -> list[Stage]:
    """The Dockerfile's build stages in order; instructions before the first FROM are left out."""
    result: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = [word for word in instruction.arguments.split() if not word.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append(Stage(base=words[0], name=name))
        elif result:
            result[-1].instructions.append(instruction)
    return result


def base_images(text: str) -> list[str]:
    """The images the Dockerfile starts from (stage names excluded), without duplicates."""
    found = stages(text)
    names = {stage.name for stage in found if stage.name}
    return list(dict.fromkeys(stage.base for stage in found if stage.base not in names))


def parse_env(arguments: str) -> dict[str, str]:
    """An ``ENV a=1 b="2 3"`` instruction's variables."""
    return {key: value.strip('"') for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', arguments)}
