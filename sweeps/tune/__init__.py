"""The Tune layer: everything that talks to Ray.

`launch.py` starts (or joins) Ray, ships the dataset, writes sweep.json and builds the Tuner
from a plan and its strategy's Tune parts; `trainable.py` is the trial (gptcore's run, the only
code that calls Tune's session API; its actor named on the dashboard); `callbacks.py` writes each
trial's ending; `live.py` feeds the live view from Tune's hooks; `tracking.py` feeds the sweep's
tracker (W&B, MLflow) from the driver; `resources.py` refuses a trial no node can hold;
`cluster.py` what a multi-node cluster needs (its address, shared storage, the code shipped to
its nodes).

May import: strategies, view, trackers, storage, results, experiment (and gptcore).
"""
