"""Provisioning of the AWS side of the music generator: an S3 bucket, SQS job
queues with dead-letter queues, an IAM role for GPU workers, an EC2 launch
template and an Auto Scaling group that follows the queues' depth down to
zero. Run `python -m infra --help`; the deploy guide is infra/README.md.

Modules: `plan` (the wanted resources as data), `render` (policy documents
and the workers' boot script), `package` (the deployable source tarball),
`aws` (create/update/delete per kind of resource), `commands` (up, down,
status), `__main__` (the command line).

The command line's entry point is `infra.__main__.main(argv)`.
"""
