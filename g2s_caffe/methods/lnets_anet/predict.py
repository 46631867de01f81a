"""`g2s predict` with the end-to-end LNets+ANet run: new photos -> LNets' window -> ANet -> SVMs.

With ``--run lnets_anet`` (the LNets+ANet baseline end to end, `g2s anet --faces lnets`), per
image: the run's LNets cascade (LNet_o -> LNet_s, density-peak pruning, the face threshold)
finds the face; below the threshold the answer is "no face" (on new photos that may be true:
unlike the evaluation's rule for a face dataset's test images, no attribute is guessed).
Otherwise the window is enlarged and cut exactly as for training (faces.lnets_region), ANet's
one pass gives every patch's feature and the SVMs their mean score: P = sigmoid(mean score)
(svm.py: >= 0.5 exactly when the SVMs say positive; not a calibrated probability).  Prints
the face box and the attributes per image, and writes ``<stem>.json`` and
``<stem>_annotated.png`` like `g2s predict` does for G2S runs.
"""
from __future__ import annotations

import json
from pathlib import Path

from g2s_caffe.core.atomic import write_atomic
from g2s_caffe.core.errors import G2SError
from g2s_caffe.core.runs import Run


def predict_run(args, run: Run) -> int:
    import cv2
    from tqdm import tqdm

    from g2s_caffe.core import layout
    from g2s_caffe.core.device import select_device
    from g2s_caffe.core.predict import FacePrediction, annotate, format_table
    from g2s_caffe.methods.anet.evaluate import check_run as check_finished, svm_bank
    from g2s_caffe.methods.lnets_anet.faces import lnets_region, lnets_run
    from g2s_caffe.methods.lnets.stages import cascade_of
    from g2s_caffe.methods.anet.features import OnePass
    from g2s_caffe.methods.anet.stages import finetuned, shape_of

    check_finished(run)
    select_device(args.gpu)
    size, quality = args.image_size, 95
    try:
        data = layout.open_prepared(Path(run.data))
        size, quality = size or data.image_size, int(data.manifest.get("jpeg_quality", quality))
    except G2SError as e:
        if size is None:
            raise G2SError(f"{e}; or pass --image-size (the prepared image size the run was trained with)") from None
        print(f"note: the run's prepared data is not here ({e}); regions cut at --image-size {size}, JPEG quality "
              f"{quality}")
    cascade = cascade_of(lnets_run(Path(run.config["lnets"])))
    bank = svm_bank(run)
    region = shape_of(run).region_size
    job, weights, _ = finetuned(run)
    # the regions are made here (lnets_region), so the net's region source passes them through
    net = OnePass(run.path(job.deploy), weights, run.path(job.train_val), shape_of(run), quality,
                  regions=lambda keys, jpegs: jpegs)
    for path in tqdm(args.images, desc="predict", unit="img", disable=len(args.images) < 2):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise G2SError(f"{path}: not a readable image")
        found = cascade.face(img, where=str(path)).face
        preds = []
        if found.is_face:
            jpeg = lnets_region(img, found.box, size, quality, region, str(path))
            p = bank.probs(net([jpeg], [str(path)]))[0]
            preds = [FacePrediction([float(v) for v in found.box], float(found.score), [],
                                    {a: float(v) for a, v in zip(bank.attributes, p)})]
        print(format_table(str(path), preds), end="")
        if preds:
            print(f"  face box [{', '.join(f'{v:.0f}' for v in found.box)}] (x1, y1, x2, y2 px; LNets score "
                  f"{found.score:.4g} >= face threshold {found.threshold:.4g})")
        else:
            print(f"  (LNets: face score {found.score:.4g} < face threshold {found.threshold:.4g})")
        doc = {"image": str(path), "run": run.run, "method": "LNets+ANet (end to end)",
               "face_threshold": found.threshold, "score": found.score, "threshold": 0.5,
               "faces": [p.to_json() for p in preds],
               "probability": "sigmoid of the mean SVM score over the patches; not a calibrated probability"}
        if not preds:
            doc["note"] = "no face: LNets' face box scores below the face threshold"
            doc["window"] = [float(v) for v in found.window]
        out = Path(args.out)
        files = [write_atomic(out / f"{path.stem}.json", json.dumps(doc, indent=2) + "\n"),
                 annotate(img, preds, out / f"{path.stem}_annotated.png", f"{path.name} ({run.run})")]
        print(f"  wrote {', '.join(str(f) for f in files)}")
    return 0
