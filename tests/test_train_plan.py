"""The training driver's planning, config and cluster files (no Caffe processes)."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from g2s_caffe.attributes import parse_attributes
from g2s_caffe.config import merge_dotted
from g2s_caffe.errors import G2SError
from g2s_caffe.runs import run_name
from g2s_caffe.train import cluster
from g2s_caffe.train.config import TrainConfig
from g2s_caffe.train.plan import ABLATIONS, init_source, parse_steps, plan_jobs, select

ATTRS = parse_attributes({"attributes": [{"name": "Smiling", "crop": "h"},
                                         {"name": "Eyeglasses", "crop": "g"}]}, "test")

# Table 1's seven rows: job -> where it starts from (Fig. 1 with the left-out steps bridged).
EXPECTED = {
    (1,): {"step1": "A"},
    (2,): {"step2/Smiling": "A"},
    (3,): {"step3/Smiling": "A"},
    (1, 2): {"step1": "A", "step2/Smiling": "B"},
    (1, 3): {"step1": "A", "step3/Smiling": "B"},
    (2, 3): {"step2/Smiling": "A", "step3/Smiling": "C:Smiling"},
    (1, 2, 3): {"step1": "A", "step2/Smiling": "B", "step3/Smiling": "C:Smiling"},
}


def test_seven_ablations_resolve_their_init_sources():
    assert set(ABLATIONS) == set(EXPECTED) and len(ABLATIONS) == 7
    for steps, want in EXPECTED.items():
        jobs = {j.id: j for j in plan_jobs(ATTRS, steps) if j.attribute in (None, "Smiling")}
        assert {k: j.init_from for k, j in jobs.items()} == want, steps
        for j in jobs.values():   # a job depends exactly on the job its init comes from
            src = j.init_from
            assert j.depends == (("step1",) if src == "B" else ("step2/Smiling",) if src.startswith("C") else ())


def test_step3_uses_the_attribute_crop_and_step2_the_general_one():
    jobs = {j.id: j for j in plan_jobs(ATTRS, (1, 2, 3))}
    assert [jobs[f"step2/{a}"].scheme for a in ATTRS.names] == ["a", "a"]
    assert [jobs[f"step3/{a}"].scheme for a in ATTRS.names] == ["h", "g"]
    assert [jobs[f"step3/{a}"].attr_index for a in ATTRS.names] == [0, 1]
    assert len(jobs) == 1 + 2 * len(ATTRS)


def test_run_names_and_step_parsing():
    assert run_name([3, 1, 2]) == "steps_1_2_3" and run_name((2,)) == "steps_2"
    assert parse_steps("3,1") == (1, 3)
    for bad in ("", "4", "1,x", "0"):
        with pytest.raises(G2SError):
            parse_steps(bad)
    assert init_source(3, (3,), "X") == "A"


def test_only_selects_existing_jobs():
    jobs = plan_jobs(ATTRS, (1, 2, 3))
    assert [j.id for j in select(jobs, ["step2/Smiling,step3/Smiling"])] == ["step2/Smiling", "step3/Smiling"]
    with pytest.raises(G2SError, match="step2/Nose"):
        select(jobs, ["step2/Nose"])


def test_config_is_strict():
    cfg = merge_dotted(TrainConfig(), ["solver.max_iter_step1=7", "keep_snapshots=3"])
    assert cfg.solver.max_iter_step1 == 7 and cfg.keep_snapshots == 3
    with pytest.raises(G2SError, match="unknown key 'solver.max_iters'"):
        merge_dotted(TrainConfig(), ["solver.max_iters=7"])
    with pytest.raises(G2SError):
        merge_dotted(TrainConfig(), ["jobs=two"])


def test_cluster_files_are_valid_and_index_every_attribute(tmp_path):
    base = ["g2s", "train", "--data", "/shared/data", "--runs", "/shared/runs", "--steps", "1,2,3"]
    names = ["Smiling", "Eyeglasses", "5_o_Clock_Shadow"]
    sb = cluster.emit("slurm", tmp_path / "a.sbatch", base, names, "g2s_steps_1_2_3", 1)
    text = sb.read_text()
    assert subprocess.run(["bash", "-n", str(sb)]).returncode == 0
    assert "#SBATCH --array=0-2" in text and "--gres=gpu:1" in text
    assert '--only "step2/$ATTR,step3/$ATTR"' in text
    # the array index picks the attribute: run the selection part with a stub index
    sel = text.split("ATTRS=(")[1].split(")")[0]
    out = subprocess.run(["bash", "-c", f'ATTRS=({sel}); echo "${{ATTRS[2]}}"'], capture_output=True, text=True)
    assert out.stdout.strip() == "5_o_Clock_Shadow"
    k8 = cluster.emit("k8s", tmp_path / "j.yaml", base, names, "g2s_steps_1_2_3", 1)
    job = yaml.safe_load(k8.read_text())
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == 3
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert "JOB_COMPLETION_INDEX" in c["command"][2] and c["resources"]["limits"]["nvidia.com/gpu"] == 1
    with pytest.raises(G2SError):
        cluster.emit("pbs", tmp_path / "x", base, names, "n", 0)
