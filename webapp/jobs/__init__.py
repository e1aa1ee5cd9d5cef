"""The job system: job records (store.py), the queues that hand a job to a
worker (queues.py in this process, sqs.py to GPU instances), what a worker
does with a job (runner.py), the SQS worker program (worker.py), the status
that web servers and remote workers share (remote.py) and result expiry
(expiry.py). Nothing here imports Flask."""
