"""The training driver's planning, config and cluster files (no Caffe processes)."""
from __future__ import annotations

import subprocess

import pytest

from g2s_caffe.methods.g2s.steps import steps_of
import yaml

from g2s_caffe.core.attributes import parse_attributes
from g2s_caffe.core.config import merge_dotted
from g2s_caffe.core.errors import G2SError
from g2s_caffe.methods.g2s.steps import run_name
from g2s_caffe.methods.g2s.train import cluster
from g2s_caffe.methods.g2s.train.config import TrainConfig
from g2s_caffe.methods.g2s.train.plan import ABLATIONS, init_source, parse_steps, plan_jobs, select


from support import ROOT as ROOT_DIR

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


def _runs_for(combos):
    """Run objects as prepare.create_or_load makes them (jobs from plan_jobs), no files."""
    from g2s_caffe.core.runs import Job, Run

    runs = []
    for steps in combos:
        jobs = [Job(id=s.id, step=s.step, attribute=s.attribute, attr_index=s.attr_index, scheme=s.scheme,
                    dir=s.id, solver="", train_val="", deploy="", log="", seed=1,
                    extra={"init_from": s.init_from, "depends": list(s.depends)})
                for s in plan_jobs(ATTRS, steps)]
        runs.append(Run(root=None, run=run_name(steps), dataset="t", data="/d", attributes=[],
                        pretrained={"path": None}, config={"steps": list(steps)}, caffe={}, git_commit=None,
                        created="", jobs=jobs, method="g2s"))
    return runs


def _g2s_like_fingerprints(run):
    """What G2S's fingerprints make equal: the step, the attribute and the init chain."""
    def fp(job):
        src = job.extra["init_from"]
        if job.step == 1 or src == "A":
            return f"{job.step}{job.attribute}:A"
        return f"{job.step}{job.attribute}:" + fp(run.job("step1" if src == "B" else f"step2/{src[2:]}"))
    return {j.id: fp(j) for j in run.jobs}


def test_ablations_chain_submits_each_distinct_training_once():
    runs = _runs_for(ABLATIONS)
    chain = cluster.plan_chain(runs, [[j.id for j in r.jobs] for r in runs],
                               [_g2s_like_fingerprints(r) for r in runs], "g2s_ablations")
    # Step 1: one training, adopted by the three other runs that have it, in one job
    assert [c.word for c in chain.step1] == ["1:step1", "1,2:step1", "1,3:step1", "1,2,3:step1"]
    # per attribute: Step 2 from A, from B; Step 3 from A, from B (alone), from C_A, from C_B
    assert len(chain.units) == 4 * len(ATTRS) and chain.trainings == 1 + 6 * len(ATTRS)
    assert chain.entries == 4 + 8 * len(ATTRS) == sum(len(r.jobs) for r in runs)
    words = [[c.word for c in u.calls] for u in chain.units]
    assert words[:4] == [["2:step2/Smiling", "2,3:step2/Smiling", "2,3:step3/Smiling"],     # longest first
                         ["1,2:step2/Smiling", "1,2,3:step2/Smiling", "1,2,3:step3/Smiling"],
                         ["3:step3/Smiling"],
                         ["1,3:step3/Smiling"]]
    assert [u.trainings for u in chain.units[:4]] == [2, 2, 1, 1]
    # every job entry of every run is in exactly one call
    calls = [(c.steps, c.job) for c in chain.step1] + [(c.steps, c.job) for u in chain.units for c in u.calls]
    assert sorted(calls) == sorted((tuple(steps_of(r)), j.id) for r in runs for j in r.jobs)
    assert chain.eval_runs == tuple(r.run for r in runs)
    # sharing off: every run's jobs are their own trainings
    off = cluster.plan_chain(runs, [[j.id for j in r.jobs] for r in runs],
                             [{j.id: f"{r.run}/{j.id}" for j in r.jobs} for r in runs], "x")
    assert off.trainings == off.entries == chain.entries


def test_a_partial_selection_leaves_evaluation_out():
    runs = _runs_for([(1, 2, 3)])
    chain = cluster.plan_chain(runs, [["step1", "step2/Smiling", "step3/Smiling"]],
                               [_g2s_like_fingerprints(runs[0])], "x")
    assert len(chain.units) == 1 and not chain.eval_runs and "step2/Eyeglasses" in chain.note
    alone = cluster.plan_chain(runs, [["step3/Eyeglasses"]], [_g2s_like_fingerprints(runs[0])], "x")
    assert [[c.word for c in u.calls] for u in alone.units] == [["1,2,3:step3/Eyeglasses"]] and not alone.step1


def test_slurm_script_and_k8s_jobs_carry_the_same_chain(tmp_path):
    runs = _runs_for([(1, 2, 3)])
    chain = cluster.plan_chain(runs, [[j.id for j in runs[0].jobs]], [_g2s_like_fingerprints(runs[0])], "g2s_x")
    train = ["/opt/venv/bin/g2s", "train", "--data", "/shared/data", "--runs", "/shared/runs", "--gpus", "0,1"]
    text = cluster.slurm_script(chain, train, ["/opt/venv/bin/g2s", "eval", "--runs", "/shared/runs"],
                                [tmp_path], tmp_path, 2, 1, ["--partition=gpu", "--qos=high"], ["--time=7-0"],
                                True, "g2s train ...")
    sb = cluster.write_executable(tmp_path / "submit.sh", text)
    assert subprocess.run(["bash", "-n", str(sb)]).returncode == 0
    assert "#SBATCH --requeue" in text and f"#SBATCH --signal=B:USR1@{cluster.SIGNAL_LEAD_S}" in text
    assert "SBATCH_STEP1_DEFAULTS=(--cpus-per-task=4 --gres=gpu:2)" in text
    assert "SBATCH_TASK_DEFAULTS=(--cpus-per-task=4 --gres=gpu:1)" in text
    assert "SBATCH_ALL=(--partition=gpu --qos=high)" in text and "SBATCH_STEP1=(--time=7-0)" in text

    def arr(src, name):
        body = src.split(f"{name}=(")[1].split(")\n")[0]
        return subprocess.run(["bash", "-c", f'A=({body}); printf "%s\\n" "${{A[@]}}"'], capture_output=True,
                              text=True).stdout.splitlines()

    assert arr(text, "UNITS") == ["1,2,3:step2/Smiling 1,2,3:step3/Smiling",
                                  "1,2,3:step2/Eyeglasses 1,2,3:step3/Eyeglasses"]
    # --dry-run: the three submissions with their dependencies, nothing submitted
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sbatch").write_text("#!/bin/sh\necho should not run >&2; exit 9\n")
    (fake / "sbatch").chmod(0o755)
    r = subprocess.run(["bash", str(sb), "--dry-run"], capture_output=True, text=True,
                       env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sbatch")]
    assert len(lines) == 3 and "--gres=gpu:2" in lines[0] and "--time=7-0" in lines[0]
    assert "--dependency=afterok:DRY1" in lines[1] and "--array=0-1" in lines[1] and "--time=7-0" not in lines[1]
    assert "--dependency=afterok:DRY2" in lines[2] and lines[2].endswith("--stage eval")
    assert "job ids: DRY1 DRY2 DRY3" in r.stdout
    # a rejected second submission: Slurm's words, what to change, and the first one cancelled
    (fake / "sbatch").write_text('#!/bin/sh\nn=$(cat "$0.n" 2>/dev/null || echo 0); echo $((n + 1)) > "$0.n"\n'
                                 'if [ "$n" = 0 ]; then echo 101; exit 0; fi\n'
                                 'echo "sbatch: error: Batch job submission failed: Invalid account or '
                                 'account/partition combination specified" >&2; exit 1\n')
    (fake / "scancel").write_text('#!/bin/sh\necho "$@" > "$0.args"\n')
    (fake / "scancel").chmod(0o755)
    r = subprocess.run(["bash", str(sb)], capture_output=True, text=True, env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert r.returncode == 1 and "Invalid account or account/partition" in r.stderr
    assert "Check --account / --qos" in r.stderr and "Cancelling what this run of the script submitted: 101" in r.stderr
    assert (fake / "scancel.args").read_text().split() == ["101"]

    k8 = cluster.k8s_yaml(chain, ["g2s", "train", "--gpus", "0,1"], ["g2s", "eval", "--runs", "/shared/runs"],
                          2, 1, "img", "pvc", "/shared", "g2s train ...")
    docs = [d for d in yaml.safe_load_all(k8) if d]
    assert [d["metadata"]["name"] for d in docs] == ["g2s-x-step1", "g2s-x-steps23", "g2s-x-eval"]
    limits = [d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] for d in docs]
    assert limits == [2, 1, 1]
    assert docs[1]["spec"]["completions"] == 2 and docs[1]["spec"]["suspend"] and docs[2]["spec"]["suspend"]
    assert arr(docs[1]["spec"]["template"]["spec"]["containers"][0]["command"][2], "UNITS") == arr(text, "UNITS")


def test_shared_paths_must_be_absolute_and_not_node_local(tmp_path, monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)
    assert tmp_path.resolve().parts[1] == "tmp"
    with pytest.raises(G2SError, match="local to each machine.*--allow-local-paths"):
        cluster.check_shared({"--data": tmp_path}, allow_local=False)
    assert cluster.check_shared({"--data": tmp_path}, allow_local=True) == [tmp_path.resolve()]
    with pytest.raises(G2SError, match="absolute path"):
        cluster.check_shared({"--runs": "runs"}, allow_local=True)
    with pytest.raises(G2SError, match="does not exist"):
        cluster.check_shared({"--runs": tmp_path / "nope"}, allow_local=True)
    with pytest.raises(G2SError, match="not under the shared volume's mount /shared"):
        cluster.check_shared({"--data": tmp_path}, False, under="/shared")
    assert cluster.check_shared({"--data": tmp_path}, False, under=str(tmp_path.parent)) == [tmp_path.resolve()]
    monkeypatch.setenv("TMPDIR", str(ROOT_DIR))
    with pytest.raises(G2SError, match="local to each machine"):
        cluster.check_shared({"--x": ROOT_DIR / "tests"}, allow_local=False)


def test_overall_eta_leaves_out_iterations_not_trained_here(monkeypatch):
    """A reused Step 1 counts as done in the total but not in the rate: 100 iterations trained
    in 10 s with 400 to go is 40 s, whatever was reused.  The clock is fixed: no assertion
    here depends on how fast the machine is."""
    from types import SimpleNamespace

    from g2s_caffe.core.jobs import schedule

    monkeypatch.setattr(schedule, "time", SimpleNamespace(monotonic=lambda: 1010.0))
    assert schedule.overall_line("r", 600, 1000, 1000.0, 500) == "r: all jobs 600/1000 it (60 %), ETA 0:00:40"
    assert schedule.overall_line("r", 500, 1000, 1000.0, 500).endswith("ETA --:--")
