"""PEP 440 specifier sets as unions of version intervals, to tell before any build whether two sets of
requirements on one package can both hold (``numpy<2`` vs ``numpy>=2.1``: no; ``torch>=2.1`` vs ``==2.7.1``: yes).

Pre-release and post-release subtleties of PEP 440 are ignored: this answers "is there a release that fits".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from packaging.specifiers import Specifier, SpecifierSet
from packaging.version import Version


@dataclass(frozen=True)
class Interval:
    lo: Version | None          # None = unbounded
    lo_incl: bool
    hi: Version | None
    hi_incl: bool

    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_incl and self.hi_incl))

    def meet(self, other: "Interval") -> "Interval":
        lo, lo_incl = _max_lo((self.lo, self.lo_incl), (other.lo, other.lo_incl))
        hi, hi_incl = _min_hi((self.hi, self.hi_incl), (other.hi, other.hi_incl))
        return Interval(lo, lo_incl, hi, hi_incl)


ALL = Interval(None, False, None, False)


def _max_lo(a, b):
    if a[0] is None:
        return b
    if b[0] is None or a[0] > b[0]:
        return a
    if b[0] > a[0]:
        return b
    return (a[0], a[1] and b[1])


def _min_hi(a, b):
    if a[0] is None:
        return b
    if b[0] is None or a[0] < b[0]:
        return a
    if b[0] < a[0]:
        return b
    return (a[0], a[1] and b[1])


def public(version: str | Version) -> Version:
    """``2.13.0+cpu`` -> ``2.13.0``: specifiers without a local label ignore it."""
    return Version(Version(str(version)).public)


def _bump(release: tuple[int, ...]) -> Version:
    return Version(".".join(map(str, release[:-1] + (release[-1] + 1,))))


def _prefix(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".") if x.isdigit())


def _intervals(spec: Specifier) -> list[Interval]:
    op, text = spec.operator, spec.version
    if op in ("==", "===") and text.endswith(".*"):
        rel = _prefix(text[:-2])
        return [Interval(Version(text[:-2]), True, _bump(rel), False)]
    if op == "!=" and text.endswith(".*"):
        rel = _prefix(text[:-2])
        return [Interval(None, False, Version(text[:-2]), False), Interval(_bump(rel), True, None, False)]
    v = public(text) if "+" in text else Version(text)
    if op in ("==", "==="):
        return [Interval(v, True, v, True)]
    if op == "!=":
        return [Interval(None, False, v, False), Interval(v, False, None, False)]
    if op == ">=":
        return [Interval(v, True, None, False)]
    if op == ">":
        return [Interval(v, False, None, False)]
    if op == "<=":
        return [Interval(None, False, v, True)]
    if op == "<":
        return [Interval(None, False, v, False)]
    if op == "~=":
        rel = v.release
        return [Interval(v, True, _bump(rel[:-1]), False)]
    raise ValueError(f"unsupported specifier {spec}")


def intervals(specs: SpecifierSet | str) -> list[Interval]:
    """The versions a specifier set admits, as a union of disjoint-enough intervals."""
    specs = SpecifierSet(str(specs)) if not isinstance(specs, SpecifierSet) else specs
    current = [ALL]
    for spec in specs:
        current = [a.meet(b) for a in current for b in _intervals(spec)]
        current = [i for i in current if not i.empty()]
    return current


def compatible(*sets: SpecifierSet | str) -> bool:
    """True when some version satisfies every set."""
    current = [ALL]
    for s in sets:
        current = [a.meet(b) for a in current for b in intervals(s)]
        current = [i for i in current if not i.empty()]
        if not current:
            return False
    return True


def satisfies(version: str | Version, specs: Iterable[SpecifierSet | str]) -> bool:
    v = public(version)
    return all(SpecifierSet(str(s)).contains(v, prereleases=True) for s in specs)


def highest(versions: Iterable[str], specs: Iterable[SpecifierSet | str]) -> str | None:
    specs = list(specs)
    fitting = [v for v in versions if satisfies(v, specs)]
    return max(fitting, key=Version) if fitting else None


def minor(version: str) -> str:
    """``2.7.1`` -> ``2.7``."""
    rel = Version(version).release
    return f"{rel[0]}.{rel[1] if len(rel) > 1 else 0}"
