"""Reading asset-check evaluations from the instance, for sensors and for the training gate.

Failed asset checks do not fail their run, so run-status sensors never see them: the
evaluations are read from the instance's event log instead.
"""
