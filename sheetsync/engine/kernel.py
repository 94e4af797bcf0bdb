"""The training loop, generated from a model's and an optimizer's expressions and compiled.

Per-row steps are sequential, so the loop itself must be compiled to be fast. This module
renders the row cells (`models`) and the update cells (`optimizers`) into the source of one
function, specialised to the structure of an experiment (model, loss, optimizer options,
batch size), with the numeric settings (lr, betas, ...) passed in per experiment: a sweep of
1,000 learning rates is one call. Every operation is the IEEE operation the expression names
(no FMA contraction, no reordering, no fast-math; 1/0 gives inf rather than an exception).

Two backends compile the same loop and give the same bits (see `native` for the contract):

- C (`native`): the loop as C source, compiled by the system C compiler into a cached shared
  library and called through ctypes. A fresh process pays well under a millisecond to load it,
  where numba pays ~0.5 s to import and initialise, so C is the default when a compiler exists.
- numba: the loop as Python source compiled with ``cache=True``; the fallback when there is no
  C compiler or a compile fails. numba is imported only when this backend runs.

``SHEETSYNC_KERNEL=c`` or ``=numba`` forces a backend. Generated sources and compiled kernels
live in one cache folder, so a kernel is compiled once per machine, not once per process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import stat
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SheetsyncError
from .expr import Expr, to_python
from .models import Model
from .optimizers import Update

# Epoch accumulator layout (per experiment, per epoch): see `Layout.epoch_cols`.
_lock = threading.Lock()
_loaded: dict[str, object] = {}  # in-process kernels by key ("c:" + key for C)
_failed_c: set[str] = set()  # C kernels (or "cc:" + compiler identity) that failed here: numba runs them
log = logging.getLogger(__name__)


def _ident(prefix: str, name: str) -> str:
    return prefix + re.sub(r"[^0-9a-zA-Z_]", lambda m: f"_{ord(m.group()):x}_", name)


@dataclass(frozen=True)
class Spec:
    """Everything that shapes the compiled loop (numbers that don't are passed in `H`)."""

    model: Model
    update: Update
    loss: str
    gradient: str  # analytic | numeric | both
    grad_method: str  # forward | central
    batch_size: int  # 0 = whole data set
    carry_inputs: bool  # graddesc: an epoch hands on the last row's inputs, not its update

    @property
    def params(self) -> list[str]:
        return self.model.params

    @property
    def hyper(self) -> list[str]:
        return self.update.hyper + ["grad_step", "divergence_bound"]

    @property
    def state_cols(self) -> list[str]:
        return [f"{s}_{q}" for s in self.update.state for q in self.params]

    @property
    def has_estimates(self) -> bool:
        return self.gradient in ("numeric", "both")

    def step_columns(self) -> list[str]:
        cols = ["epoch", "step", "row", *self.model.inputs, "y", *self.params, *self.model.recorded,
                "pred", "err", "loss"]
        cols += [f"de/d{q}" for q in self.params]
        if self.has_estimates:
            cols += [f"de/d{q} est" for q in self.params]
        return cols + self.state_cols + [f"new {q}" for q in self.params]

    def epoch_columns(self) -> list[str]:
        q = self.params
        return (["loss_sum", "err2_sum", "lines"] + [f"param {x}" for x in q] + [f"gsq {x}" for x in q]
                + [f"nonzero {x}" for x in q] + [f"gap {x}" for x in q]
                + (["correct_sum"] if self.model.classifier else []))


# ---------------------------------------------------------------------------------------------
# Source generation


def _row_name(model: Model, name: str) -> str:
    if name in model.params:
        return _ident("p_", name)
    if name in model.inputs or name == "y":
        return _ident("in_", name)
    return _ident("r_", name)


def _estimate_cells(spec: Spec) -> list[tuple[str, Expr]]:
    """Numeric gradients as the workbook writes them: (loss(p+h) - loss)/h, or central."""
    from .expr import sym

    cells = []
    hstep = sym("grad_step")
    for q in spec.params:
        up = spec.model.loss_with(spec.loss, {q: sym(q) + hstep})
        if spec.grad_method == "forward":
            est = (up - sym("loss")) / hstep
        else:
            down = spec.model.loss_with(spec.loss, {q: sym(q) - hstep})
            est = (up - down) / (2.0 * hstep)
        cells.append((f"de/d{q} est", est))
    return cells


def scaled_row_cells(spec: Spec, weight: Expr) -> list[tuple[str, Expr]]:
    """The row's cells; in a batch of k rows each row's gradient is its share, (1/k)·(…), the
    way autograd differentiates a mean: d(mean)/d(row loss) = 1/k, applied first."""
    from .expr import sym
    from .losses import Share

    # w = 1/k and k (bk: bce divides by the batch's rows, as torch)
    share = None if spec.batch_size == 1 else Share(weight, sym("bk"))
    cells = spec.model.row_cells(spec.loss, share)  # the model's loss applies its share itself
    if spec.has_estimates:
        cells = cells + _estimate_cells(spec)
    if spec.batch_size == 1:
        return cells
    return [(name, weight * e if name.endswith(" est") else e) for name, e in cells]


def uses_batch_rows(spec: Spec) -> bool:
    from .expr import sym, symbols

    return spec.batch_size > 1 and any("bk" in symbols(e) for _, e in scaled_row_cells(spec, sym("w")))


def row_names(spec: Spec):
    """Variable names of a row's symbols in a generated loop (numba's and C's): the batch
    share w, the settings, the parameters, the inputs and the row's cells."""
    hyper = set(spec.hyper)
    return lambda n: n if n in ("w", "bk") else (_ident("hy_", n) if n in hyper else _row_name(spec.model, n))


def update_names(upd: Update, q: str):
    """Variable names of parameter `q`'s update cells in a generated loop (numba's and C's):
    its gradient, value, step count, previous state, each cell, and the settings."""
    local = {"g": _ident("g_", q), "p": _ident("p_", q), "t": "t"}
    for s in upd.state:
        local[f"prev_{s}"] = _ident("prev_", s + "__" + q)
    for name, _ in upd.cells:
        local[name] = _ident("o_", name + "__" + q)
    return lambda n: local.get(n) or _ident("hy_", n)


def generate_source(spec: Spec) -> str:
    model, upd, params = spec.model, spec.update, spec.params
    hyper = spec.hyper
    rn = row_names(spec)
    step_cols = spec.step_columns()
    col = {c: i for i, c in enumerate(step_cols)}
    L: list[str] = []
    w = L.append

    w("import math")
    w("import numpy as np")
    w("from numba import njit")
    w("from sheetsync.engine.numba_support import fma, torch_sum")
    w("")
    w("@njit(cache=True, error_model='numpy', nogil=True)")
    w("def kernel(X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV):")
    w("    n = X.shape[0]")
    w("    for e in range(P.shape[0]):")
    for k, name in enumerate(hyper):
        w(f"        {_ident('hy_', name)} = H[e, {k}]")
    for j, q in enumerate(params):
        w(f"        {_ident('p_', q)} = P[e, {j}]")
    for si, s in enumerate(upd.state):
        for j, q in enumerate(params):
            w(f"        {_ident('prev_', s + '__' + q)} = S[e, {si * len(params) + j}]")
    w("        t = T[e]")
    if spec.batch_size > 1:
        w(f"        GB = np.empty(({len(params)}, {spec.batch_size}))")
        w("        w = 1.0")
        if uses_batch_rows(spec):
            w("        bk = 1.0")
    w("        line = 0")
    w("        stopped = False")
    w("        epochs_done = 0")
    w("        for ep in range(n_epochs):")
    w("            if stopped:")
    w("                break")
    w("            first_line = line")
    w("            loss_sum = 0.0")
    w("            err2_sum = 0.0")
    if spec.model.classifier:
        w("            correct_sum = 0.0")
    w("            batch_loss = 0.0")
    w("            nb = 0")
    for q in params:
        w(f"            {_ident('gsq_', q)} = 0.0")
        w(f"            {_ident('nz_', q)} = 0.0")
        w(f"            {_ident('gap_', q)} = 0.0")
    w("            for i in range(n):")
    w("                r = ORDER[ep % ORDER.shape[0], i]")
    for k, x in enumerate(model.inputs):
        w(f"                {_ident('in_', x)} = X[r, {k}]")
    w(f"                {_ident('in_', 'y')} = Y[r]")
    if spec.batch_size > 1:
        w("                if nb == 0:")
        w(f"                    w = 1.0 / ({spec.batch_size} if i + {spec.batch_size} <= n else n - i)")
        if uses_batch_rows(spec):
            w(f"                    bk = float({spec.batch_size} if i + {spec.batch_size} <= n else n - i)")
    from .expr import sym as _sym

    for name, e in scaled_row_cells(spec, _sym("w")):
        w(f"                {_ident('r_', name)} = {to_python(e, rn)}")
    for q in params:
        src = f"de/d{q} est" if spec.gradient == "numeric" else f"de/d{q}"
        w(f"                {_ident('u_', q)} = {_ident('r_', src)}")
    w(f"                loss_sum += {_ident('r_', 'loss')}")
    w(f"                batch_loss += {_ident('r_', 'loss')}")
    w(f"                err2_sum += {_ident('r_', 'err')} * {_ident('r_', 'err')}")
    if spec.model.classifier:
        w(f"                correct_sum += {_ident('r_', 'correct')}")
    for q in params:
        u = _ident("u_", q)
        w(f"                {_ident('gsq_', q)} += {u} * {u}")
        w(f"                if {u} != 0.0:")
        w(f"                    {_ident('nz_', q)} += 1.0")
        if spec.gradient in ("both", "numeric"):  # both columns are written
            w(f"                gap = abs({_ident('r_', f'de/d{q} est')} - {_ident('r_', f'de/d{q}')})")
            w(f"                if gap > {_ident('gap_', q)}:")
            w(f"                    {_ident('gap_', q)} = gap")
    if spec.batch_size > 1:
        for j, q in enumerate(params):
            w(f"                GB[{j}, nb] = {_ident('u_', q)}")
    w("                nb += 1")
    # record the row
    w("                if rec:")
    w("                    R[e, line, 0] = ep")
    w("                    R[e, line, 1] = t + 1.0")
    w("                    R[e, line, 2] = r + 1")
    for c in step_cols[3:]:
        if c.startswith("new ") or c in spec.state_cols:
            w(f"                    R[e, line, {col[c]}] = np.nan")
        else:
            w(f"                    R[e, line, {col[c]}] = {_row_name(model, c)}")
    end = "True" if spec.batch_size == 1 else f"nb == {spec.batch_size} or i == n - 1"
    w(f"                if {end}:")
    w("                    t += 1.0")
    for j, q in enumerate(params):
        total = _ident("u_", q) if spec.batch_size == 1 else f"torch_sum(GB[{j}], nb)"
        w(f"                    {_ident('g_', q)} = {total}")
    for q in params:
        name_of = update_names(upd, q)
        for name, e in upd.cells:
            w(f"                    {name_of(name)} = {to_python(e, name_of)}")
    w("                    if rec:")
    for s in upd.state:
        for q in params:
            w(f"                        R[e, line, {col[f'{s}_{q}']}] = {_ident('o_', s + '__' + q)}")
    for q in params:
        w(f"                        R[e, line, {col[f'new {q}']}] = {_ident('o_', 'new__' + q)}")
    w("                    bad = -2")
    for j, q in enumerate(params):
        kw = "if" if j == 0 else "elif"
        w(f"                    {kw} not (abs({_ident('o_', 'new__' + q)}) <= hy_divergence_bound):")
        w(f"                        bad = {j}")
    w("                    if bad == -2 and not math.isfinite(batch_loss):")
    w("                        bad = -1")
    for s in upd.state:
        for q in params:
            w(f"                    {_ident('prev_', s + '__' + q)} = {_ident('o_', s + '__' + q)}")
    keep = "not (i == n - 1)" if spec.carry_inputs else "True"
    w(f"                    if {keep}:")
    for q in params:
        w(f"                        {_ident('p_', q)} = {_ident('o_', 'new__' + q)}")
    w("                    nb = 0")
    w("                    batch_loss = 0.0")
    w("                    if bad != -2:")
    w("                        DIV[e, 0] = 1")
    w("                        DIV[e, 1] = line")
    w("                        DIV[e, 2] = bad")
    w("                        stopped = True")
    w("                line += 1")
    w("                if stopped:")
    w("                    break")
    ecol = spec.epoch_columns()
    ec = {c: i for i, c in enumerate(ecol)}
    w("            EPO[e, ep, 0] = loss_sum")
    w("            EPO[e, ep, 1] = err2_sum")
    w("            EPO[e, ep, 2] = line - first_line")
    if spec.model.classifier:
        w(f"            EPO[e, ep, {ec['correct_sum']}] = correct_sum")
    for q in params:
        w(f"            EPO[e, ep, {ec[f'param {q}']}] = {_ident('p_', q)}")
        w(f"            EPO[e, ep, {ec[f'gsq {q}']}] = {_ident('gsq_', q)}")
        w(f"            EPO[e, ep, {ec[f'nonzero {q}']}] = {_ident('nz_', q)}")
        w(f"            EPO[e, ep, {ec[f'gap {q}']}] = {_ident('gap_', q)}")
    w("            epochs_done += 1")
    for j, q in enumerate(params):
        w(f"        P[e, {j}] = {_ident('p_', q)}")
    for si, s in enumerate(upd.state):
        for j, q in enumerate(params):
            w(f"        S[e, {si * len(params) + j}] = {_ident('prev_', s + '__' + q)}")
    w("        T[e] = t")
    w("        DIV[e, 3] = epochs_done")
    w("        DIV[e, 4] = line")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------------
# Compilation with an on-disk cache


def cache_dir() -> Path:
    """The kernel cache: a folder only this user can write, or else a private temporary one.

    A library found there is loaded into this process, so a folder anyone else can write (a
    shared ``/tmp/sheetsync-kernels``, a group-writable home cache) would run their code inside
    sheetsync. The folder must be a real directory (not a symbolic link) owned by this user,
    writable by no one else, and is kept at 0700; otherwise this process compiles into a fresh
    ``mkdtemp`` folder of its own. A library is loaded only if its SHA-256 matches the one
    recorded when sheetsync compiled it (`native.load`).
    """
    global _private_dir
    configured = os.environ.get("SHEETSYNC_CACHE_DIR")
    base = Path(configured) if configured else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sheetsync"
    folder = base / "kernels"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _private(folder):
            return folder
    except OSError:  # read-only home (a server account)
        pass
    with _private_lock:  # not `_lock`: kernels are loaded under it
        if _private_dir is None or not _private(_private_dir):
            _private_dir = Path(tempfile.mkdtemp(prefix="sheetsync-kernels-"))
        return _private_dir


_private_dir: Path | None = None
_private_lock = threading.Lock()


def _private(folder: Path) -> bool:
    """`folder` is a directory of this user's, mode 0700. One that only we could ever write
    (0755, say, from an older sheetsync) is tightened; one others can write is refused, since
    they may have planted a library there already (and its recorded hash with it)."""
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o022:
        return False
    if stat.S_IMODE(st.st_mode) & 0o077:
        try:
            os.chmod(folder, 0o700)
        except OSError:
            return False
        st = os.lstat(folder)
    return stat.S_IMODE(st.st_mode) & 0o077 == 0 and os.access(folder, os.W_OK)


def backend() -> str:
    """The backend to run: SHEETSYNC_KERNEL if set, else "c" when a C compiler is installed,
    else "numba"."""
    from . import native

    forced = os.environ.get("SHEETSYNC_KERNEL", "").strip().lower()
    if forced in ("", "auto"):
        return "c" if native.compiler() else "numba"
    if forced == "numba":
        return "numba"
    if forced == "c":
        if native.compiler() is None:
            cc = os.environ.get("CC") or "cc"
            raise SheetsyncError(f"SHEETSYNC_KERNEL=c, but there is no C compiler: {cc!r} was not found "
                                 "(install one, set CC, or unset SHEETSYNC_KERNEL to use numba)")
        return "c"
    raise SheetsyncError(f"SHEETSYNC_KERNEL={forced!r}: expected c, numba or auto")


def load_kernel(spec: Spec, which: str | None = None):
    """The compiled loop for `spec`, called as
    kernel(X, Y, ORDER, P, S, H, T, n_epochs, rec, R, EPO, DIV); `which` is a `backend()`."""
    which = which or backend()
    memo = spec.__dict__.setdefault("_kernels", {})  # a Run calls the same loop many times (macros)
    if which not in memo:
        kernel = _load_c_kernel(spec) if which == "c" else None
        memo[which] = kernel if kernel is not None else _load_numba_kernel(spec)
    return memo[which]


def _load_c_kernel(spec: Spec):
    """The C kernel, or None (after a logged warning) when it cannot be compiled."""
    from . import native

    argv = native.compiler()
    forced = os.environ.get("SHEETSYNC_KERNEL", "").strip().lower() == "c"
    if argv is None:  # the compiler went away since backend() looked
        if forced:
            raise SheetsyncError("SHEETSYNC_KERNEL=c, but there is no C compiler")
        return None
    source = native.generate_c_source(spec)
    key = native.cache_key(source, argv)
    broken = "cc:" + native.identity(argv)
    with _lock:
        fn = _loaded.get("c:" + key)
        if fn is not None:
            return fn
        if (key in _failed_c or broken in _failed_c) and not forced:
            return None
        try:
            fn = native.load(spec, source, key, argv)
        except native.CompileError as e:
            if forced:
                raise SheetsyncError(f"SHEETSYNC_KERNEL=c, but the training loop did not compile: {e}") from None
            _failed_c.add(key)
            # A compiler that cannot build even a trivial library (headers missing, say) is not
            # tried again in this process; one that fails on one loop is, on the next.
            if not native.compiler_works(argv):
                _failed_c.add(broken)
                log.warning("the C compiler %s does not work, training loops run with numba: %s", argv[0], e)
            else:
                log.warning("the C training loop did not compile, using numba instead: %s", e)
            return None
        _loaded["c:" + key] = fn
        return fn


def _load_numba_kernel(spec: Spec):
    source = generate_source(spec)
    key = hashlib.sha256(source.encode()).hexdigest()[:24]
    with _lock:
        fn = _loaded.get(key)
        if fn is not None:
            return fn
        path = cache_dir() / f"sheetsync_kernel_{key}.py"
        if not path.exists() or path.read_text() != source:
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)  # atomic: concurrent processes never see half a file
        module_spec = importlib.util.spec_from_file_location(f"sheetsync_kernel_{key}", path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module  # numba's on-disk cache re-imports it by name
        module_spec.loader.exec_module(module)
        _loaded[key] = module.kernel
        return module.kernel


def run_kernel(spec: Spec, X, Y, order, P, S, H, T, n_epochs: int, record: bool):
    """Run `n_epochs` epochs for every experiment row of P/S/H/T (updated in place).

    Returns (R, EPO, DIV): recorded lines (E, n_epochs*rows, columns) or an empty array,
    epoch accumulators (E, n_epochs, k), and per experiment [diverged, line, param, epochs, lines].
    """
    kernel = load_kernel(spec)
    E, n = P.shape[0], X.shape[0]
    ncols = len(spec.step_columns())
    R = np.empty((E, n_epochs * n if record else 0, ncols))
    EPO = np.zeros((E, n_epochs, len(spec.epoch_columns())))
    DIV = np.zeros((E, 5), dtype=np.int64)
    kernel(X, Y, order, P, S, H, T, n_epochs, record, R, EPO, DIV)
    return R, EPO, DIV

