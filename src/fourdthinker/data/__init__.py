"""The data stage: clips -> validated DIFT (imagery CoT) and RL (QA) records (docs/method.md#data-pipeline).

Modules, in pipeline order: ``sources`` (world / SpatialVID clip folders), ``camera`` (camera
segments from poses or frames), ``objects`` (object labels from the mask track), ``mcq``
(options + distractors), ``validate`` (App. F), ``pipeline`` (one clip end to end), ``runner``
(shards, resume, quarantine, process pool / Ray, summary), ``audit``, ``show``, ``importer``
(the official 4DThinker release), ``config`` (BuildConfig). The record schema is ``fourdthinker.records``
and the prompt format ``fourdthinker.qa`` (package root; ``data.records`` re-exports both).

Python use::

    from fourdthinker.data.config import BuildConfig
    from fourdthinker.data.runner import build
    summary = build("data/world", "data/dift", BuildConfig(camera_labels="frames"), workers=2)
"""
