"""AWS Lambda entry points, one module per function; each exposes ``handler(event, context)``. Importing the package
tunes the process (:func:`pollen.process.tune_collector`, :func:`pollen.process.skip_plugin_discovery`) once per
container, before the handler's own imports."""

from pollen.process import skip_plugin_discovery, tune_collector

tune_collector()
skip_plugin_discovery()
