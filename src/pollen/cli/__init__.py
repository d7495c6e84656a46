"""The ``pollen`` command. Importing it tunes the process (:func:`pollen.process.tune_collector`,
:func:`pollen.process.skip_plugin_discovery`) before the command's own imports, which allocate tens of thousands of
objects and build pydantic's first models."""

from pollen.process import skip_plugin_discovery, tune_collector

tune_collector()
skip_plugin_discovery()
