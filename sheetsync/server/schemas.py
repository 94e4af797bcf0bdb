"""The JSON shapes of the HTTP API, defined once.

The request validator (`sheetsync.server.validation`) checks bodies and query strings against these,
and the OpenAPI document (`sheetsync.server.openapi`) publishes them, so the two cannot disagree.
"""

from __future__ import annotations

NAME = {"type": "string", "minLength": 1, "maxLength": 100}

RUN_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["spreadsheet"],
    "properties": {
        "spreadsheet": {"type": "string", "minLength": 1, "maxLength": 2048,
                        "description": "Google mode: a spreadsheet URL or key. Local mode: the "
                                       "name of a .xlsx/.xlsm workbook in the served folder.",
                        "example": "sheetsync-demo.xlsx"},
        "experiments": {"type": "array", "items": NAME, "maxItems": 50,
                        "description": "Only these experiments (default: all)."},
        "action": {"type": "string", "enum": ["run", "reset"], "default": "run",
                   "description": "run: continue from the saved state; reset: start again from init."},
        "mode": {"type": "string", "enum": ["values", "formulas"], "default": "values",
                 "description": "values: write numbers; formulas: write per-row formulas."},
    },
}

PRECEDENTS_QUERY = {  # query parameters of GET /v1/precedents
    "type": "object",
    "additionalProperties": False,
    "required": ["spreadsheet", "cell"],
    "properties": {
        "spreadsheet": RUN_REQUEST["properties"]["spreadsheet"],
        "cell": {"type": "string", "minLength": 1, "maxLength": 300,
                 "pattern": r"^[^!]{1,200}![A-Za-z]{1,3}[1-9][0-9]{0,6}$",
                 "description": "TAB!A1 address of the cell to trace.", "example": "basic steps!H5"},
        "depth": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
        "dependents": {"type": "boolean", "default": False},
    },
}

PROBLEM = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "cell": {"type": "string", "description": "Where in the sheet, e.g. data!B7."},
        "field": {"type": "string", "description": "Which part of the request, e.g. experiments[0]."},
        "message": {"type": "string"},
    },
}

ERROR_DETAIL = {
    "type": "object",
    "required": ["code", "message", "problems"],
    "properties": {
        "code": {"type": "string", "example": "input_error"},
        "message": {"type": "string"},
        "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
    },
}

EXPERIMENT_REPORT = {
    "type": "object",
    "required": ["name", "start", "epochs_run", "total_epochs", "loss", "params"],
    "properties": {
        "name": {"type": "string"},
        "start": {"type": "string", "description": "continued | reset | first run | reset: <why>"},
        "epochs_run": {"type": "integer"},
        "total_epochs": {"type": "integer"},
        "loss": {"type": "number", "nullable": True, "description": "Last epoch's loss; null if not finite."},
        "params": {"type": "object", "additionalProperties": {"type": "number", "nullable": True}},
        "diverged": {"type": "string", "nullable": True},
        "notes": {"type": "array", "items": {"type": "string"}},
        "sampled": {"type": "boolean"},
        "sqrt_sum_err2": {"type": "number", "nullable": True,
                          "description": "The workbook's error cell, sqrt(sum err^2), of the last epoch."},
        "accuracy": {"type": "number", "nullable": True,
                     "description": "Classifiers: the last epoch's share of rows predicted right; null otherwise."},
        "rmse": {"type": "number", "nullable": True,
                 "description": "dot_product: the last epoch's RMSE over every rating; null otherwise."},
        "diagnostics": {"type": "object", "description": (
            "Why the run went the way it did: safe_lr (the largest lr proven to train, or null), "
            "diverged_at and started_at ({epoch, step, row, ...}), loss_rose ([epoch, peak epoch]), "
            "dead (ReLU unit -> {epoch, step, params}), grad_gap, restarted, story (sentences) and "
            "rows (the steps tab's cells of the highlighted rows)."),
            "properties": {"safe_lr": {"type": "number", "nullable": True},
                           "story": {"type": "array", "items": {"type": "string"}}}},
    },
}

SUMMARY = {
    "type": "object",
    "required": ["spreadsheet", "action", "experiments", "tabs_written"],
    "properties": {
        "spreadsheet": {"type": "string"},
        "action": {"type": "string"},
        "experiments": {"type": "array", "items": {"$ref": "#/components/schemas/ExperimentReport"}},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "data_hash": {"type": "string"},
        "tabs_written": {"type": "array", "items": {"type": "string"}},
        "seconds": {"type": "number"},
    },
}

RUN = {
    "type": "object",
    "required": ["id", "status", "spreadsheet", "action", "mode", "progress", "created"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
        "spreadsheet": {"type": "string"},
        "action": {"type": "string", "enum": ["run", "reset"]},
        "mode": {"type": "string", "enum": ["values", "formulas"]},
        "experiments": {"type": "array", "items": {"type": "string"}, "nullable": True},
        "progress": {"type": "object", "required": ["done", "total"],
                     "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}}},
        "summary": {"allOf": [{"$ref": "#/components/schemas/Summary"}], "nullable": True},
        "error": {"allOf": [{"$ref": "#/components/schemas/ErrorDetail"}], "nullable": True},
        "created": {"type": "string", "format": "date-time"},
        "started": {"type": "string", "format": "date-time", "nullable": True},
        "finished": {"type": "string", "format": "date-time", "nullable": True},
    },
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"$ref": "#/components/schemas/ErrorDetail"},
        "run": {"$ref": "#/components/schemas/Run"},
    },
}

HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string", "enum": ["ok"]}, "version": {"type": "string"}},
}

PRECEDENTS = {"type": "object", "description": "The trace of one cell, as sheetsync.trace returns it."}

COMPONENTS = {
    "RunRequest": RUN_REQUEST,
    "Run": RUN,
    "Summary": SUMMARY,
    "ExperimentReport": EXPERIMENT_REPORT,
    "Error": ERROR,
    "ErrorDetail": ERROR_DETAIL,
    "Problem": PROBLEM,
    "Health": HEALTH,
    "Precedents": PRECEDENTS,
}
