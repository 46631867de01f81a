"""`g2s eval` of a G2S run: each attribute's final net on the split (core/evaluation/evaluate.py)."""
from __future__ import annotations

from pathlib import Path

from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.evaluation import stats
from g2s_caffe.core.evaluation.evaluate import EvalNet, EvalResult, evaluate
from g2s_caffe.core.layout import PreparedDataset
from g2s_caffe.core.runs import Run
from g2s_caffe.methods.g2s.steps import final_nets, unfinished_attributes


def _eval_net(run, name: str, index: int | None, job) -> EvalNet:
    return EvalNet(name, index, job.scheme, run.path(job.deploy), run.path(job.final.path), run.path(job.train_val))


def nets_of_run(run) -> list[EvalNet]:
    """EvalNet per attribute: each attribute's final net (all must be finished; for evaluation
    see finished_nets_of_run)."""
    return [_eval_net(run, *net) for net in final_nets(run)]


def finished_nets_of_run(run, only_finished: bool = False) -> tuple[list[EvalNet], list[str]]:
    """(EvalNet per attribute with a finished final net, attributes left out).  Unless
    ``only_finished``, an attribute whose net is not finished is an error naming them."""
    todo = unfinished_attributes(run)
    names = [a for a, _ in todo]
    if todo and not only_finished:
        jobs = [j for _, j in todo]
        raise G2SError(f"{run.root / 'manifest.json'}: {len(todo)} of {len(run.attribute_names)} attributes "
                       f"have no finished net ({', '.join(names[:5])}{' ...' if len(todo) > 5 else ''}; jobs "
                       f"{', '.join(jobs[:3])}{' ...' if len(jobs) > 3 else ''}); rerun the same `g2s train` "
                       f"command to finish them, or pass --only-finished to evaluate the "
                       f"{len(run.attribute_names) - len(todo)} finished ones")
    nets = [_eval_net(run, *net) for net in final_nets(run, require_done=False) if net[0] not in names]
    if not nets:
        raise G2SError(f"{run.root / 'manifest.json'}: no attribute of run {run.run} has a finished net; "
                       "finish training with `g2s train` first")
    return nets, names


class G2SEvaluation:
    """A G2S run checked to be evaluable: every attribute's finished final net."""

    def __init__(self, run: Run, only_finished: bool):
        self.run = run
        self.nets, self.not_evaluated = finished_nets_of_run(run, only_finished)

    def evaluate(self, data: PreparedDataset, split: str, batch: int, resamples: int = stats.RESAMPLES,
                 seed: int = stats.SEED) -> EvalResult:
        return evaluate(self.run.run, self.nets, data, split, batch, resamples=resamples, seed=seed,
                        not_evaluated=self.not_evaluated, method=self.run.method)

    def write_extra(self, result: EvalResult, out_dir: Path) -> None:
        pass
