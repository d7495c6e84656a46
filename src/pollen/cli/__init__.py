"""The ``pollen`` command. Importing it tunes the process (:func:`pollen.process.tune_collector`) before the
command's own imports, which allocate tens of thousands of objects too."""

from pollen.process import tune_collector

tune_collector()
