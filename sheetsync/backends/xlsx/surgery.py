"""Package surgery: everything one `apply` changes in the package, decided (and checked)
before anything is written, then written part by part (kept parts copied as they are)."""

from __future__ import annotations

import dataclasses
import zipfile
from typing import BinaryIO

from ...a1 import range_ref, tab_name_problem
from ...errors import BackendError, OwnershipError
from ..base import Plan
from ..order import NEW, OLD, arrange
from . import ooxml
from .owned import OWNED_MARK, owned_positions
from .append import Append
from .partnames import PartNames
from .render import TabRenderer
from .zipstream import copy_info, copy_part, new_info, write_part


class Surgery:
    """Everything one `apply` changes in the package, decided (and checked) before writing."""

    def __init__(self, pkg: ooxml.Package, plan: Plan):
        self.pkg, self.plan = pkg, plan
        self.wb_part = pkg.workbook_part()
        self.wb = ooxml.WorkbookXml(pkg.text(self.wb_part), pkg.path, self.wb_part)
        self.wb_rels = {r.id: r for r in pkg.rels(self.wb_part)}
        self._check_plan()
        self.appending = self._appending()
        self.replaced = self._replaced_positions()
        self.dropped = self._dropped_parts()
        self.names = PartNames(pkg, self.dropped)
        self.styles, self.styles_part = self._styles()
        # A log tab that no longer exists is written whole, with the rows the plan holds.
        self.whole = [k for k in range(len(plan.tabs)) if k not in self.appending]
        self.tabs = [TabRenderer(dataclasses.replace(plan.tabs[k], append_after=None), self.styles, self.names)
                     for k in self.whole]
        self.appends = {pkg.name(part): Append(plan.tabs[k], part, self.styles)
                        for k, (_, part) in self.appending.items()}
        self.edited = self._edited_parts()

    # -- checks -------------------------------------------------------------------------------

    def _check_plan(self) -> None:
        path, owned = self.pkg.path, owned_positions(self.wb)
        existing = {s.name.casefold(): (i, s.name) for i, s in enumerate(self.wb.sheets)}
        seen: set[str] = set()
        for tab in self.plan.tabs:
            check_tab_name(tab.name, path)
            if tab.name.casefold() in seen:
                raise BackendError(f"{path}: the plan writes tab {tab.name!r} twice")
            seen.add(tab.name.casefold())
        for name, verb in [(t.name, "overwrite") for t in self.plan.tabs] + [(n, "delete") for n in self.plan.remove]:
            hit = existing.get(name.casefold())
            if hit and hit[0] not in owned:
                raise OwnershipError(f"{path}: tab {hit[1]!r} is not a sheetsync tab; sheetsync will "
                                     f"not {verb} it (rename your tab, or choose another experiment name)")
        if self.wb.structure_locked and (self.plan.tabs or self.plan.remove):
            raise BackendError(f"{path}: the workbook structure is protected; unprotect it "
                               "(Review > Protect Workbook) so sheetsync can add its tabs")

    def _appending(self) -> dict[int, tuple[int, str]]:
        """Plan tabs appended to an owned worksheet in place: plan index -> (tab index, part)."""
        owned = owned_positions(self.wb)
        existing = {s.name.casefold(): i for i, s in enumerate(self.wb.sheets)}
        out = {}
        for k, tab in enumerate(self.plan.tabs):
            i = existing.get(tab.name.casefold())
            if tab.append_after is None or i is None or i not in owned:
                continue
            part = self._sheet_part(self.wb.sheets[i])
            if part and self.pkg.has(part) and self._is_worksheet(self.wb.sheets[i]):
                out[k] = (i, part)
        return out

    def _replaced_positions(self) -> set[int]:
        names = {t.name.casefold() for k, t in enumerate(self.plan.tabs) if k not in self.appending}
        names |= {n.casefold() for n in self.plan.remove}
        owned = owned_positions(self.wb)
        return {i for i, s in enumerate(self.wb.sheets) if i in owned and s.name.casefold() in names}

    def _sheet_part(self, sheet: ooxml.SheetEntry) -> str | None:
        rel = self.wb_rels.get(sheet.rid)
        return rel.target if rel and not rel.external else None

    def _dropped_parts(self) -> set[str]:
        """Parts of replaced tabs that nothing else refers to, plus a stale calc chain."""
        graph = ooxml.all_rels_graph(self.pkg)
        roots = [p for i in self.replaced if (p := self._sheet_part(self.wb.sheets[i]))]
        calc_chain = self._stale_calc_chain(roots)
        cut = {p.lower() for p in roots + calc_chain}
        candidates = ooxml.closure(roots + calc_chain, graph)
        dropped = {p for p in ooxml.unreachable(candidates, graph, cut) if self.pkg.has(p)}
        dropped |= {ooxml.rels_part(p) for p in dropped if self.pkg.has(ooxml.rels_part(p))}
        return {self.pkg.name(p) for p in dropped}

    def _stale_calc_chain(self, roots: list[str]) -> list[str]:
        removed_ids = {self.wb.sheets[i].sheet_id for i in self.replaced}
        for rel in self.wb_rels.values():
            if rel.type == ooxml.REL_CALC_CHAIN and self.pkg.has(rel.target) and removed_ids:
                if ooxml.calc_chain_sheet_ids(self.pkg.read(rel.target)) & removed_ids:
                    return [rel.target]
        return []

    def _styles(self) -> tuple[ooxml.StyleSheet, str | None]:
        for rel in self.wb_rels.values():
            if rel.type == ooxml.REL_STYLES and self.pkg.has(rel.target):
                return ooxml.StyleSheet(self.pkg.text(rel.target)), rel.target
        return ooxml.StyleSheet(ooxml.MINIMAL_STYLES), None

    # -- the edited package parts -------------------------------------------------------------

    def _edited_parts(self) -> dict[str, str]:
        """New text of the package-level parts: workbook, its rels, content types, styles, app."""
        kept = [i for i in range(len(self.wb.sheets)) if i not in self.replaced]
        # backends.order: a replaced tab keeps its place, a new one goes beside its plan neighbour;
        # an appended tab is one that keeps its place (and its part)
        in_place = self.replaced | {i for i, _ in self.appending.values()}
        order = arrange([s.name for s in self.wb.sheets], [t.name for t in self.plan.tabs], in_place)
        renderer = {k: n for n, k in enumerate(self.whole)}
        self.order = [(OLD, self.appending[k][0]) if kind == NEW and k in self.appending else
                      (kind, renderer[k] if kind == NEW else k) for kind, k in order]
        position = {i: new for new, (kind, i) in enumerate(self.order) if kind == OLD}
        self.new_position = {k: new for new, (kind, k) in enumerate(self.order) if kind == NEW}
        used_ids = set(self.wb_rels)
        new_rels, new_sheets = self._new_sheet_entries(used_ids)
        if self.styles_part is None:
            self.styles_part = self.names.take("xl/styles.xml", "xl/styles{}.xml")
            new_rels.append((ooxml.free_rel_id(used_ids), ooxml.REL_STYLES,
                             ooxml.relative_target(self.wb_part, self.styles_part)))
        edited = {
            self.pkg.name(self.wb_part): self._workbook_text(kept, position, new_sheets),
            self._wb_rels_name(): ooxml.edit_rels(self.pkg.text(self._wb_rels_name()),
                                                  self._removed_rel_ids(), new_rels),
            self.pkg.name("[Content_Types].xml"): ooxml.edit_content_types(
                self.pkg.text("[Content_Types].xml"), self.dropped, self._new_content_types()),
        }
        if not self.pkg.has(self.styles_part) or self.styles.changed():
            edited[self.pkg.name(self.styles_part) if self.pkg.has(self.styles_part) else self.styles_part] = \
                self.styles.render()
        self._edit_app(edited, kept)
        return edited

    def _new_sheet_entries(self, used_ids: set[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
        """Workbook relationships and <sheet> elements of the plan's tabs."""
        next_sheet_id = max([s.sheet_id for s in self.wb.sheets] + [0]) + 1
        rels, sheets = [], []
        for k, tab in enumerate(self.tabs):
            rid = ooxml.free_rel_id(used_ids)
            rels.append((rid, ooxml.REL_WORKSHEET, ooxml.relative_target(self.wb_part, tab.part)))
            sheets.append(ooxml.sheet_element(self.wb.main_prefix(), self.wb.r_prefix(), tab.plan.name,
                                              next_sheet_id + k, rid, tab.plan.hidden))
        return rels, sheets

    def _removed_rel_ids(self) -> set[str]:
        removed = {self.wb.sheets[i].rid for i in self.replaced}
        return removed | {r.id for r in self.wb_rels.values()
                          if self.pkg.has(r.target) and self.pkg.name(r.target) in self.dropped}

    def _wb_rels_name(self) -> str:
        return self.pkg.name(ooxml.rels_part(self.wb_part))

    def _view_positions(self, position: dict[int, int]) -> dict[int, int]:
        """Where the workbook views' active and first tabs go: a replaced tab's view follows its
        new version."""
        new_index = {t.plan.name.casefold(): self.new_position[k] for k, t in enumerate(self.tabs)}
        views = dict(position)
        for i in self.replaced:
            name = self.wb.sheets[i].name.casefold()
            if name in new_index:
                views[i] = new_index[name]
        return views

    def _workbook_text(self, kept: list[int], position: dict[int, int], new_sheets: list[str]) -> str:
        sheets = [self.wb.sheets[i].xml if kind == OLD else new_sheets[i] for kind, i in self.order]
        names = []
        for d in self.wb.defined_names:
            if d.name == OWNED_MARK:
                continue
            if d.local is None:
                names.append(d.xml)
            elif d.local in position:
                names.append(d.xml if position[d.local] == d.local else
                             ooxml.with_local_sheet_id(d.xml, position[d.local]))
        owned = owned_positions(self.wb)
        marked = [(position[i], self.wb.sheets[i].name) for i in kept if i in owned]
        marked += [(self.new_position[k], t.plan.name) for k, t in enumerate(self.tabs)]
        prefix = self.wb.main_prefix()
        names += [ooxml.defined_name_element(prefix, OWNED_MARK, pos, range_ref(name, 0, 0, 1, 1))
                  for pos, name in marked]
        full_calc = any(t.needs_recalc for t in self.tabs)
        return self.wb.rewrite(sheets, names, self._view_positions(position), full_calc)

    def _new_content_types(self) -> list[tuple[str, str]]:
        types = [(p.name, p.content_type) for t in self.tabs for p in t.parts() if p.content_type]
        if not self.pkg.has(self.styles_part):
            types.append((self.styles_part, ooxml.CT_STYLES))
        return types

    def _edit_app(self, edited: dict[str, str], kept: list[int]) -> None:
        if not self.pkg.has("docProps/app.xml"):
            return
        worksheets = [s.name for s in self.wb.sheets if self._is_worksheet(s)]
        after = [self.wb.sheets[i].name if kind == OLD else self.tabs[i].plan.name for kind, i in self.order
                 if kind == NEW or self._is_worksheet(self.wb.sheets[i])]
        text = self.pkg.text("docProps/app.xml")
        new = ooxml.update_app_titles(text, worksheets, after)
        if new != text:
            edited[self.pkg.name("docProps/app.xml")] = new

    def _is_worksheet(self, sheet: ooxml.SheetEntry) -> bool:
        rel = self.wb_rels.get(sheet.rid)
        return rel is not None and rel.type == ooxml.REL_WORKSHEET

    # -- writing ------------------------------------------------------------------------------

    def write(self, out: BinaryIO) -> None:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for info in self.pkg.infos:
                if info.filename in self.dropped:
                    continue
                if info.filename in self.edited:
                    write_part(zf, copy_info(info), self.edited[info.filename])
                elif info.filename in self.appends:
                    self.appends[info.filename].write(self.pkg, zf, info)
                else:
                    copy_part(self.pkg.zip, zf, info)
            if not self.pkg.has(self.styles_part):
                write_part(zf, new_info(self.styles_part), self.edited[self.styles_part])
            for tab in self.tabs:
                for part in tab.parts():
                    write_part(zf, new_info(part.name), part.data)


def check_tab_name(name: str, path: str) -> None:
    why = tab_name_problem(name)
    if why:
        raise BackendError(f"{path}: {name!r} cannot be a tab name in Excel ({why})")
