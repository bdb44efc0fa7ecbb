"""lossbench's measuring instrument: the metrics behind the ``val/…`` and ``test/…`` keys of
``metrics.json`` and the per-case files (docs/contracts.md), and what their names mean.

- :mod:`metrics.segmentation` — ``SegmentationMetrics`` (confusion-matrix IoU/Dice, object recall by
  size bucket, surface metrics of volumes) and the per-case ``CaseScores``.
- :mod:`metrics.surface` — ``SurfaceMetrics``: HD95 and normalised surface Dice of 3-D label maps (mm).
- :mod:`metrics.detection` — ``DetectionMetrics`` (COCO mAP) and the per-image ``image_scores``.
- :mod:`metrics.cases` — ``CaseRows``: one pass's per-case rows in loader order, gathered over DDP ranks.
- :mod:`metrics.names` — direction (higher/lower is better), boundedness and size-bucket names and order.

Like ``losses``, this package imports only ``common`` and third-party libraries, so models, runtime and
the report writer can all import it. Nothing is imported here: ``from metrics.names import …`` stays
free of torch for the report writer.
"""
