"""Evaluation: benchmarks, sampling and grading, metrics, an optional judge, contamination.

Import the module you need (:mod:`.benchmarks`, :mod:`.evaluate`, :mod:`.metrics`,
:mod:`.judge`, :mod:`.contamination`): this package imports none of them, so a stage that uses
one (the problems stage uses the n-gram check) does not depend on the others. The evaluation
artifacts' schemas are declared with every other schema in :mod:`intervention_training.schemas`.
"""
