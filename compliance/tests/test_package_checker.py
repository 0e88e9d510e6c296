"""package: every organisation of the fixtures gets a clear verdict; a good package passes."""

from __future__ import annotations

import json

from compliance.synth import write_log

from .conftest import FIXTURES, run_cli

SYSTEM = {"submitter": "Org", "division": "closed", "status": "onprem", "system_name": "cpu-box", "number_of_nodes": "1",
          "host_processors_per_node": "1", "host_processor_model_name": "cpu", "accelerators_per_node": "0",
          "accelerator_model_name": "N/A", "framework": "PyTorch", "hw_notes": "", "sw_notes": ""}


def _package(root, ruleset="mlbench-1.0.0-smoke", benchmark="ncf", runs=3, seeds=None):
    (root / "systems").mkdir(parents=True)
    (root / "systems" / "cpu-box.json").write_text(json.dumps(SYSTEM))
    for index in range(runs):
        seed = seeds[index] if seeds else index + 1
        write_log(root / "results" / "cpu-box" / benchmark / f"result_{index}.txt", ruleset, benchmark, seed=seed)
    return root


def test_a_good_package_passes(tmp_path):
    code, out, _ = run_cli("package", str(_package(tmp_path / "Org")))
    assert code == 0 and out.strip().splitlines()[-1] == "Org: package OK (3 runs checked (mlbench-1.0.0-smoke))"


def test_seeds_must_differ(tmp_path):
    code, out, _ = run_cli("package", str(_package(tmp_path / "Org", seeds=[7] * 3)))
    assert code == 1 and "seed 7 used by 3 runs" in out


def test_run_count_and_failed_runs(tmp_path):
    root = _package(tmp_path / "Org", runs=4)
    log = root / "results" / "cpu-box" / "ncf" / "result_0.txt"
    log.write_text(log.read_text().replace('"eval_hr_k", "value": 10', '"eval_hr_k", "value": 5'))
    code, out, _ = run_cli("package", str(root))
    assert code == 1
    assert "Org: error: results/cpu-box/ncf: 4 result files, 3 required by mlbench-1.0.0-smoke" in out
    assert "Org: warning: results/cpu-box/ncf/result_0.txt: NOT compliant" in out  # one failure is accepted


def test_every_fixture_organisation_gets_a_verdict():
    """Each FAILED verdict is held against a fact read here from the organisation's own files."""
    def system(org, name):
        return json.loads((FIXTURES / org / "systems" / f"{name}.json").read_text())

    assert "division" not in system("Alibaba", "n1_A100") and "divison" in system("Alibaba", "n1_A100")
    assert not (FIXTURES / "Alibaba" / "systems" / "v100-256.json").exists()
    assert (FIXTURES / "Alibaba" / "results" / "v100-256" / "result_1.txt").is_file()  # no benchmark folder
    assert "division" not in system("Tencent", "GN10X-8xV100")
    assert all("division" not in json.loads(path.read_text()) for path in (FIXTURES / "SIAT" / "systems").glob("*.json"))
    assert "number_of_nodes" not in system("DellEMC", "C4140") and "number of nodes" in system("DellEMC", "C4140")
    code, out, err = run_cli("package", str(FIXTURES), "--ruleset", "training-0.7.0")
    assert code == 1 and err == "" and "Traceback" not in out
    verdicts = {line.split(":")[0]: line for line in out.splitlines() if ": package " in line}
    assert sorted(verdicts) == ["Alibaba", "DellEMC", "Fujitsu", "Inspur", "Intel", "SIAT", "Tencent"]
    assert "FAILED" in verdicts["Alibaba"] and "FAILED" in verdicts["DellEMC"]
    assert "FAILED" in verdicts["SIAT"] and "FAILED" in verdicts["Tencent"]
    assert "OK" in verdicts["Intel"] and "OK" in verdicts["Inspur"] and "OK" in verdicts["Fujitsu"]
    assert "Alibaba: error: systems/n1_A100.json: missing field 'division' ('divison' is there: misspelt?)" in out
    assert "Alibaba: error: results/v100-256: no systems/v100-256.json" in out
    assert ("Alibaba: error: results/v100-256/result_1.txt: result file outside results/<system>/<benchmark>/ "
            "(a benchmark folder is missing); NOT compliant") in out
    assert "Tencent: error: systems/GN10X-8xV100.json: missing field 'division'" in out
    assert "SIAT: error: systems/modelarts_512_tensorflow_close.json: missing field 'division'" in out
    assert "DellEMC: error: systems/C4140.json: missing field 'number_of_nodes' ('number of nodes' is there" in out


def test_json_report(tmp_path):
    code, out, _ = run_cli("package", "--json", str(FIXTURES / "Intel"))
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["organisations"][0]["runs_checked"] == 10
