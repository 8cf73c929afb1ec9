"""The storage layer: where a sweep's results live and the rules that protect them.

`local.py`: a `--storage` path or URI, the experiment folder in it, the rule that an existing
sweep is never overwritten (`--resume` / `--fresh`, the old one moved aside), the lock that
keeps a second sweep off a folder in use, the files that must stay on the driver's disk, and the
checkpoints kept at the end. `s3.py`: a sweep in S3 (or another bucket pyarrow opens) checked in
seconds, listed, copied here without checkpoints and its outputs put back.

May import: results (a trial's statuses) and gptcore's cache; pyarrow for buckets. Not Ray.
"""
