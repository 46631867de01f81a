"""LNets as ANet's face source (`g2s anet --faces lnets`), registered with ANet when this package loads."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from g2s_caffe.core import layout
from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.jobs.stages import Stage
from g2s_caffe.core.runs import Run, sha256_file
from g2s_caffe.methods.anet.faces import FaceSource, register_source
from g2s_caffe.methods.lnets_anet.faces import (FACES_DIR, FACES_FILE, LNETS, RUN_NAME, TEST_RULE, LNetsRegions,
                                                faces_csv, lnets_run, lnets_weights, read_faces_csv, split_windows)


class LNetsFaces(FaceSource):
    """`g2s anet --faces lnets`: the face windows of a finished LNets run (config["lnets"])."""
    name = LNETS
    run_name = RUN_NAME
    method = "lnets_anet"
    description = "LNets' face windows"

    def check_request(self, args, runs: Path) -> Path | None:
        lnets = Path(args.lnets or Path(runs) / "lnets")
        lnets_run(lnets)                       # a clear error before anything is written
        return lnets

    def identity(self, req) -> dict | None:
        return lnets_weights(req.lnets)

    def prepare(self, run: Run, req, splits: list[str]) -> Run:
        """The faces stage: LNets' face window of every image of ``splits``, as
        RUNS/<run>/faces/<split>.csv."""
        from g2s_caffe.core.device import select_device
        from g2s_caffe.methods.lnets.raw import RawImages
        from g2s_caffe.methods.lnets.stages import cascade_identity, cascade_of

        lnets = lnets_run(req.lnets)
        raw = RawImages(req.data, req.images)
        splits = list(dict.fromkeys(splits))
        inputs = {"lnets": {"run": str(lnets.root.resolve()), **cascade_identity(lnets)}, "images": raw.identity(),
                  "prepared": {s: req.data.manifest["splits"][s].get("keys_sha256") for s in splits}}
        stage = Stage(run, "faces", inputs, "LNets faces")
        if stage.kept():
            return run
        run = stage.start()
        select_device(req.gpus[0] if req.gpus else None)
        cascade = cascade_of(lnets)
        outputs, no_face = {}, {}
        for split in splits:
            keys, recs = split_windows(cascade, inputs, req.data, raw, split,
                                       run.root / FACES_DIR / f"{split}.chunks", test=False)
            out = write_atomic(run.root / FACES_DIR / f"{split}.csv", faces_csv(keys, recs))
            outputs[split] = {"path": run.rel(out), "sha256": sha256_file(out)}
            no_face[split] = int(sum(r["no_face"] for r in recs))
            print(f"{run.run}: LNets faces of {split}: {len(keys)} images, {no_face[split]} below the face threshold "
                  "(their face box is used: each training image holds one face, §2.1)")
        return stage.done(outputs=outputs, below_threshold=no_face,
                          rule="training images: LNet_s's face box, no pruning")

    def stage_inputs(self, run: Run, split: str) -> dict:
        return {"faces": LNETS, "windows": (run.stages.get("faces") or {}).get("outputs", {}).get(split)}

    def regions(self, run: Run, data: layout.PreparedDataset, split: str, quality: int, region_size: int,
                windows: dict | None = None, images=None):
        """Each key's window of the faces stage (or ``windows``) on its raw image."""
        from g2s_caffe.methods.lnets.raw import RawImages

        if windows is None:
            out = (run.stages.get("faces") or {}).get("outputs", {}).get(split)
            if out is None:
                raise G2SError(f"{run.root}/manifest.json: no LNets faces of the {split} split; rerun "
                               "`g2s anet --faces lnets`")
            windows = read_faces_csv(run.path(out["path"]))
        images = images if images is not None else run.config.get("images")
        return LNetsRegions(RawImages(data, Path(images) if images else None), windows, data.image_size,
                            region_size, quality)

    def test_regions(self, run: Run, data: layout.PreparedDataset, split: str, quality: int, region_size: int,
                     out_dir: Path, show: bool = True):
        """The face windows the run's LNets find on the split's raw images now (test rule),
        written to ``out_dir``/faces.csv."""
        from g2s_caffe.methods.lnets.raw import RawImages
        from g2s_caffe.methods.lnets.stages import cascade_identity, cascade_of

        lnets = lnets_run(Path(run.config["lnets"]))
        same = Path(run.data).resolve() == data.root.resolve()
        images = run.config.get("images") if same else None
        raw = RawImages(data, Path(images) if images else None)
        tag = {"lnets": {"run": str(lnets.root.resolve()), **cascade_identity(lnets)}, "images": raw.identity(),
               "data": str(data.root.resolve())}
        keys, recs = split_windows(cascade_of(lnets), tag, data, raw, split, out_dir / ".faces.chunks", test=True,
                                   show=show)
        write_atomic(out_dir / FACES_FILE, faces_csv(keys, recs))
        return self.regions(run, data, split, quality, region_size, {k: r["box"] for k, r in zip(keys, recs)},
                            images or "")

    def eval_summary(self, run: Run, result, out_dir: Path) -> dict:
        """"No face" images counted, and the mean accuracy on each part (the module's rule:
        they are predicted from the face box)."""
        from g2s_caffe.core.evaluation import metrics

        with open(Path(out_dir) / FACES_FILE, newline="") as f:
            flags = {r["key"]: r["no_face"] == "1" for r in csv.DictReader(f)}
        if [k for k in result.keys if k not in flags]:
            raise G2SError(f"{Path(out_dir) / FACES_FILE}: does not cover the evaluated images; rerun g2s eval")
        no = np.array([flags[k] for k in result.keys])
        right = metrics.decide(result.probs) == (result.labels >= 0.5)
        part = lambda m: float(100 * right[m].mean()) if m.any() else None
        faces = {"file": FACES_FILE, "images": len(result.keys), "no_face": int(no.sum()), "face": int((~no).sum()),
                 "rule": TEST_RULE, "mean_accuracy_face": part(~no), "mean_accuracy_no_face": part(no),
                 "lnets_run": run.config.get("lnets")}
        pct = lambda v: "-" if v is None else f"{v:.2f} %"
        print(f"{run.run}: LNets found no face (score below the threshold) in {faces['no_face']} of "
              f"{faces['images']} {result.split} images; they are predicted from the face box (the no-face rule, docs/choices.md), mean "
              f"accuracy there {pct(faces['mean_accuracy_no_face'])} vs {pct(faces['mean_accuracy_face'])} on the "
              f"others ({Path(out_dir) / FACES_FILE})")
        return faces

    def predict(self, args, run: Run) -> int:
        from g2s_caffe.methods.lnets_anet.predict import predict_run

        return predict_run(args, run)


register_source(LNetsFaces())
