"""Where results, uploads, checkpoints and styles live.

`Storage` (base.py) is the interface every backend keeps: a local folder
(local.py, the default) or an S3 bucket (s3.py). With S3, style_sync.py keeps
each machine's copies of the styles in the bucket.
"""
