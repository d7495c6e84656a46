"""AWS Lambda entry points, one module per function; each exposes ``handler(event, context)``. Importing the package
tunes the process (:func:`pollen.process.tune_collector`) once per container, before the handler's own imports."""

from pollen.process import tune_collector

tune_collector()
