"""MTCNN face detector ported to Caffe (nets built with NetSpec, weights converted from the
`mtcnn` wheel at set-up time).

    from data_prep.mtcnn import MTCNN, Face
    det = MTCNN(min_face=20, factor=0.709, thresholds=(0.6, 0.7, 0.7))
    faces = det.detect(img_bgr_uint8)   # list[Face], best score first

Face.box: [x1, y1, x2, y2]; Face.score; Face.landmarks: (5, 2) [x, y] = left eye, right eye,
nose, left mouth corner, right mouth corner (image left/right).  ensure_weights() converts
the weights if the cached .caffemodel files are missing or stale and returns their folder.
"""
from data_prep.mtcnn.detector import MTCNN, Face
from data_prep.mtcnn.weights import ensure_weights

__all__ = ["MTCNN", "Face", "ensure_weights"]
