"""The CLI's side of named foundation models: licences shown, repo code trusted by name only,
a plan that fetches nothing."""

from __future__ import annotations

import http.server
import json
import threading

from click.testing import CliRunner

from sweep.cli import main
from tests.foundation_cache import make_foundation_repo


def test_grids_shows_each_models_licence_and_gating():
    out = CliRunner().invoke(main, ["grids"]).output
    assert "virchow2" in out and "licence CC-BY-NC-ND-4.0 (non-commercial, no derivatives); gated: accept its terms at https://huggingface.co/paige-ai/Virchow2" in out
    assert "licence MIT" in out  # BiomedCLIP: open, not gated


def test_weights_check_needs_trust_for_repo_code_and_reports_the_card(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_foundation_repo(str(tmp_path / "hub"), "hibou-b")
    refused = CliRunner().invoke(main, ["weights", "check", "hibou-b"])
    assert refused.exit_code == 1 and "pass --trust-remote-code hibou-b" in refused.output
    trusted = CliRunner().invoke(main, ["weights", "check", "hibou-b", "--trust-remote-code", "--json"])
    assert trusted.exit_code == 0, trusted.output
    report = json.loads(trusted.output)
    assert report["ok"] and report["dim"] == 32 and report["embedding"] == "pooler" and report["licence"] == "Apache-2.0"
    assert report["card"] == "https://huggingface.co/histai/hibou-b" and report["input_size"] == 224


def test_trusting_an_unknown_backbone_is_a_named_error():
    result = CliRunner().invoke(main, ["run", "--grid", "demo", "--trust-remote-code", "hibou"])
    assert result.exit_code == 2 and "unknown backbone 'hibou' (did you mean 'hibou-b'" in result.output


class CountingHub(http.server.BaseHTTPRequestHandler):
    requests = 0

    def _answer(self):
        CountingHub.requests += 1
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _answer

    def log_message(self, *args):
        pass


def test_a_plan_asks_the_hub_nothing_and_lists_what_the_cache_lacks(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setattr(constants, "ENDPOINT", address)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", address + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        make_foundation_repo(str(tmp_path / "hub"), "rad-dino")
        result = CliRunner().invoke(main, ["plan", "--grid", "foundation", "--format", "json"])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert CountingHub.requests == 0
    lacking = json.loads(result.stdout)["preflight"]["not_checked"]
    assert any(line.startswith("uni2-h: MahmoodLab/UNI2-h: config.json is not in the local Hugging Face cache")
               for line in lacking)
    assert not any(line.startswith("rad-dino:") for line in lacking)  # found in the cache


def test_weights_fetch_points_a_named_model_to_the_hugging_face_cache(tmp_path):
    result = CliRunner().invoke(main, ["weights", "fetch", "uni2-h", "--to", str(tmp_path)])
    assert result.exit_code == 2
    assert ("uni2-h comes through the Hugging Face cache, not a folder: hf download MahmoodLab/UNI2-h "
            "(or any `sweep run` online fetches it); it is gated: accept its terms at https://huggingface.co/MahmoodLab/UNI2-h first") in result.output
