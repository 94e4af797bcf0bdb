"""``GET /v1/precedents``: a cell's trace as JSON, through `sheetsync.trace`."""

from __future__ import annotations

from server_support import auth

H = auth()


def run_demo(client):
    assert client.post("/v1/runs", json={"spreadsheet": "demo.xlsx", "experiments": ["basic"]},
                       headers=H).status_code == 200


def test_precedents_of_a_step_cell_reach_the_data(client, folder):
    run_demo(client)
    r = client.get("/v1/precedents", query_string={"spreadsheet": "demo.xlsx", "cell": "basic steps!H5",
                                                   "depth": 3}, headers=H)
    assert r.status_code == 200, r.json
    tree = r.json["tree"]
    assert r.json["direction"] == "precedents"
    assert tree["label"] == "pred" and tree["children"]

    def cells(node):
        yield node["cell"]
        for child in node.get("children", []):
            yield from cells(child)

    assert any(c.startswith("data!") for c in cells(tree))  # down to the inputs
    assert str(folder) not in r.get_data(as_text=True)  # the server's folder never shows


def test_dependents_go_the_other_way(client):
    run_demo(client)
    r = client.get("/v1/precedents", query_string={"spreadsheet": "demo.xlsx", "cell": "basic steps!F5",
                                                   "depth": 1, "dependents": "true"}, headers=H)
    assert r.status_code == 200
    assert r.json["direction"] == "dependents"


def test_a_cell_outside_a_steps_tab_is_a_422(client):
    run_demo(client)
    r = client.get("/v1/precedents", query_string={"spreadsheet": "demo.xlsx", "cell": "data!A2"}, headers=H)
    assert r.status_code == 422
    assert r.json["error"]["code"] == "cannot_trace" and "steps" in r.json["error"]["message"]


def test_an_unknown_experiment_is_a_422_naming_the_cell(client):
    r = client.get("/v1/precedents", query_string={"spreadsheet": "demo.xlsx", "cell": "nosuch steps!A5"},
                   headers=H)
    assert r.status_code == 422
    assert r.json["error"]["problems"][0]["cell"] == "experiments"
    assert "run log" not in r.json["error"]["message"]  # a trace writes nothing

