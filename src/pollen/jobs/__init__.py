"""The jobs: SyncAssets, SyncEarningsCalendar, PollenateAsset, the scheduler and the consistency check.

Jobs take their adapters (ports), a MetricsRecorder, a clock and a Deadline; they never read the environment
and never build clients. Each returns a JobReport subclass.
"""
