"""Which wrfout variables each quantity needs, and the error that says how to get the missing ones."""

from __future__ import annotations

from collections.abc import Iterable

from sciml.errors import DataError

#: derived (lower-case) quantity -> wrfout variables it is computed from
SOURCES: dict[str, tuple[str, ...]] = {
    "p": ("P", "PB"),
    "p_hyd": ("P_HYD",),
    "th": ("T",),
    "pi": ("P", "PB"),
    "t": ("T", "P", "PB"),
    "qv": ("QVAPOR",),
    "z_w": ("PH", "PHB"),
    "z": ("PH", "PHB"),
    "dz8w": ("PH", "PHB"),
    "u": ("U",),
    "v": ("V",),
    "w": ("W",),
    "rho": ("T", "P", "PB", "QVAPOR"),
    "qvs": ("T", "P", "PB"),
    "rh": ("T", "P", "PB", "QVAPOR"),
    "dp_dry": ("MU", "MUB", "ZNW"),  # plus C1H, C2H when HYBRID_OPT > 0
}

#: fields WRF writes only to restart files by default (Registry I/O string without "h")
RESTART_ONLY: frozenset[str] = frozenset({
    "RTHCUTEN", "RQVCUTEN", "RQCCUTEN", "RQRCUTEN", "RQICUTEN", "RQSCUTEN", "RUCUTEN", "RVCUTEN",
    "PRATEC", "RAINCV", "NCA", "W0AVG", "CUTOP", "CUBOT", "HTOP", "HBOT",
})

_IOFIELDS_MAX = 256  # characters per line of a WRF iofields file


def wrf_sources(names: Iterable[str]) -> list[str]:
    """The wrfout variables needed for ``names`` (derived lower-case names expanded, WRF names kept), in order."""
    out: list[str] = []
    for name in names:
        for src in SOURCES.get(name, (name,)):
            if src not in out:
                out.append(src)
    return out


def iofields_lines(variables: Iterable[str]) -> list[str]:
    """``+:h:0:VAR1,VAR2,...`` lines (at most 256 characters each) adding ``variables`` to the history stream."""
    lines: list[str] = []
    current: list[str] = []
    for var in variables:
        if current and len("+:h:0:" + ",".join([*current, var])) > _IOFIELDS_MAX:
            lines.append("+:h:0:" + ",".join(current))
            current = []
        current.append(var)
    if current:
        lines.append("+:h:0:" + ",".join(current))
    return lines


def missing_message(path: str, missing: list[str], wanted: Iterable[str] = ()) -> str:
    """A user-facing explanation of which variables ``path`` lacks and how to make WRF write them."""
    wanted = list(wanted)
    needed_by = {m: [w for w in wanted if m in SOURCES.get(w, (w,)) and w != m] for m in missing}
    listed = ", ".join(m + (f" (needed for {', '.join(needed_by[m])})" if needed_by[m] else "") for m in missing)
    restart = [m for m in missing if m in RESTART_ONLY]
    lines = "\n".join("    " + line for line in iofields_lines(missing))
    msg = f"{path}: missing WRF variable(s) {listed}.\n"
    if restart:
        msg += f"  Restart-only in WRF's Registry (never in wrfout by default): {', '.join(restart)}.\n"
    msg += ("  To write them to history without recompiling, add to &time_control in namelist.input\n"
            "    iofields_filename = 'my_iofields.txt',\n"
            "    ignore_iofields_warning = .true.,\n"
            "  and put in my_iofields.txt:\n" + lines + "\n  then rerun WRF.")
    return msg


def require(path: str, available: Iterable[str], wanted: Iterable[str]) -> None:
    """Raise :class:`DataError` naming ``path`` and the iofields fix if any source of ``wanted`` is not available."""
    wanted = list(wanted)
    have = set(available)
    missing = [v for v in wrf_sources(wanted) if v not in have]
    if missing:
        raise DataError(missing_message(path, missing, wanted))
