"""The job system: job records (store.py), the resources a job runs with
(services.py), the queues that hand a job to a worker (queues.py in this
process, sqs.py to GPU instances), what a worker does with a job (runner.py),
the SQS worker program (worker.py), the status that web servers and remote
workers share (remote.py), result expiry (expiry.py) and the web server's
queue and background work (server.py). Nothing here imports Flask, directly
or through another module (tests/test_architecture.py checks both)."""
