"""`Experiment`: the settings of one training run, validated, with documented defaults.

The same names are used in the Python API, the `experiments` tab of a sheet and the CLI's
experiment files. Defaults that depend on the flavour and optimizer (a learning rate, an eps)
are the defaults of what that flavour reproduces: the fast.ai workbook's constants, torch.optim's
keyword defaults, fastai.optimizer's defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from .errors import SettingError, closest

MODELS = ("linear", "two_linear", "two_relu", "mlp", "logistic", "softmax", "dot_product")
OUTPUTS = ("linear", "sigmoid", "softmax")  # mlp's head
LOSS_NAMES = ("squared", "absolute", "bce", "cross_entropy", "focal")
# The head each model ends in (mlp: its `output`), and the losses each head takes; the default
# loss is the first.
MODEL_HEADS = {"linear": "linear", "two_linear": "linear", "two_relu": "linear", "logistic": "sigmoid",
               "softmax": "softmax", "dot_product": "linear"}
HEAD_LOSSES = {"linear": ("squared", "absolute"), "sigmoid": ("bce", "focal", "squared", "absolute"),
               "softmax": ("cross_entropy",)}


def head_of(model: str, output: str = "linear") -> str:
    return output if model == "mlp" else MODEL_HEADS[model]
FLAVOURS = ("graddesc", "pytorch", "fastai")

# Optimizer names each flavour knows. graddesc's are the workbook's tabs.
OPTIMIZERS = {
    "graddesc": ("sgd", "momentum", "rmsprop", "adam", "adam_ann", "adagrad", "eve", "adagrad_ann"),
    "pytorch": ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"),
    "fastai": ("sgd", "momentum", "rmsprop", "adam"),
}
ALL_OPTIMIZERS = tuple(dict.fromkeys(o for opts in OPTIMIZERS.values() for o in opts))

# Learning rates: the workbook's tab constants, torch's keyword defaults, fastai's Learner default.
DEFAULT_LR = {
    ("graddesc", "sgd"): 1e-4,
    ("graddesc", "momentum"): 1e-4,
    ("graddesc", "rmsprop"): 0.02,
    ("graddesc", "adam"): 1.0,
    ("graddesc", "adam_ann"): 1.0,
    ("graddesc", "eve"): 1.0,
    ("graddesc", "adagrad"): 1e-3,
    ("graddesc", "adagrad_ann"): 0.5,
    ("pytorch", "sgd"): 1e-3,
    ("pytorch", "momentum"): 1e-3,
    ("pytorch", "nesterov"): 1e-3,
    ("pytorch", "adagrad"): 1e-2,
    ("pytorch", "rmsprop"): 1e-2,
    ("pytorch", "adam"): 1e-3,
    ("pytorch", "adamw"): 1e-3,
    ("fastai", "sgd"): 1e-3,
    ("fastai", "momentum"): 1e-3,
    ("fastai", "rmsprop"): 1e-3,
    ("fastai", "adam"): 1e-3,
}


def _default_momentum(f: str, o: str) -> float:
    return 0.9 if o in ("momentum", "nesterov") else 0.0


def _default_weight_decay(f: str, o: str) -> float:
    return 0.01 if (f, o) in (("pytorch", "adamw"), ("fastai", "adam")) else 0.0


def _default_alpha(f: str, o: str) -> float:
    return 0.9 if f == "graddesc" else 0.99


def _default_eps(f: str, o: str) -> float:
    if f == "graddesc":
        return 0.0
    if f == "fastai":
        return 1e-5 if o == "adam" else 1e-8
    return 1e-10 if o == "adagrad" else 1e-8


def _default_beta1(f: str, o: str) -> float:
    return 0.7 if (f, o) == ("graddesc", "eve") else 0.9


def _default_beta2(f: str, o: str) -> float:
    if f == "graddesc":
        return 0.95 if o == "adam_ann" else 0.9
    return 0.99 if f == "fastai" else 0.999


def _default_gradient(f: str, o: str) -> str:
    return "both" if (f, o) == ("graddesc", "sgd") else "analytic"  # the basic tab shows estimates


# ---------------------------------------------------------------------------------------------
# Value checks: each returns the cleaned value or raises ValueError with what was expected.


def _number(v: Any) -> float:
    shown = v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if not isinstance(v, str):
            raise ValueError(f"expected a number, found {v!r}")
        try:
            v = float(v.strip())
        except ValueError:
            raise ValueError(f"expected a number, found {shown!r}") from None
    v = float(v)
    if not math.isfinite(v):  # 'nan' or 'inf' would train with NaN
        raise ValueError(f"expected a finite number, found {shown!r}")
    return v


def _positive(v: Any) -> float:
    v = _number(v)
    if v <= 0:
        raise ValueError(f"expected a number > 0, found {v!r}")
    return v


def _non_negative(v: Any) -> float:
    v = _number(v)
    if v < 0:
        raise ValueError(f"expected a number >= 0, found {v!r}")
    return v


def _unit_interval(v: Any) -> float:
    v = _number(v)
    if not 0 <= v < 1:
        raise ValueError(f"expected a number in [0, 1), found {v!r}")
    return v


def _count(minimum: int, maximum: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        n = _number(v)
        if n != int(n):
            raise ValueError(f"expected a whole number, found {v!r}")
        if not minimum <= n <= maximum:
            raise ValueError(f"expected a whole number from {minimum} to {maximum:,}, found {int(n)}")
        return int(n)

    return check


def _batch_size(v: Any) -> int:
    if isinstance(v, str) and v.strip().lower() in ("all", "full"):
        return 0  # 0 means: the whole data set in one batch
    return _count(1, 10**9)(v)


def _unit_closed(v: Any) -> float:
    v = _number(v)
    if not 0 <= v <= 1:
        raise ValueError(f"expected a number in [0, 1], found {v!r}")
    return v


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("none", "off"):
            return None
        return check(v)

    return optional


def _boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return v.strip().lower() in ("true", "yes", "1", "on")
    raise ValueError(f"expected true or false, found {v!r}")


def _y_range(v: Any) -> tuple[float, float]:
    """'0, 5.5' (or two numbers) -> (0.0, 5.5): fastai's sigmoid_range bounds, low < high."""
    parts = list(v) if isinstance(v, (list, tuple)) else str(v).replace(";", ",").split(",")
    if len(parts) != 2:
        raise ValueError(f"expected two numbers 'low, high' such as '0, 5.5', found {v!r}")
    low, high = (_number(x) for x in parts)
    if not low < high:
        raise ValueError(f"expected low < high, found {v!r}")
    return (low, high)


def _a1_range(v: Any) -> str:
    """'dotprod!B25:F39': a rectangle of cells on a named tab (checked against the sheet when read)."""
    s = str(v).strip()
    if "!" not in s or ":" not in s.rsplit("!", 1)[1]:
        raise ValueError(f"expected a range such as 'dotprod!B25:F39' (tab!first:last), found {v!r}")
    return s


def _choice(*allowed: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        s = str(v).strip().lower() if v is not None else ""
        if s not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, found {v!r}{closest(s, allowed)}")
        return s

    return check


class Setting(NamedTuple):  # immutable like a frozen dataclass, ~4x cheaper to define (start-up)
    """One experiment setting: its check, default and documentation."""

    name: str
    check: Callable[[Any], Any]
    default: Any  # a value, or a function (flavour, optimizer) -> value
    doc: str
    applies: Callable[[str, str], bool] = lambda f, o: True  # (flavour, optimizer) -> used?


def _torch_only(*opts: str) -> Callable[[str, str], bool]:
    return lambda f, o: f == "pytorch" and o in opts


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("model", _choice(*MODELS), "linear", "linear | two_linear | two_relu | mlp | logistic | softmax | dot_product"),
        Setting("optimizer", _choice(*ALL_OPTIMIZERS), "sgd", "see OPTIMIZERS per flavour"),
        Setting("flavour", _choice(*FLAVOURS), "graddesc", "graddesc | pytorch | fastai"),
        Setting("lr", _positive, lambda f, o: DEFAULT_LR[(f, o)], "learning rate"),
        Setting("epochs", _count(1, 10**7), 5, "epochs per run (the workbook's Run button = 5)"),
        Setting("batch_size", _batch_size, 1, "rows per step; 'all' for full batch"),
        Setting("shuffle", _boolean, False, "shuffle rows each epoch"),
        Setting("seed", _count(0, 2**32 - 1), 0, "seed for shuffling and mlp's initial weights"),
        Setting("momentum", _unit_interval, _default_momentum, "momentum (graddesc: the EMA beta)",
                lambda f, o: o in ("momentum", "nesterov") or (o in ("sgd", "rmsprop") and f != "graddesc")),
        Setting("dampening", _unit_interval, 0.0, "torch SGD dampening", _torch_only("sgd", "momentum")),
        Setting("nesterov", _boolean, lambda f, o: o == "nesterov", "torch SGD Nesterov",
                _torch_only("sgd", "momentum", "nesterov")),
        Setting("weight_decay", _non_negative, _default_weight_decay, "L2 (torch) or decoupled decay",
                lambda f, o: f != "graddesc"),
        Setting("decouple_wd", _boolean, True, "fastai: decoupled weight decay (p *= 1 - lr*wd)",
                lambda f, o: f == "fastai"),
        Setting("alpha", _unit_interval, _default_alpha, "RMSProp square-average decay",
                lambda f, o: o == "rmsprop"),
        Setting("centered", _boolean, False, "torch centered RMSProp", _torch_only("rmsprop")),
        Setting("eps", _non_negative, _default_eps,
                "eps in the denominator (graddesc has none; fastai's RMSProp ignores it and uses 1e-8)",
                lambda f, o: f != "graddesc" and o not in ("sgd", "momentum", "nesterov")
                and (f, o) != ("fastai", "rmsprop")),
        Setting("beta1", _unit_interval, _default_beta1, "first-moment decay",
                lambda f, o: o in ("adam", "adamw", "adam_ann", "eve")),
        Setting("beta2", _unit_interval, _default_beta2, "second-moment decay",
                lambda f, o: o in ("adam", "adamw", "adam_ann", "eve")),
        Setting("amsgrad", _boolean, False, "torch AMSGrad", _torch_only("adam", "adamw")),
        Setting("lr_decay", _non_negative, 0.0, "torch Adagrad lr decay", _torch_only("adagrad")),
        Setting("initial_accumulator_value", _non_negative, 0.0, "torch Adagrad accumulator start",
                _torch_only("adagrad")),
        Setting("hidden", _count(1, 1000), 2, "hidden ReLU units (mlp)", lambda f, o: True),
        Setting("loss", _choice(*LOSS_NAMES), "squared",
                "per-row loss: squared | absolute (regression), bce | focal (logistic, mlp with output "
                "sigmoid), cross_entropy (softmax, mlp with output softmax); default by model"),
        Setting("output", _choice(*OUTPUTS), "linear", "mlp's output: linear | sigmoid | softmax"),
        Setting("log_base", _choice("e", "10"), "e",
                "base of the log in bce / cross_entropy / focal; 10 is the fast.ai sheets' LOG"),
        Setting("gamma", _non_negative, 2.0, "focal loss's focusing parameter γ"),
        Setting("focal_alpha", _optional(_unit_closed), None,
                "focal loss's class weight α for y = 1 (none: no weighting); torchvision's alpha"),
        Setting("classes", _count(0, 1000), 0, "classes of a softmax model (0: inferred from y)"),
        Setting("gradient", _choice("analytic", "numeric", "both"), _default_gradient,
                "which gradient drives the update; 'both' shows the estimate beside it"),
        Setting("grad_method", _choice("forward", "central"), "forward", "numeric difference"),
        Setting("grad_step", _positive, 0.01, "numeric difference step h"),
        Setting("divergence_bound", _positive, 1e10, "a |parameter| past this counts as diverged"),
        Setting("mode", _choice("values", "formulas"), "values", "write numbers or per-row formulas"),
        # dot_product (collaborative filtering): see docs/embeddings.md
        Setting("factors", _count(1, 100), 5, "latent factors per user and per item (dot_product)"),
        Setting("bias", _boolean, True, "a bias per user and per item (dot_product)"),
        Setting("y_range", _optional(_y_range), None, "'low, high': predictions through fastai's "
                "sigmoid_range (dot_product); none by default"),
        Setting("embedding_init", _choice("normal", "uniform"), "normal",
                "dot_product's starting factors: normal (fastai: std 0.01) | uniform (Jeremy's sheet: [0, 1))"),
        Setting("user_factors_from", _optional(_a1_range), None,
                "a range of starting user factors, one row per user (e.g. dotprod!B25:F39)"),
        Setting("item_factors_from", _optional(_a1_range), None,
                "a range of starting item factors, one column per item (e.g. dotprod!H19:V23)"),
    ]
}
SETTING_NAMES = tuple(SETTINGS) + ("init",)

# Common spellings of settings (other libraries, papers, the course) -> sheetsync's name. Used only
# to suggest the right name for an unknown one, by meaning where letters mislead ('learning rate'
# is nearer 'lr_decay' than 'lr' letter by letter); the sheet keeps one name per setting.
# Keys are normalised as `_normal` does: lower case, words joined by '_'.
SYNONYMS = {
    **dict.fromkeys(("learning_rate", "learningrate", "rate", "step_size", "stepsize", "eta",
                     "base_lr", "lr0"), "lr"),
    **dict.fromkeys(("n_epochs", "num_epochs", "nb_epochs", "number_of_epochs", "max_epochs",
                     "epoch", "nepochs", "iterations"), "epochs"),
    **dict.fromkeys(("batchsize", "bs", "batch", "minibatch", "minibatch_size", "mini_batch_size",
                     "batch_length"), "batch_size"),
    **dict.fromkeys(("beta_1", "b1", "first_moment"), "beta1"),
    **dict.fromkeys(("beta_2", "b2", "second_moment"), "beta2"),
    **dict.fromkeys(("mom", "mu", "momentum_beta"), "momentum"),
    **dict.fromkeys(("wd", "weightdecay", "l2", "l2_penalty", "weight_decay_rate"),
                    "weight_decay"),
    **dict.fromkeys(("epsilon", "fuzz", "fuzz_factor"), "eps"),
    **dict.fromkeys(("optimiser", "optim", "opt", "solver"), "optimizer"),
    **dict.fromkeys(("flavor", "style", "variant"), "flavour"),
    **dict.fromkeys(("random_seed", "rng_seed", "random_state"), "seed"),
    **dict.fromkeys(("hidden_units", "hidden_size", "n_hidden", "units", "neurons"), "hidden"),
    **dict.fromkeys(("rho", "sq_decay", "decay_rate"), "alpha"),
    **dict.fromkeys(("loss_function", "criterion"), "loss"),
    **dict.fromkeys(("h", "finite_difference_step", "epsilon_step"), "grad_step"),
}
assert set(SYNONYMS.values()) <= set(SETTINGS), "a synonym must name a setting"


def _normal(name: Any) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def suggest_setting(name: Any) -> str:
    """' (did you mean 'lr'?)' for an unknown setting name: by meaning first, then by letters."""
    key = _normal(name)
    squeezed = key.replace("_", "")
    for known in (*SETTINGS, *SYNONYMS):  # 'batchsize', 'beta_1', 'Weight-Decay'
        if known.replace("_", "") == squeezed:
            return f" (did you mean {SYNONYMS.get(known, known)!r}?)"
    return closest(key, SETTING_NAMES)


@dataclass(frozen=True)
class Experiment:
    """One experiment's settings, complete and validated.

    >>> Experiment(optimizer="adam", lr=0.5).beta2   # graddesc adam: the workbook's 0.9
    0.9
    """

    name: str = "experiment"
    values: dict[str, Any] = field(default_factory=dict)
    init: dict[str, float] = field(default_factory=dict)
    given: frozenset[str] = frozenset()  # settings the user set explicitly

    def __init__(self, name: str = "experiment", *, init: dict | None = None, **settings: Any):
        cleaned, given = _validate(settings)
        init_clean = {}
        for param, value in (init or {}).items():
            try:
                init_clean[str(param).strip()] = _number(value)
            except ValueError as e:
                raise SettingError(f"init {param}", str(e)) from None
        object.__setattr__(self, "name", str(name))
        object.__setattr__(self, "values", cleaned)
        object.__setattr__(self, "init", init_clean)
        object.__setattr__(self, "given", frozenset(given))

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def replace(self, **changes: Any) -> "Experiment":
        """A copy with some settings changed (validated again); `init` entries are added to the
        experiment's own (see `with_init` to replace them)."""
        name = changes.pop("name", self.name)
        init = dict(self.init)
        init.update(changes.pop("init", {}) or {})
        return Experiment(name, init=init, **(self._given() | changes))

    def with_init(self, init: dict[str, Any]) -> "Experiment":
        """A copy whose starting values are exactly `init` (validated again)."""
        return Experiment(self.name, init=init, **self._given())

    def _given(self) -> dict[str, Any]:
        settings = {k: self.values[k] for k in self.given}
        if settings.get("batch_size") == 0:  # the stored form of 'all', which validation takes as text
            settings["batch_size"] = "all"
        return settings

    def settings(self) -> dict[str, Any]:
        """Every setting with its effective value (for run logs and outputs)."""
        out = dict(self.values)
        out["init"] = dict(self.init)
        return out

    def unused(self) -> list[str]:
        """Settings the user gave that this flavour/optimizer ignores (shown as warnings)."""
        f, o = self.values["flavour"], self.values["optimizer"]
        return [k for k in sorted(self.given) if not SETTINGS[k].applies(f, o)]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={self.values[k]!r}" for k in sorted(self.given))
        return f"Experiment({self.name!r}, {shown})"


def _validate(settings: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    given: dict[str, Any] = {}
    for raw_key, value in settings.items():
        key = str(raw_key).strip().lower().replace(" ", "_")
        if key not in SETTINGS:
            raise SettingError(str(raw_key), "unknown setting; known settings are "
                               + ", ".join(SETTING_NAMES) + suggest_setting(raw_key))
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # blank: take the default
        given[key] = value

    cleaned: dict[str, Any] = {}
    for key in ("model", "flavour", "optimizer"):
        try:
            cleaned[key] = SETTINGS[key].check(given.get(key, SETTINGS[key].default))
        except ValueError as e:
            raise SettingError(key, str(e)) from None
    flavour, optimizer = cleaned["flavour"], cleaned["optimizer"]
    if optimizer not in OPTIMIZERS[flavour]:
        allowed = OPTIMIZERS[flavour]
        raise SettingError("optimizer", f"the {flavour} flavour has no {optimizer!r}; expected one of "
                           f"{', '.join(allowed)}{closest(optimizer, allowed)}")

    for key, spec in SETTINGS.items():
        if key in cleaned:
            continue
        if key in given:
            try:
                cleaned[key] = spec.check(given[key])
            except ValueError as e:
                raise SettingError(key, str(e)) from None
        else:
            d = spec.default
            cleaned[key] = d(flavour, optimizer) if callable(d) else d

    head = head_of(cleaned["model"], cleaned["output"])
    allowed = HEAD_LOSSES[head]
    if "loss" not in given:
        cleaned["loss"] = allowed[0]
    elif cleaned["loss"] not in allowed:
        which = f"mlp with output {cleaned['output']}" if cleaned["model"] == "mlp" else cleaned["model"]
        raise SettingError("loss", f"{which} takes loss {' or '.join(allowed)}, not {cleaned['loss']!r}")
    if "output" in given and cleaned["model"] != "mlp" and cleaned["output"] != "linear":
        raise SettingError("output", f"output chooses mlp's head; {cleaned['model']} has its own "
                           "(use model logistic or softmax, or model mlp)")
    if cleaned["nesterov"] and flavour == "pytorch" and (cleaned["momentum"] <= 0 or cleaned["dampening"] != 0):
        raise SettingError("nesterov", "Nesterov momentum needs momentum > 0 and dampening 0 (as torch.optim.SGD)")
    if flavour == "graddesc" and (cleaned["batch_size"] != 1 or cleaned["shuffle"]):
        bad = "batch_size" if cleaned["batch_size"] != 1 else "shuffle"
        raise SettingError(bad, "the graddesc flavour steps one row at a time in order, as the workbook; "
                           "use the pytorch or fastai flavour for batches or shuffling")
    return cleaned, set(given)
