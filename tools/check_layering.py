#!/usr/bin/env python3
"""Usage: check_layering.py [INCLUDE_DIR]   (default: the repository's include/)

Fails when a header under include/keras/ includes one from a room above its own.

The rooms (docs/architecture.md), lowest first; a room may include its own headers and those of
the rooms it lists:
  core <- ops, losses, optimizers, data <- metrics <- layers <- engine <- trainers <- models
       <- callbacks, io, applications, testing, distribute
The umbrella headers keras.hpp and all.hpp may include anything but distribute/. version.hpp,
also at the top, is a leaf below every room: any header may include it, and it includes no
kerascpp header. MPI is opt-in: only distribute/ may include <mpi.h>.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "include").resolve() / "keras"
ORDER = [
    ["core"],
    ["ops", "losses", "optimizers", "data"],
    ["metrics"],
    ["layers"],
    ["engine"],
    ["trainers"],
    ["models"],
    ["callbacks", "io", "applications", "testing", "distribute"],
]
LEVEL = {room: i for i, rooms in enumerate(ORDER) for room in rooms}
# Exceptions within one level, by the room that may include the other: io is written by
# callbacks (ModelCheckpoint saves models), applications load weights through io.
SIDEWAYS = {("callbacks", "io"), ("applications", "io"), ("testing", "io"), ("distribute", "callbacks"), ("distribute", "io")}
LEAVES = {"version.hpp"}  # top-level headers below every room
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
MPI_INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]mpi\.h[>"]', re.M)
OPT_IN = {"distribute"}  # rooms with their own dependencies (MPI), never pulled in by the umbrella headers


def room_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else ""


def main() -> int:
    errors = []
    for hdr in sorted(ROOT.rglob("*.hpp")):
        room = room_of(hdr)
        if room not in OPT_IN and MPI_INCLUDE.search(hdr.read_text()):
            errors.append(f"{hdr.relative_to(ROOT.parent)}: includes <mpi.h>: only distribute/ may (MPI is opt-in)")
        if room == "":
            for inc in INCLUDE.findall(hdr.read_text()):
                if pathlib.PurePosixPath(inc).parts[0] in OPT_IN:
                    errors.append(f"{hdr.relative_to(ROOT.parent)}: the umbrella header includes the opt-in {inc}")
            if hdr.name in LEAVES:
                for inc in INCLUDE.findall(hdr.read_text()):
                    errors.append(f"{hdr.relative_to(ROOT.parent)}: a leaf header may not include {inc}")
            continue  # keras.hpp, all.hpp
        if room not in LEVEL:
            errors.append(f"{hdr.relative_to(ROOT.parent)}: room '{room}' is not in tools/check_layering.py")
            continue
        for inc in INCLUDE.findall(hdr.read_text()):
            target = (hdr.parent / inc).resolve()
            try:
                other = room_of(target)
            except ValueError:
                continue  # outside include/keras
            if other == room:
                continue
            if other == "" and target.name in LEAVES:
                continue
            if other == "":
                errors.append(f"{hdr.relative_to(ROOT.parent)}: includes the umbrella header {inc}")
            elif other not in LEVEL:
                errors.append(f"{hdr.relative_to(ROOT.parent)}: includes {inc} from unknown room '{other}'")
            elif LEVEL[other] > LEVEL[room] or (LEVEL[other] == LEVEL[room] and (room, other) not in SIDEWAYS):
                errors.append(f"{hdr.relative_to(ROOT.parent)}: '{room}' may not include '{other}' ({inc}): it runs upward")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"check_layering: {len(errors)} include(s) run upward (see docs/architecture.md)", file=sys.stderr)
        return 1
    print(f"check_layering: {sum(1 for _ in ROOT.rglob('*.hpp'))} headers, every include runs downward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
